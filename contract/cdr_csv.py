"""The columns of a charge-record CSV, shared by the edge's export (`edgectl cdrs export`) and the
cloud's (`GET /api/v1/sites/{site}/cdrs?format=csv`), so both write the same file. Pure.

Each column is (name, get(record, zone) -> text), the record being the edge's Cdr as a dict
(edge/cdr/record.py; docs/charge-records.md documents the columns). Times are written in the
site's zone with their UTC offset (2026-03-29T09:00:00+02:00). Append new columns at the end, so
existing imports keep working.
"""

from __future__ import annotations

from typing import Callable
from zoneinfo import ZoneInfo

from edge.clock import parse_iso     # the one reading of a time, as the edge's records hold them


def local_time(field: str) -> Callable[[dict, ZoneInfo], str]:
    def get(cdr: dict, tz: ZoneInfo) -> str:
        moment = parse_iso(cdr.get(field) or "")
        return moment.astimezone(tz).isoformat(timespec="seconds") if moment else ""
    return get


def _minutes(field: str) -> Callable[[dict, ZoneInfo], str]:
    return lambda cdr, tz: f"{cdr[field] / 60:.2f}"


def plain(field: str) -> Callable[[dict, ZoneInfo], str]:
    return lambda cdr, tz: "" if cdr.get(field) is None else str(cdr[field])


def _joined(field: str) -> Callable[[dict, ZoneInfo], str]:
    return lambda cdr, tz: "; ".join(cdr.get(field) or [])


def billed(cdr: dict, tz: ZoneInfo) -> str:
    return "yes" if cdr.get("billed", True) else "no"


def _component(c: dict) -> str:
    """'energy (day): 22 kWh x 0.40 = 8.80'."""
    period = f" ({c['period']})" if c.get("period") else ""
    return f"{c['kind']}{period}: {c['quantity']} {c['unit']} x {c['unit_price']} = {c['amount']}"


def _components(cdr: dict, tz: ZoneInfo) -> str:
    return "; ".join(_component(c) for c in cdr.get("price_components") or [])


COLUMNS: list[tuple[str, Callable[[dict, ZoneInfo], str]]] = [
    ("id", plain("id")),
    ("site_id", plain("site_id")),
    ("charger_id", plain("charger_id")),
    ("connector_id", plain("connector_id")),
    ("transaction_id", plain("transaction_id")),
    ("id_tag", plain("id_tag")),
    ("user", plain("user")),
    ("user_group", plain("user_group")),
    ("authorization", plain("authorization")),
    ("start", local_time("start_time")),
    ("stop", local_time("stop_time")),
    ("start_received", local_time("start_received_at")),
    ("stop_received", local_time("stop_received_at")),
    ("duration_min", _minutes("duration_s")),
    ("charging_min", _minutes("charging_s")),
    ("idle_min", _minutes("idle_s")),
    ("meter_start_wh", plain("meter_start_wh")),
    ("meter_stop_wh", plain("meter_stop_wh")),
    ("energy_kwh", plain("energy_kwh")),
    ("max_power_kw", plain("max_power_kw")),
    ("average_power_kw", plain("average_power_kw")),
    ("stop_reason", plain("stop_reason")),
    ("stopped_by_edge", plain("stopped_by_edge")),
    ("tariff_group", plain("tariff_group")),
    ("tariff", plain("tariff")),
    ("currency", plain("currency")),
    ("price_net", plain("price_net")),
    ("vat_percent", plain("vat_percent")),
    ("vat", plain("vat")),
    ("price_gross", plain("price_gross")),
    ("status", plain("status")),
    ("status_reasons", _joined("status_reasons")),
    ("flags", _joined("flags")),
    # Added for issue 14 (exact money): the bill itemised, and what it was priced with.
    ("tariff_type", plain("tariff_type")),
    ("tariff_version", plain("tariff_version")),
    ("tariff_pinned_at", local_time("tariff_pinned_at")),
    ("billed", billed),
    ("price_computed_gross", plain("price_computed_gross")),
    ("charging_energy_kwh", plain("charging_energy_kwh")),
    ("revision", plain("revision")),
    ("supersedes", plain("supersedes")),
    ("price_components", _components),
    # Added for issue 17: signed meter values (verified | invalid | unverifiable; empty: none were sent). The
    # signed data itself, for a transparency tool: GET /api/v1/security/transparency.xml.
    ("signed_data", lambda cdr, tz: (cdr.get("signed_data") or {}).get("status", "")),
]
