"""Speed: a quick yes before the `ocpp` library's JSON schema check, for both OCPP versions.

The library validates every Call a charger sends, and every answer, against its JSON schema (jsonschema,
Draft 4), inline (edge/app.py). For a 1.6 MeterValues with ten sampled values that is about half the CPU
the edge spends on the message; for a 2.0.1 TransactionEvent even more (its schema is deeper, and its
"$ref"s are resolved each time they are met). Nearly every payload is valid, so each schema is also
compiled into a plain check of the keywords the OCPP schemas use (type, properties, required,
additionalProperties, enum, maxLength, items, minItems, maxItems, minimum, maximum) with the references
inlined: when it says valid, the payload is valid; otherwise jsonschema decides, with its own error,
exactly as before. A schema with a keyword the check does not know gets no check (jsonschema alone).
The validators go into the library's own cache of validators, under its own keys, for the messages a
charger sends most; were the cache to change its shape, the library would build its own as before:
slower, never different.

tests/edge/v201/test_quick_schemas.py and tests/edge/ocpp_boundary/test_quick_paths.py hold the quick
checks to the library's verdicts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

# The folder of each version's schemas in the library, and how its cache names a schema.
_FOLDERS = {"1.6": "v16", "2.0.1": "v201"}


def inline_references(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with each "#/definitions/NAME" reference replaced by that definition (Draft 4 ignores
    a reference's siblings, so they go too), and no definitions. Raises ValueError for a reference of
    another form or one that refers to itself (none in 1.6 or 2.0.1)."""
    definitions = schema.get("definitions", {})

    def inline(node: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if ref is not None:
                name = ref.removeprefix("#/definitions/") if isinstance(ref, str) else None
                if name is None or name == ref or name not in definitions or name in seen:
                    raise ValueError(f"cannot inline the reference {ref!r}")
                return inline(definitions[name], (*seen, name))
            return {key: inline(value, seen) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(value, seen) for value in node]
        return node

    return inline({key: value for key, value in schema.items() if key != "definitions"}, ())


Quick = Callable[[Any], bool]

# Draft 4's types as jsonschema's Draft 4 checker has them (an integer is an int, never a bool or 1.0).
_IS_TYPE: dict[str, Quick] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "null": lambda v: v is None,
}
# Keywords that change nothing in Draft 4 (annotations; no format checker is given to the library's validators).
_INERT = frozenset({"description", "javaType", "comment", "$schema", "default", "format", "title",
                    "additionalItems"})   # additionalItems: only with a list of items, which no OCPP schema has


def quick_check(schema: dict[str, Any]) -> Quick:
    """A check of an inlined schema that answers True only for a payload the schema accepts (False: let
    jsonschema decide). Raises ValueError for a schema using what it does not know."""
    unknown = schema.keys() - _INERT - {"type", "properties", "required", "additionalProperties", "enum",
                                        "maxLength", "items", "minItems", "maxItems", "minimum", "maximum"}
    if unknown:
        raise ValueError(f"no quick check for {sorted(unknown)}")
    checks: list[Quick] = []
    kind = schema.get("type")
    if kind is not None:
        if not isinstance(kind, str) or kind not in _IS_TYPE:
            raise ValueError(f"no quick check for type {kind!r}")
        checks.append(_IS_TYPE[kind])
    if "enum" in schema:
        options = schema["enum"]
        if not all(isinstance(o, str) for o in options):
            raise ValueError("no quick check for an enum of other than strings")
        allowed = frozenset(options)
        checks.append(lambda v: isinstance(v, str) and v in allowed)
    if "maxLength" in schema:
        most = schema["maxLength"]
        checks.append(lambda v: not isinstance(v, str) or len(v) <= most)
    for word, holds in (("minimum", lambda v, bound: v >= bound), ("maximum", lambda v, bound: v <= bound)):
        if word in schema:
            bound = schema[word]
            checks.append(lambda v, bound=bound, holds=holds: not _IS_TYPE["number"](v) or holds(v, bound))
    if "required" in schema:
        required = tuple(schema["required"])
        checks.append(lambda v: not isinstance(v, dict) or all(name in v for name in required))
    properties = {name: quick_check(sub) for name, sub in schema.get("properties", {}).items()}
    extra = schema.get("additionalProperties", True)
    if extra is not True and extra is not False:
        raise ValueError("no quick check for additionalProperties as a schema")
    if properties or extra is False:
        def object_holds(v: Any) -> bool:
            if not isinstance(v, dict):
                return True
            for name, value in v.items():
                check = properties.get(name)
                if check is None:
                    if extra is False:
                        return False
                elif not check(value):
                    return False
            return True
        checks.append(object_holds)
    if "items" in schema:
        if not isinstance(schema["items"], dict):
            raise ValueError("no quick check for a list of items")
        item = quick_check(schema["items"])
        checks.append(lambda v: not isinstance(v, list) or all(item(i) for i in v))
    for word, holds in (("minItems", lambda n, bound: n >= bound), ("maxItems", lambda n, bound: n <= bound)):
        if word in schema:
            bound = schema[word]
            checks.append(lambda v, bound=bound, holds=holds: not isinstance(v, list) or holds(len(v), bound))
    if len(checks) == 1:
        return checks[0]

    def holds(v: Any) -> bool:
        for check in checks:        # a loop, not all(...) over a generator: this runs a few hundred times a message
            if not check(v):
                return False
        return True
    return holds


class QuickValidator:
    """What the library's cache holds (it calls `validate`): the quick check, then jsonschema when it
    does not say yes."""

    def __init__(self, schema: dict[str, Any]) -> None:
        from jsonschema import Draft4Validator

        self.schema = schema
        self.full = Draft4Validator(schema)
        self.quick = quick_check(inline_references(schema))

    def validate(self, instance: Any) -> None:
        if not self.quick(instance):
            self.full.validate(instance)   # raises jsonschema's error, as the library's validator would


def schema_names(version: str, action: str) -> tuple[tuple[str, str], ...]:
    """(the library's cache key, the schema file's name) of an action's request and response schemas."""
    request = f"{action}Request" if version == "2.0.1" else action
    return tuple((f"{name}_{version}", name) for name in (request, f"{action}Response"))


def install(version: str, actions: tuple[str, ...]) -> list[str]:
    """Put QuickValidators for `version`'s schemas of `actions` (request and response) into the library's
    cache, where it has none yet; -> the cache keys put there. Never for 1.6's SetChargingProfile,
    RemoteStartTransaction or GetCompositeSchedule: the library reads their floats as decimals, with a
    validator of its own made for that."""
    import ocpp.messages

    cache = getattr(ocpp.messages, "_validators", None)
    if not isinstance(cache, dict):
        return []
    folder = Path(ocpp.messages.__file__).parent / _FOLDERS[version] / "schemas"
    installed = []
    for action in actions:
        for key, name in schema_names(version, action):
            if key in cache:
                continue
            try:
                cache[key] = QuickValidator(json.loads((folder / f"{name}.json").read_text(encoding="utf-8-sig")))
            except (OSError, ValueError):
                continue    # the library builds its own
            installed.append(key)
    return installed
