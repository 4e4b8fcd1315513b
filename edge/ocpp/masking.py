"""Charger keys never leave the edge: the value of a secret configuration key
is masked wherever OCPP payloads are kept or shown (the communication log, the
actions log, command results in the API, events).

A configuration key travels as `{"key": "AuthorizationKey", "value": "..."}`
both in ChangeConfiguration requests and in the `configurationKey` entries of
GetConfiguration answers. Real chargers answer GetConfiguration with the key
masked or leave it out; some do not, so the edge masks whatever comes back.
The edge's one-time URLs are secrets too: GetLog's upload URL and SignedUpdateFirmware's
download URL carry a token in their path that is the whole credential (logs_upload.py,
firmware.py), so the path segment after /api/v1/uploads/ or /api/v1/firmware/ is masked in
any string of a payload. The charger gets the real URL; what is kept says only where.

OCPP 2.0.1 names the same secret as a device model variable, SecurityCtrlr.BasicAuthPassword: a
SetVariables item's `attributeValue`, a GetVariables result's, a NotifyReport variableAttribute's `value`
are masked wherever their `variable` names it.

Pure functions; a frame that does not name a secret key is returned as is,
without parsing (the cost of the common case is one case-insensitive search).
"""

from __future__ import annotations

import json
import re
from typing import Any

# OCPP 1.6 configuration keys whose values are secrets (compared case-insensitively).
SECRET_KEYS = frozenset({"authorizationkey"})
# OCPP 2.0.1 device model variables whose values are secrets (compared case-insensitively).
SECRET_VARIABLES = frozenset({"basicauthpassword"})
MASK = "********"
# The paths whose next segment is a token (edge/web/api/security_files.py serves them).
TOKEN_PATHS = ("/api/v1/uploads/", "/api/v1/firmware/")
_URL_TOKEN = re.compile("(" + "|".join(map(re.escape, TOKEN_PATHS)) + r")[^/?#\s\"]+")


def is_secret_key(key: object) -> bool:
    return isinstance(key, str) and key.lower() in SECRET_KEYS


def mask_payload(value: Any) -> Any:
    """A copy of `value` with the value of every secret configuration key masked."""
    if isinstance(value, list):
        return [mask_payload(item) for item in value]
    if isinstance(value, str):
        return _URL_TOKEN.sub(r"\g<1>" + MASK, value) if "/api/v1/" in value else value
    if isinstance(value, dict):
        masked = {k: mask_payload(v) for k, v in value.items()}
        for key_field in ("key", "Key"):
            if is_secret_key(masked.get(key_field)):
                for value_field in ("value", "Value"):
                    if value_field in masked:
                        masked[value_field] = MASK
        if _names_secret_variable(masked.get("variable")):
            _mask_variable_values(masked)
        return masked
    return value


def is_secret_variable(name: object) -> bool:
    """A 2.0.1 variable name whose value is a secret (SecurityCtrlr.BasicAuthPassword)."""
    return isinstance(name, str) and name.lower() in SECRET_VARIABLES


def _names_secret_variable(variable: Any) -> bool:
    return isinstance(variable, dict) and is_secret_variable(variable.get("name"))


def _mask_variable_values(item: dict) -> None:
    """A 2.0.1 item naming a secret variable: its attributeValue (Set/GetVariables, either case style) and
    its variableAttribute values (NotifyReport) masked, in place (`item` is a copy already)."""
    for value_field in ("attributeValue", "attribute_value"):
        if value_field in item:
            item[value_field] = MASK
    for attributes_field in ("variableAttribute", "variable_attribute"):
        attributes = item.get(attributes_field)
        if isinstance(attributes, list):
            item[attributes_field] = [{**a, "value": MASK} if isinstance(a, dict) and "value" in a else a
                                      for a in attributes]


def _may_name_secret(frame: str) -> bool:
    lowered = frame.lower()
    # A JSON string may spell the key with \\u escapes (or a URL's slashes as \\/): such a frame is parsed too.
    return (any(key in lowered for key in SECRET_KEYS | SECRET_VARIABLES)
            or ("\\u" in frame and ("key" in lowered or "variable" in lowered))
            or "/api/v1/" in frame or "\\/api\\/" in frame)


def mask_frame(frame: str) -> str:
    """An OCPP-J frame with secret values masked. A frame that names a secret
    key but is not JSON (cut short, malformed) is withheld whole: the value's
    position in it cannot be trusted."""
    if not _may_name_secret(frame):
        return frame
    try:
        parsed = json.loads(frame)
        masked = mask_payload(parsed)
    except (ValueError, RecursionError):   # nesting beyond the boundary's limit is refused later anyway
        return f"[withheld: a frame that is not JSON and may carry a charger key, {len(frame)} characters]"
    if masked == parsed:
        return frame
    return json.dumps(masked, ensure_ascii=False, separators=(",", ":"))
