"""CSV export of charge records, and the date ranges operators ask for (pure).

Times are written in the site's time zone with their UTC offset
(2026-03-29T09:00:00+02:00), so a spreadsheet shows local time and nothing is
ambiguous on the night the clocks go back. Columns are documented in
docs/charge-records.md; append new ones at the end, so existing imports keep
working.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Callable, Iterable
from zoneinfo import ZoneInfo

from contract.spreadsheet import safe_row
from edge.clock import iso, parse_iso


def _local(field: str) -> Callable[[dict, ZoneInfo], str]:
    def get(cdr: dict, tz: ZoneInfo) -> str:
        moment = parse_iso(cdr.get(field) or "")
        return moment.astimezone(tz).isoformat(timespec="seconds") if moment else ""
    return get


def _minutes(field: str) -> Callable[[dict, ZoneInfo], str]:
    return lambda cdr, tz: f"{cdr[field] / 60:.2f}"


def _plain(field: str) -> Callable[[dict, ZoneInfo], str]:
    return lambda cdr, tz: "" if cdr.get(field) is None else str(cdr[field])


def _joined(field: str) -> Callable[[dict, ZoneInfo], str]:
    return lambda cdr, tz: "; ".join(cdr.get(field) or [])


def _billed(cdr: dict, tz: ZoneInfo) -> str:
    return "yes" if cdr.get("billed", True) else "no"


def _component(c: dict) -> str:
    """'energy (day): 22 kWh x 0.40 = 8.80'."""
    period = f" ({c['period']})" if c.get("period") else ""
    return f"{c['kind']}{period}: {c['quantity']} {c['unit']} x {c['unit_price']} = {c['amount']}"


def _components(cdr: dict, tz: ZoneInfo) -> str:
    return "; ".join(_component(c) for c in cdr.get("price_components") or [])


COLUMNS: list[tuple[str, Callable[[dict, ZoneInfo], str]]] = [
    ("id", _plain("id")),
    ("site_id", _plain("site_id")),
    ("charger_id", _plain("charger_id")),
    ("connector_id", _plain("connector_id")),
    ("transaction_id", _plain("transaction_id")),
    ("id_tag", _plain("id_tag")),
    ("user", _plain("user")),
    ("user_group", _plain("user_group")),
    ("authorization", _plain("authorization")),
    ("start", _local("start_time")),
    ("stop", _local("stop_time")),
    ("start_received", _local("start_received_at")),
    ("stop_received", _local("stop_received_at")),
    ("duration_min", _minutes("duration_s")),
    ("charging_min", _minutes("charging_s")),
    ("idle_min", _minutes("idle_s")),
    ("meter_start_wh", _plain("meter_start_wh")),
    ("meter_stop_wh", _plain("meter_stop_wh")),
    ("energy_kwh", _plain("energy_kwh")),
    ("max_power_kw", _plain("max_power_kw")),
    ("average_power_kw", _plain("average_power_kw")),
    ("stop_reason", _plain("stop_reason")),
    ("stopped_by_edge", _plain("stopped_by_edge")),
    ("tariff_group", _plain("tariff_group")),
    ("tariff", _plain("tariff")),
    ("currency", _plain("currency")),
    ("price_net", _plain("price_net")),
    ("vat_percent", _plain("vat_percent")),
    ("vat", _plain("vat")),
    ("price_gross", _plain("price_gross")),
    ("status", _plain("status")),
    ("status_reasons", _joined("status_reasons")),
    ("flags", _joined("flags")),
    # Added for issue 14 (exact money): the bill itemised, and what it was priced with.
    ("tariff_type", _plain("tariff_type")),
    ("tariff_version", _plain("tariff_version")),
    ("tariff_pinned_at", _local("tariff_pinned_at")),
    ("billed", _billed),
    ("price_computed_gross", _plain("price_computed_gross")),
    ("charging_energy_kwh", _plain("charging_energy_kwh")),
    ("revision", _plain("revision")),
    ("supersedes", _plain("supersedes")),
    ("price_components", _components),
    # Added for issue 17: signed meter values (verified | invalid | unverifiable; empty: none were sent). The
    # signed data itself, for a transparency tool: GET /api/v1/security/transparency.xml.
    ("signed_data", lambda cdr, tz: (cdr.get("signed_data") or {}).get("status", "")),
]

# One row per price component (`edgectl cdrs export --items`): the invoice lines.
ITEM_COLUMNS = ["cdr_id", "transaction_id", "revision", "charger_id", "id_tag", "start", "tariff", "tariff_version",
                "currency", "billed", "kind", "period", "quantity", "unit", "unit_price", "amount", "from", "to"]


def to_csv(cdrs: Iterable[dict[str, Any]], tz: ZoneInfo) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([name for name, _ in COLUMNS])
    for cdr in cdrs:
        # Id tags, user names and stop reasons come from chargers and people: never a live formula.
        writer.writerow(safe_row(get(cdr, tz) for _, get in COLUMNS))
    return out.getvalue()


def to_items_csv(cdrs: Iterable[dict[str, Any]], tz: ZoneInfo) -> str:
    """The price components of the records, one row each, amounts exact (the record's total is
    their sum rounded once to the currency's minor unit)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(ITEM_COLUMNS)
    for cdr in cdrs:
        head = [_plain(f)(cdr, tz) for f in ("id", "transaction_id", "revision", "charger_id", "id_tag")]
        head += [_local("start_time")(cdr, tz), _plain("tariff")(cdr, tz), _plain("tariff_version")(cdr, tz),
                 _plain("currency")(cdr, tz), _billed(cdr, tz)]
        for c in cdr.get("price_components") or []:
            writer.writerow(safe_row([*head, c["kind"], c.get("period") or "", c["quantity"], c["unit"],
                                      c["unit_price"], c["amount"], _local("start")(c, tz), _local("end")(c, tz)]))
    return out.getvalue()


def range_bound(text: str | None, tz: ZoneInfo, *, end: bool) -> str | None:
    """A --from/--to value as a UTC ISO time the journal compares with start times.

    A date (2026-03-01) is that day's midnight in the site's zone; as an end it
    includes the whole day. A time without offset is the site's local time.
    Raises ValueError naming the value when it is neither.
    """
    if text is None or text == "":
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        day = None
    if day is not None and len(text) == 10:
        moment = datetime.combine(day + timedelta(days=1 if end else 0), time(0), tzinfo=tz)
    else:
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{text!r} is not a date (2026-03-01) or a time (2026-03-01T08:00:00+01:00)") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=tz)
    return iso(moment.astimezone(timezone.utc))
