"""ID tokens as chargers send them: RFID UIDs in any spelling, or opaque ids.

An RFID card's UID is hex; installers copy it from a reader, a sticker or a
charger's log, with or without separators, in upper or lower case, and some
readers report the bytes in reverse order (the "REV-HEX" of the platforms).
All spellings of one card must find the same token.
"""

from __future__ import annotations

import re

# OCPP 1.6 IdToken is CiString20Type.
MAX_ID_TAG = 20
_SEPARATORS = re.compile(r"[\s:.\-]")
_HEX = re.compile(r"^[0-9A-F]+$")


class TokenError(ValueError):
    pass


def canonical_uid(text: str) -> str:
    """'04:a2:b3:c4' -> '04A2B3C4'; raises TokenError naming the problem."""
    uid = _SEPARATORS.sub("", text).upper()
    if not uid:
        raise TokenError(f"RFID UID {text!r} is empty")
    if not _HEX.match(uid):
        raise TokenError(f"RFID UID {text!r} is not hex (0-9, A-F, optional ':' '-' '.' separators)")
    if len(uid) % 2:
        raise TokenError(f"RFID UID {text!r} has an odd number of hex digits; a UID is whole bytes")
    if len(uid) > MAX_ID_TAG:
        raise TokenError(f"RFID UID {text!r} is {len(uid)} hex digits; OCPP 1.6 id tags hold at most {MAX_ID_TAG}")
    return uid


def reversed_uid(uid: str) -> str:
    """The same bytes in the other order: '04A2B3C4' -> 'C4B3A204'."""
    return "".join(reversed([uid[i:i + 2] for i in range(0, len(uid), 2)]))


def canonical_id(text: str) -> str:
    """An opaque id tag (app user, remote start id): case-insensitive, as OCPP's CiString."""
    tag = text.strip().upper()
    if not tag:
        raise TokenError("id tag is empty")
    if len(tag) > MAX_ID_TAG:
        raise TokenError(f"id tag {text!r} is {len(tag)} characters; OCPP 1.6 id tags hold at most {MAX_ID_TAG}")
    if not tag.isprintable() or not tag.isascii():
        raise TokenError(f"id tag {text!r} must be printable ASCII")
    return tag


def lookup_keys(presented: str) -> list[str]:
    """Keys under which a presented id tag may be stored, most exact first."""
    keys = [presented.strip().upper()]
    uid = _SEPARATORS.sub("", presented).upper()
    if _HEX.match(uid or "x") and len(uid) % 2 == 0:
        keys += [uid, reversed_uid(uid)]
    return list(dict.fromkeys(k for k in keys if k))
