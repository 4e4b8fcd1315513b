"""OCPP 2.0.1 N NotifyEvent at the edge: what a station tells about its components (a monitor alerting, a
variable that changed, a problem and its clearing). Each entry is logged and kept in the journal
(edge/journal/notified_events.py: the newest KEEP_EVENTS per station, across restarts); a problem (a monitor
alerting, a Problem/Tripped/Fault variable set) is a warning and a `station.problem` event on the bus, which the
uplink forwards once as the cloud alert `alert.station_problem` (its outbox is in the journal too). Read back by
GET /api/v1/chargers/{id}/events (edge/web/api/chargers.py, through `kept_events`). Choices: docs/ocpp-201.md.

An entry the station sends again (the same generatedAt, seqNo and eventId: a NotifyEvent resent because its
answer was lost) is stored once and alerted once, also when the resend comes after a restart of the edge: the
journal's insert says whether the entry is new, and only a new one is logged and published (an entry pushed out
of the newest KEEP_EVENTS is forgotten, and would be new again). Nothing is published again when the edge
restarts: the bus hears an entry only as it arrives.

`notify_event` returns the journal write as a task; the 2.0.1 session's handler awaits it, so the station is
answered only once the entries are on disk (the design's "acknowledged means committed"): a write that fails
is an error answer (InternalError), and the station sends the message again.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from edge.events import Event
from edge.journal import Store

if TYPE_CHECKING:
    from edge.ocpp.site import Site

log = logging.getLogger(__name__)

KEEP_EVENTS = 200            # NotifyEvent entries kept per station (the newest), in the journal
EVENTS_PER_MESSAGE = 100     # eventData read from one NotifyEvent; the rest is counted in the log
PROBLEM_VARIABLES = frozenset({"Problem", "Tripped", "Fault"})
PROBLEM_EVENT = "station.problem"


class _Kept:
    """Per edge (its journal): this run's new entries per station (bounded, for `events_of`) and the journal
    writes not yet committed (which `kept_events` waits for)."""

    def __init__(self) -> None:
        self.recent: dict[str, deque] = {}
        self.writing: set[asyncio.Task] = set()


_KEPT: "WeakKeyDictionary[Any, _Kept]" = WeakKeyDictionary()


def _kept(site: "Site") -> _Kept:
    found = _KEPT.get(site.journal)
    if found is None:
        found = _KEPT[site.journal] = _Kept()
    return found


def _identity(entry: dict[str, Any]) -> tuple:
    return entry["generated_at"], entry["seq_no"], entry["event_id"]


def is_problem(event: dict[str, Any]) -> bool:
    """A NotifyEvent entry that needs a look: a monitor alerting, or a Problem/Tripped/Fault variable
    set; never one that says the condition cleared."""
    if event.get("cleared"):
        return False
    if event.get("trigger") == "Alerting":
        return True
    variable = (event.get("variable") or {}).get("name")
    return variable in PROBLEM_VARIABLES and str(event.get("actual_value", "")).strip().lower() in ("true", "1")


def entry_of(event: dict[str, Any], generated_at: str, seq_no: int, at: str) -> dict[str, Any]:
    """One eventData item (snake_case, schema-valid) as the edge keeps it."""
    component, variable = event.get("component") or {}, event.get("variable") or {}
    transaction_id = event.get("transaction_id")
    return {"at": at, "generated_at": generated_at, "seq_no": seq_no, "event_id": event.get("event_id"),
            "timestamp": event.get("timestamp"), "trigger": event.get("trigger"),
            "component": component.get("name"), "evse_id": (component.get("evse") or {}).get("id"),
            "variable": variable.get("name"), "actual_value": str(event.get("actual_value", ""))[:100],
            "tech_code": event.get("tech_code"),
            "tech_info": (event.get("tech_info") or None) and str(event["tech_info"])[:200],
            "cleared": bool(event.get("cleared")), "problem": is_problem(event),
            "transaction_id": None if transaction_id is None else str(transaction_id)}


def notify_event(site: "Site", charger_id: str, generated_at: str, seq_no: int, event_data: list[dict[str, Any]],
                 tbc: bool) -> "asyncio.Task[None]":
    """NotifyEvent: each entry kept in the journal; -> that write (and what follows it) as a task, which the
    session's handler awaits so the station is answered only once the entries are on disk. Once committed, each
    entry the journal did not have is logged (a problem as a warning) and a problem is a PROBLEM_EVENT on the bus;
    an entry the journal already had (sent again, before or after a restart of the edge) is neither."""
    at = site.clock.now_iso()
    kept = _kept(site)
    entries = [entry_of(event, generated_at, seq_no, at) for event in event_data[:EVENTS_PER_MESSAGE]]
    if len(event_data) > EVENTS_PER_MESSAGE:
        log.warning("station event charger=%s: %d entries in one NotifyEvent, the first %d read",
                    charger_id, len(event_data), EVENTS_PER_MESSAGE)
    task = asyncio.ensure_future(_keep(site, kept, charger_id, entries, at))
    kept.writing.add(task)
    task.add_done_callback(lambda done: _written(kept, charger_id, done))
    return task


async def _keep(site: "Site", kept: _Kept, charger_id: str, entries: list[dict[str, Any]], at: str) -> None:
    new = await site.journal.write(Store.add_notified_events, charger_id, entries, KEEP_EVENTS)
    recent = kept.recent.setdefault(charger_id, deque(maxlen=KEEP_EVENTS))
    for entry, is_new in zip(entries, new):
        if not is_new:
            log.info("station event charger=%s generated_at=%s seq_no=%s event_id=%s: sent again, kept once",
                     charger_id, entry["generated_at"], entry["seq_no"], entry["event_id"])
            continue
        recent.append(entry)
        level = logging.WARNING if entry["problem"] else logging.INFO
        log.log(level, "station event charger=%s component=%s evse=%s variable=%s value=%r trigger=%s%s",
                charger_id, entry["component"], entry["evse_id"], entry["variable"], entry["actual_value"],
                entry["trigger"], " (cleared)" if entry["cleared"] else "")
        if entry["problem"]:
            site.bus.publish(Event(PROBLEM_EVENT, charger_id, at, entry))


def _written(kept: _Kept, charger_id: str, task: "asyncio.Future[Any]") -> None:
    kept.writing.discard(task)   # type: ignore[arg-type]
    if not task.cancelled() and task.exception() is not None:
        log.error("station event charger=%s: not kept in the journal: %s", charger_id, task.exception())


def events_of(site: "Site", charger_id: str) -> list[dict[str, Any]]:
    """The entries the station told since this edge started (in memory), oldest first; `kept_events` has
    those from before a restart too."""
    return list(_kept(site).recent.get(charger_id, ()))


async def kept_events(site: "Site", charger_id: str) -> list[dict[str, Any]]:
    """The station's kept entries (the journal's: the newest KEEP_EVENTS, across restarts), oldest first,
    once the entries received so far are written."""
    writing = list(_kept(site).writing)
    if writing:
        await asyncio.wait(writing)
    return await site.journal.read(Store.notified_events, charger_id)
