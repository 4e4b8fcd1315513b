"""The base of every config table, and what every config error may show of a value.

Strict: a typo in a key is an error; immutable; and no NaN or infinity in any
number (TOML spells them `nan` and `inf`, and every bound is meaningless with them).
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    # A typo in a key ("hearbeat_interval") must be an error, not silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# Keys whose values are never echoed in an error: the config file is root:edge 0640
# because of them, and `config check` output ends up in tickets and chat.
_SECRET_KEY = re.compile(r"(^|_)(password|secret|token|key)$|_hash$", re.IGNORECASE)
_NOT_SECRET = {"token_file", "password_file", "key_file"}       # paths to secrets, not secrets
SHOWN_CHARS = 60
DQ = '"'        # some messages quote ids this way (f-strings of Python 3.11 cannot hold it)


def is_secret_key(key: object) -> bool:
    return isinstance(key, str) and key not in _NOT_SECRET and bool(_SECRET_KEY.search(key))


def shown_value(loc: Iterable[object], value: Any) -> str | None:
    """How an error shows the value it refused: None (leave it out) for a whole table
    or list, whose text could hold any secret; masked under a secret's key; long text cut."""
    keys = [part for part in loc if isinstance(part, str)]
    if keys and is_secret_key(keys[-1]):
        return "'***' (hidden)"
    if isinstance(value, (dict, list, tuple)):
        return None
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "... (cut)"


def got(loc: Iterable[object], value: Any) -> str:
    """' (got 70000)', or '' where the value is not shown."""
    shown = shown_value(loc, value)
    return "" if shown is None else f" (got {shown})"


def same_ids(ids: Iterable[str]) -> list[tuple[str, str]]:
    """(first, again) for every id that repeats an earlier one, ignoring case: OCPP
    identifiers are case-insensitive, and 'CP-1' next to 'cp-1' is a typo waiting to bite."""
    first: dict[str, str] = {}
    repeats = []
    for item in ids:
        key = item.casefold()
        if key in first:
            repeats.append((first[key], item))
        else:
            first[key] = item
    return repeats


def repeated(first: str, again: str, quote: str = "'") -> str:
    """'CP-1', or 'CP-1' (as 'cp-1'): how a message names an id given twice."""
    name = f"{quote}{first}{quote}"
    return name if first == again else f"{name} (as {quote}{again}{quote})"
