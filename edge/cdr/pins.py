"""The tariff a session is priced with is the one in force when it started.

When a transaction starts, the tariff selected for it (its EVSE's tariff group,
the driver's restrictions) is kept in the journal as a snapshot, with the
version of the tariff book it came from: a tariff changed by the config or the
cloud while the car charges applies to the next session, never to this one.
The record names both (tariff, tariff_version) and when the pin was made.

A session with no pin (it started before this software, or the edge lost the
start event) is priced with the tariffs in force when its record is made, and
its record says so in its flags.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, fields
from datetime import time
from decimal import Decimal
from typing import Any, Protocol

from edge.cdr.tariffs import PowerLevel, Rates, Restrictions, Tariff, TariffBook, TariffGroup
from edge.journal import Journal, Store

log = logging.getLogger(__name__)


class TariffSource(Protocol):
    """What pinning needs of the charge records service (edge/cdr/service.py, which imports this
    module): the book in force and the tariff a session falls under."""
    book: TariffBook

    def tariff_for(self, charger_id: str, connector_id: int | None, id_tag: str | None,
                   user_group: str | None) -> tuple[TariffGroup | None, Tariff]: ...


@dataclass(frozen=True)
class Pinned:
    group: str | None           # the tariff group's id (None: the EVSE is in none)
    tariff: Tariff
    book_version: str
    pinned_at: str | None       # edge time of the pin; None: not pinned, the tariff in force at build time

    def note(self) -> str | None:
        """What the record's flags say about the pin (nothing when the session was pinned)."""
        if self.pinned_at is not None:
            return None
        return (f"tariff not pinned at the session's start (it started before tariff pinning, or the start event "
                f"was lost); priced with the tariffs in force when the record was made (book {self.book_version})")


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, time):
        return value.strftime("%H:%M")
    if isinstance(value, (frozenset, set)):
        return sorted(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def snapshot(tariff: Tariff) -> dict[str, Any]:
    """A tariff as JSON-safe data (decimals as text, exactly)."""
    return _plain(asdict(tariff))


def from_snapshot(data: dict[str, Any]) -> Tariff:
    """The tariff a snapshot was made of; a key this version does not know is ignored."""
    known = {f.name for f in fields(Tariff)}
    values: dict[str, Any] = {}
    for name, value in data.items():
        if name not in known or value is None:
            values[name] = value
            continue
        if name in ("rates", "night_rates"):
            value = Rates(Decimal(value["per_kwh"]), Decimal(value["per_minute"]))
        elif name == "power_levels":
            value = tuple(PowerLevel(Decimal(p["max_kw"]), Decimal(p["per_minute"])) for p in value)
        elif name == "restrictions":
            value = Restrictions(frozenset(value["user_groups"]), value["ad_hoc"], value["free_vend"])
        elif name in ("day_starts", "night_starts"):
            value = time.fromisoformat(value)
        elif name not in ("id", "type", "name"):
            value = Decimal(value)
        values[name] = value
    return Tariff(**{k: v for k, v in values.items() if k in known})


def _group(group: TariffGroup) -> dict[str, Any]:
    return {"id": group.id, "name": group.name, "base": snapshot(group.base),
            "ordered": [snapshot(t) for t in group.ordered]}


def book_version(book: TariffBook) -> str:
    """A short fingerprint of everything in the book: equal books, equal versions, whichever source
    (site config or cloud document) they came from."""
    content = {"groups": {gid: _group(g) for gid, g in sorted(book.groups.items())},
               "evses": sorted([e.charger_id, e.connector_id or 0, gid] for e, gid in book.evses)}
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
    return f"tb-{digest[:12]}"


async def pin(journal: Journal, records: TariffSource, data: dict[str, Any], charger_id: str, at: str) -> None:
    """Pin the tariff of a session that just started (`data`: the transaction.started event's).
    A pin that fails is logged; its session is priced at build time and its record says so."""
    try:
        group, tariff = records.tariff_for(charger_id, data["connector_id"], data["id_tag"], data.get("user_group"))
        await journal.write(Store.pin_tariff, data["transaction_id"], book_version(records.book),
                            group.id if group else None, snapshot(tariff), at)
    except Exception:  # noqa: BLE001 - one session's pin; the records service goes on, the record is flagged
        log.exception("tariff of transaction=%s charger=%s could not be pinned; its record will be priced with "
                      "the tariffs in force when it is made", data.get("transaction_id"), charger_id)


async def pin_running(journal: Journal, records: TariffSource, at: str) -> None:
    """After lost events: pin every running session that has no pin yet, under the book in force now
    (its pinned_at says how late)."""
    for row in await journal.read(Store.active_transactions):
        if await journal.read(Store.pinned_tariff, row["id"]) is None:
            await pin(journal, records, {"transaction_id": row["id"], "connector_id": row["connector_id"],
                                         "id_tag": row["id_tag"], "user_group": row["user_group"]},
                      row["charger_id"], at)


async def pinned(journal: Journal, records: TariffSource, tx: dict[str, Any]) -> Pinned:
    """The tariff of a finished transaction: its pin, or (none) the one in force now."""
    row = await journal.read(Store.pinned_tariff, tx["id"])
    if row is not None:
        return Pinned(row["tariff_group"], from_snapshot(row["tariff"]), row["book_version"], row["pinned_at"])
    group, tariff = records.tariff_for(tx["charger_id"], tx["connector_id"], tx["id_tag"], tx["user_group"])
    return Pinned(group.id if group else None, tariff, book_version(records.book), None)
