"""Speed: the `ocpp` library's key conversions (camelCase on the wire, snake_case for the handlers), each
key worked out once.

The library converts every key of every payload with two regular expressions (in) or a dozen string
replacements (out), each time it meets it: for a MeterValues with ten sampled values that is some sixty
keys and a tenth of the CPU the edge spends on the message. The keys a charger sends are nearly always the
same few dozen, so each key's conversion is kept once worked out, by the library's own function, so it
is always the library's answer (tests/edge/ocpp_boundary/test_quick_paths.py holds the two to the same
output). The memory is bounded: past MAX_KEYS different keys (a charger inventing keys in customData) a
new key is converted each time, as before.
"""

from __future__ import annotations

from typing import Any

from ocpp.charge_point import camel_to_snake_case as _library_snake, snake_to_camel_case as _library_camel

MAX_KEYS = 4096

_snake: dict[Any, Any] = {}
_camel: dict[Any, Any] = {}


def _snake_key(key: Any) -> Any:
    found = _snake.get(key)
    if found is None:
        (found,) = _library_snake({key: None})
        if len(_snake) < MAX_KEYS:
            _snake[key] = found
    return found


def _camel_key(key: Any) -> Any:
    found = _camel.get(key)
    if found is None:
        (found,) = _library_camel({key: None})
        if len(_camel) < MAX_KEYS:
            _camel[key] = found
    return found


def camel_to_snake_case(data: Any) -> Any:
    """ocpp.charge_point.camel_to_snake_case: the same output, for the handlers' keyword arguments."""
    if isinstance(data, dict):
        return {_snake_key(key): camel_to_snake_case(value) for key, value in data.items()}
    if isinstance(data, list):
        return [camel_to_snake_case(value) for value in data]
    return data


def snake_to_camel_case(data: Any) -> Any:
    """ocpp.charge_point.snake_to_camel_case: the same output, for the answers on the wire."""
    if isinstance(data, dict):
        return {_camel_key(key): snake_to_camel_case(value) for key, value in data.items()}
    if isinstance(data, list):
        return [snake_to_camel_case(value) for value in data]
    return data
