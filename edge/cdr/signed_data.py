"""Signed meter values in the charge record (Eichrecht), pure: verified, invalid or unverifiable.

Each SignedData value a charger sent for a transaction (edge/ocpp/signed_values.py keeps them) is checked
with its charger's meter public key: OCMF (`OCMF|{payload}|{signature}`) with pyocmf, which parses it and
checks the ECDSA signature over the payload exactly as sent. The record's signed_data says:

- verified: every value is OCMF and its signature checks with the key;
- invalid: a value's signature does not check (or it is not readable OCMF): a reading may have been altered,
  and the record is flagged;
- unverifiable: no key is known, or the format is one the edge cannot check (EDL): kept and exported for a
  transparency tool, which checks it with the key on the meter's label.

`transparency_xml` writes the values in the XML the S.A.F.E. transparency software reads (a <value> per
reading with transactionId and context, its <signedData> and the <publicKey>).
"""

from __future__ import annotations

import re
import warnings
from typing import Any, Iterable
from xml.sax.saxutils import escape, quoteattr

_HEX = re.compile(r"^[0-9A-Fa-f]{64,}$")


def encoding_of(value: str) -> str:
    if value.startswith("OCMF|"):
        return "OCMF"
    if _HEX.match(value.strip()):
        return "EDL"
    return "other"


def verify(signed_data: str, public_key: str | None) -> tuple[str, str | None]:
    """-> (verified | invalid | unverifiable, why)."""
    if not signed_data.startswith("OCMF|"):
        return "unverifiable", "not OCMF: kept for a transparency tool"
    if not public_key:
        return "unverifiable", "no meter public key known for this charger"
    import pyocmf

    try:
        with warnings.catch_warnings():     # pyocmf warns about identifiers it finds odd; not our decision
            warnings.simplefilter("ignore")
            ok = pyocmf.OCMF.from_string(signed_data).verify_signature(public_key)
    except pyocmf.PyOCMFError as exc:
        return "invalid", f"not readable as OCMF: {str(exc)[:120]}"
    return ("verified", None) if ok else ("invalid", "the signature does not match the meter's public key")


def record_status(values: list[dict[str, Any]], public_key: str | None) -> dict[str, Any] | None:
    """The record's signed_data: each value with its verdict, and the record's (worst first)."""
    if not values:
        return None
    checked = []
    for value in values:
        verdict, why = verify(value["signed_data"], public_key)
        checked.append({**value, "verification": verdict, **({"why": why} if why else {})})
    verdicts = {v["verification"] for v in checked}
    status = "invalid" if "invalid" in verdicts else "unverifiable" if "unverifiable" in verdicts else "verified"
    return {"status": status, "public_key": public_key, "values": checked}


def valid_public_key(text: str) -> str | None:
    """A meter key as hex DER, or None when `text` is not one (spaces and a 0x are tolerated)."""
    cleaned = re.sub(r"\s+", "", text).removeprefix("0x")
    if not re.fullmatch(r"[0-9A-Fa-f]{64,1024}", cleaned):
        return None
    from cryptography.hazmat.primitives.serialization import load_der_public_key
    try:
        load_der_public_key(bytes.fromhex(cleaned))
    except ValueError:
        return None
    return cleaned.lower()


def transparency_xml(cdrs: Iterable[dict[str, Any]]) -> str:
    """The signed readings of these records as the transparency software's XML (records without any: none)."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', "<values>"]
    for cdr in cdrs:
        signed = cdr.get("signed_data") or {}
        for value in signed.get("values", []):
            fmt = "OCMF" if value["encoding"] == "OCMF" else value["encoding"]
            lines.append(f'  <value transactionId={quoteattr(str(cdr.get("transaction_id")))} '
                         f'context={quoteattr(str(value.get("context") or ""))}>')
            lines.append(f'    <signedData format={quoteattr(fmt)} encoding="plain">{escape(value["signed_data"])}'
                         "</signedData>")
            if signed.get("public_key"):
                lines.append(f'    <publicKey encoding="plain">{escape(signed["public_key"])}</publicKey>')
            lines.append("  </value>")
    lines.append("</values>")
    return "\n".join(lines) + "\n"
