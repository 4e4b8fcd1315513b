"""Walking and changing a JSON payload by path, for the hypothesis tests that hold a quick schema check to the
library's (tests/edge/v201/test_quick_schemas.py, tests/edge/ocpp_boundary/test_quick_paths.py): every place of a
valid payload is replaced by a generated value, or dropped, and both checks must give the same verdict."""

from __future__ import annotations

from typing import Any

from jsonschema import ValidationError


def paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path into `node` (dict keys and list indexes), the root's () first."""
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += paths(value, (*prefix, i))
    return found


def replaced(node: Any, path: tuple, value: Any, drop: bool) -> Any:
    """A copy of `node` with the place at `path` set to `value`, or, with `drop`, a dict's key left out."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(node, dict):
        copy = dict(node)
        if drop and not rest:
            copy.pop(head, None)
        else:
            copy[head] = replaced(node[head], rest, value, drop)
        return copy
    copy = list(node)
    copy[head] = replaced(node[head], rest, value, drop)
    return copy


def verdict(validator: Any, payload: Any) -> tuple[str, str] | None:
    """None if valid, else the error's keyword and message (what the library answers with)."""
    try:
        validator.validate(payload)
    except ValidationError as error:
        return str(error.validator), error.message
    return None
