"""What the edge does to chargers because of the access rules, beyond
answering them: free-vend starts and opening hours.

- Free vend: a car plugged in (StatusNotification Preparing) at an EVSE that
  admits it without a token gets a RemoteStartTransaction with the site's
  free-vend id tag; the session is recorded anonymously.
- Opening hours with `outside_hours = "inoperative"`: when a charge group
  closes, its EVSEs are made Inoperative (ChangeAvailability); when it opens,
  Operative again. Applied again whenever a charger is ready again
  (charger.ready: booted, or its first frame on a new connection), and only
  to chargers that are ready: one that has not booted would not listen.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Callable, Iterable
from zoneinfo import ZoneInfo

from edge.auth.authorizer import Authorizer
from edge.auth.decide import decide
from edge.auth.model import AuthModel
from edge.clock import Clock
from edge.events import EventBus
from edge.stations.control import StationControl
from edge.stations.model import Availability, ConnectorStatus, IdToken, IdTokenType

log = logging.getLogger(__name__)

ACTOR = "edge:access"


def availability(model: AuthModel, now: datetime, tz: ZoneInfo) -> dict[tuple[str, int], Availability]:
    """(charger, connector, 0 for the whole charger) -> Operative | Inoperative for every
    EVSE named by a charge group with opening hours. Inoperative only when every
    group naming that EVSE is closed and inoperative outside its hours. Sent in
    key order, so a connector's own state follows (and wins over) its charger's."""
    local = now.astimezone(tz)
    closed_by: dict[tuple[str, int], list[bool]] = {}
    for group in model.charge_groups.values():
        closed = (group.opening_hours is not None and group.outside_hours == "inoperative"
                  and not group.opening_hours.is_open(local))
        for evse in group.evses:
            closed_by.setdefault((evse.charger_id, evse.connector_id or 0), []).append(closed)
    governed = {(e.charger_id, e.connector_id or 0) for g in model.charge_groups.values()
                if g.opening_hours is not None for e in g.evses}
    return {key: Availability.INOPERATIVE if all(closed_by[key]) else Availability.OPERATIVE
            for key in sorted(governed)}


class AccessEnforcement:
    def __init__(self, authorizer: Authorizer, control: StationControl, bus: EventBus, clock: Clock, tz: ZoneInfo,
                 free_vend_id_tag: str, running_on: Callable[[str, int], bool],
                 connected: Callable[[], Iterable[str]], check_every: float = 30.0):
        self._connected = connected
        self._authorizer, self._control, self._bus = authorizer, control, bus
        self._clock, self._tz = clock, tz
        self.free_vend_id_tag = free_vend_id_tag
        self._running_on = running_on           # (charger, connector) -> bool
        self._check_every = check_every
        self._applied: dict[tuple[str, int], Availability] = {}
        self._tasks: set[asyncio.Task] = set()

    async def run(self) -> None:
        events = self._bus.subscribe()
        ticker = asyncio.create_task(self._tick())
        try:
            while True:
                event = await events.get()
                if event.kind == "connector.status" and event.data.get("status") == ConnectorStatus.PREPARING:
                    self._spawn(self._free_vend(event.charger_id, event.data["connector_id"]))
                elif event.kind == "charger.ready":
                    # What the charger was told before may be lost (reboot): tell it again.
                    for key in [k for k in self._applied if k[0] == event.charger_id]:
                        del self._applied[key]
                    self._spawn(self.apply_hours())
        finally:
            ticker.cancel()
            self._bus.unsubscribe(events)

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _tick(self) -> None:
        while True:
            await self.apply_hours()
            await asyncio.sleep(self._check_every)

    async def apply_hours(self) -> None:
        wanted = availability(self._authorizer.model, self._clock.now(), self._tz)
        online = {c for c in self._connected() if self._control.is_ready(c)}
        for (charger_id, connector_id), state in sorted(wanted.items()):
            if charger_id not in online or self._applied.get((charger_id, connector_id)) == state:
                continue
            closed = state == Availability.INOPERATIVE
            result = await self._control.change_availability(charger_id, connector_id, state, actor=ACTOR,
                                                             reason=f"opening hours: {'closed' if closed else 'open'}")
            if result.outcome in ("ok", "rejected"):   # Scheduled counts as told
                self._applied[(charger_id, connector_id)] = state

    async def _free_vend(self, charger_id: str, connector_id: int) -> None:
        if self._running_on(charger_id, connector_id):
            return
        decision = decide(self._authorizer.model, charger_id=charger_id, connector_id=connector_id, id_tag=None,
                          now=self._clock.now(), tz=self._tz)
        if decision.status != "Accepted":
            return
        await self._control.remote_start(charger_id, connector_id, IdToken(self.free_vend_id_tag, IdTokenType.CENTRAL),
                                         actor=ACTOR, reason=f"free vend: car plugged in ({decision.reason})")
