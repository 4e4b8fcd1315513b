"""OCMF (Open Charge Metering Format, S.A.F.E. e.V.) signed meter readings, as an Eichrecht meter makes them.

`OCMF|{payload}|{signature}`: the payload JSON names the meter and the transaction and carries the readings
(`RD`: time `TM`, value `RV`, unit `RU`, type `TX` B/E/T for begin/end/intermediate); the signature JSON
gives the algorithm (`SA`, ECDSA-secp256r1-SHA256 here) and `SD`, the hex DER signature over the payload's
bytes exactly as they stand between the pipes. The simulator signs with a P-256 key; the edge verifies
with its public key (edge/cdr/ocmf.py).
"""

from __future__ import annotations

import json
from datetime import datetime

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

ALGORITHM = "ECDSA-secp256r1-SHA256"


def reading_time(at: datetime) -> str:
    # OCMF's time: ISO 8601 with milliseconds and offset, then the clock's sync state (S: synchronised).
    return at.strftime("%Y-%m-%dT%H:%M:%S,") + f"{at.microsecond // 1000:03d}" + at.strftime("%z") + " S"


def sign(key: ec.EllipticCurvePrivateKey, *, meter_serial: str, transaction_id: str, id_tag: str,
         energy_wh: float, at: datetime, kind: str) -> str:
    """One signed reading: kind B (begin), E (end) or T (intermediate)."""
    payload = {
        "FV": "1.0", "GI": "SIM METER", "GS": meter_serial, "GV": "1.0", "PG": f"T{transaction_id}",
        "IS": True, "IT": "ISO14443", "ID": id_tag,
        "RD": [{"TM": reading_time(at), "TX": kind, "RV": round(energy_wh / 1000.0, 3), "RI": "1-b:1.8.0",
                "RU": "kWh", "RT": "AC", "EF": "", "ST": "G"}],
    }
    text = json.dumps(payload, separators=(",", ":"))
    signature = key.sign(text.encode(), ec.ECDSA(hashes.SHA256())).hex()
    return f"OCMF|{text}|" + json.dumps({"SA": ALGORITHM, "SD": signature}, separators=(",", ":"))


def public_key_hex(key: ec.EllipticCurvePrivateKey) -> str:
    """The meter's public key as transparency software and chargers' configuration show it: hex DER."""
    return key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).hex()
