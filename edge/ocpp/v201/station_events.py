"""OCPP 2.0.1 N NotifyEvent at the edge: what a station tells about its components (a monitor alerting, a
variable that changed, a problem and its clearing). Each entry is kept (bounded, the newest KEEP_EVENTS per
station) and logged; a problem (a monitor alerting, a Problem/Tripped/Fault variable set) is a warning and
a `station.problem` event on the bus (which the uplink forwards as the cloud alert `alert.station_problem`).
Read back by `GET /api/v1/chargers/{id}/events` (edge/web/api/chargers.py). Choices: docs/ocpp-201.md.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from edge.events import Event

if TYPE_CHECKING:
    from edge.ocpp.server import Site

log = logging.getLogger(__name__)

KEEP_EVENTS = 200            # NotifyEvent entries kept per station (the newest)
EVENTS_PER_MESSAGE = 100     # eventData read from one NotifyEvent; the rest is counted in the log
PROBLEM_VARIABLES = frozenset({"Problem", "Tripped", "Fault"})
PROBLEM_EVENT = "station.problem"

_KEPT: "WeakKeyDictionary[Any, dict[str, deque]]" = WeakKeyDictionary()


def _kept(site: "Site") -> dict[str, deque]:
    """This edge's (its journal's) kept events, per station."""
    found = _KEPT.get(site.journal)
    if found is None:
        found = _KEPT[site.journal] = {}
    return found


def is_problem(event: dict[str, Any]) -> bool:
    """A NotifyEvent entry that needs a look: a monitor alerting, or a Problem/Tripped/Fault variable
    set; never one that says the condition cleared."""
    if event.get("cleared"):
        return False
    if event.get("trigger") == "Alerting":
        return True
    variable = (event.get("variable") or {}).get("name")
    return variable in PROBLEM_VARIABLES and str(event.get("actual_value", "")).strip().lower() in ("true", "1")


def notify_event(site: "Site", charger_id: str, generated_at: str, seq_no: int, event_data: list[dict[str, Any]],
                 tbc: bool) -> None:
    """NotifyEvent: each entry kept (the newest KEEP_EVENTS per station) and logged; a problem is a
    warning and a PROBLEM_EVENT on the bus."""
    at = site.clock.now_iso()
    kept_events = _kept(site).setdefault(charger_id, deque(maxlen=KEEP_EVENTS))
    for event in event_data[:EVENTS_PER_MESSAGE]:
        component, variable = event.get("component") or {}, event.get("variable") or {}
        evse = (component.get("evse") or {}).get("id")
        entry = {"at": at, "generated_at": generated_at, "seq_no": seq_no, "event_id": event.get("event_id"),
                 "timestamp": event.get("timestamp"), "trigger": event.get("trigger"),
                 "component": component.get("name"), "evse_id": evse, "variable": variable.get("name"),
                 "actual_value": str(event.get("actual_value", ""))[:100], "tech_code": event.get("tech_code"),
                 "tech_info": (event.get("tech_info") or None) and str(event["tech_info"])[:200],
                 "cleared": bool(event.get("cleared")), "problem": is_problem(event),
                 "transaction_id": event.get("transaction_id")}
        kept_events.append(entry)
        level = logging.WARNING if entry["problem"] else logging.INFO
        log.log(level, "station event charger=%s component=%s evse=%s variable=%s value=%r trigger=%s%s",
                charger_id, entry["component"], evse, entry["variable"], entry["actual_value"], entry["trigger"],
                " (cleared)" if entry["cleared"] else "")
        if entry["problem"]:
            site.bus.publish(Event(PROBLEM_EVENT, charger_id, at, entry))
    if len(event_data) > EVENTS_PER_MESSAGE:
        log.warning("station event charger=%s: %d entries in one NotifyEvent, the first %d read",
                    charger_id, len(event_data), EVENTS_PER_MESSAGE)


def events_of(site: "Site", charger_id: str) -> list[dict[str, Any]]:
    return list(_kept(site).get(charger_id, ()))
