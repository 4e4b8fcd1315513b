"""CSV export of charge records, and the date ranges operators ask for (pure).

Times are written in the site's time zone with their UTC offset
(2026-03-29T09:00:00+02:00), so a spreadsheet shows local time and nothing is
ambiguous on the night the clocks go back. The columns are the contract's
(contract/cdr_csv.py), shared with the cloud's export; docs/charge-records.md
documents them.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Iterable
from zoneinfo import ZoneInfo

from contract.cdr_csv import COLUMNS, billed, local_time, plain
from contract.spreadsheet import safe_row
from edge.clock import iso


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
        head = [plain(f)(cdr, tz) for f in ("id", "transaction_id", "revision", "charger_id", "id_tag")]
        head += [local_time("start_time")(cdr, tz), plain("tariff")(cdr, tz), plain("tariff_version")(cdr, tz),
                 plain("currency")(cdr, tz), billed(cdr, tz)]
        for c in cdr.get("price_components") or []:
            writer.writerow(safe_row([*head, c["kind"], c.get("period") or "", c["quantity"], c["unit"],
                                      c["unit_price"], c["amount"], local_time("start")(c, tz), local_time("end")(c, tz)]))
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
