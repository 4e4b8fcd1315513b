"""OCPP 1.6 MeterValue lists to the site's meter samples (pure): the 1.6 adapter's reading of
MeterValues and of StopTransaction's transactionData, before sessions see them.

The spec's defaults apply when a field is missing: measurand
Energy.Active.Import.Register, unit Wh, context Sample.Periodic, location
Outlet. Signed values and values that are not numbers are skipped and
reported, never guessed.
"""

from __future__ import annotations

import math
from typing import Any

from edge.clock import iso, parse_iso
from edge.journal import Sample

DEFAULT_UNITS = {
    "Energy.Active.Import.Register": "Wh",
    "Energy.Active.Export.Register": "Wh",
    "Power.Active.Import": "W",
    "Power.Active.Export": "W",
    "Current.Import": "A",
    "Current.Export": "A",
    "Current.Offered": "A",
    "Voltage": "V",
    "SoC": "Percent",
    "Temperature": "Celsius",
    "Frequency": "Hz",
}


def parse_meter_values(connector_id: int, transaction_id: int | None, meter_value: list[dict[str, Any]],
                       received_at: str) -> tuple[list[Sample], list[str]]:
    """-> (samples, problems). Keys are the ocpp library's snake_case."""
    samples: list[Sample] = []
    problems: list[str] = []
    for index, entry in enumerate(meter_value):
        moment = parse_iso(entry.get("timestamp", ""))
        timestamp = iso(moment) if moment else received_at
        if moment is None:
            problems.append(f"meterValue[{index}].timestamp {entry.get('timestamp')!r} is not a time; "
                            "used receive time")
        for j, sv in enumerate(entry.get("sampled_value", [])):
            measurand = sv.get("measurand") or "Energy.Active.Import.Register"
            if sv.get("format") == "SignedData":
                problems.append(f"meterValue[{index}].sampledValue[{j}] is signed data; "
                                "kept as signed (edge/ocpp/signed_values.py), not as a sample")
                continue
            try:
                value = float(sv["value"])
            except (KeyError, TypeError, ValueError):
                problems.append(f"meterValue[{index}].sampledValue[{j}].value {sv.get('value')!r} is not a number")
                continue
            if not math.isfinite(value):
                problems.append(f"meterValue[{index}].sampledValue[{j}].value {sv.get('value')!r} is not finite")
                continue
            unit = sv.get("unit") or DEFAULT_UNITS.get(measurand)
            # Normalise kilo units so every consumer reads Wh, W.
            if unit in ("kWh", "kW", "kvarh", "kvar", "kVA"):
                value *= 1000.0
                unit = unit[1:]
            samples.append(Sample(
                connector_id=connector_id, transaction_id=transaction_id, timestamp=timestamp,
                measurand=measurand, phase=sv.get("phase"), value=value, unit=unit,
                context=sv.get("context") or "Sample.Periodic", location=sv.get("location") or "Outlet",
            ))
    return samples, problems
