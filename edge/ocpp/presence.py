"""Connection status per charger, from the time of its last frame.

Available while frames arrive; Temporarily unavailable after a silence of
`temporarily_unavailable_after` seconds (120 by default); Long-term
unavailable after `long_term_unavailable_after` (300). A closed socket does
not change the status by itself: chargers reconnect within seconds all the
time, and operators want to see real outages, not blips (the network log
still records every connect and disconnect).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

from edge.clock import Clock
from edge.events import Event, EventBus
from edge.journal import Journal, Store

Presence = Literal["Available", "TemporarilyUnavailable", "LongTermUnavailable"]


@dataclass(frozen=True)
class Thresholds:
    temporarily_unavailable_after: float
    long_term_unavailable_after: float


def presence(silence_s: float | None, thresholds: Thresholds) -> Presence:
    """silence_s: seconds since the last frame; None if never seen."""
    if silence_s is None or silence_s >= thresholds.long_term_unavailable_after:
        return "LongTermUnavailable"
    if silence_s >= thresholds.temporarily_unavailable_after:
        return "TemporarilyUnavailable"
    return "Available"


class PresenceMonitor:
    """Tracks the last frame per charger and logs each status change."""

    def __init__(self, thresholds: Thresholds, journal: Journal, bus: EventBus, clock: Clock,
                 check_every: float = 5.0):
        self.thresholds = thresholds
        self._journal = journal
        self._bus = bus
        self._clock = clock
        self._check_every = check_every
        self._last_frame: dict[str, float] = {}
        self._last_frame_wall: dict[str, str] = {}
        self._status: dict[str, Presence] = {}
        self._unflushed: dict[str, str] = {}
        self._pending_logs: list[tuple[str, str, str, str, str]] = []

    def frame(self, charger_id: str) -> None:
        """Called for every frame in from a charger (cheap: no I/O)."""
        self._last_frame[charger_id] = self._clock.monotonic()
        at = self._clock.now_iso()
        self._last_frame_wall[charger_id] = at
        self._unflushed[charger_id] = at
        if self._status.get(charger_id) != "Available":
            self._set(charger_id, "Available", "frame received")

    def status(self, charger_id: str) -> Presence:
        return self._status.get(charger_id, "LongTermUnavailable")

    def last_seen(self, charger_id: str) -> str | None:
        return self._last_frame_wall.get(charger_id)

    def seen(self) -> dict[str, Presence]:
        return dict(self._status)

    def check(self) -> None:
        now = self._clock.monotonic()
        for charger_id, last in self._last_frame.items():
            status = presence(now - last, self.thresholds)
            if status != self._status.get(charger_id):
                self._set(charger_id, status, f"no frame for {now - last:.0f} s")

    def _set(self, charger_id: str, status: Presence, why: str) -> None:
        self._status[charger_id] = status
        at = self._clock.now_iso()
        self._bus.publish(Event("charger.presence", charger_id, at, {"status": status, "why": why}))
        self._pending_logs.append((at, charger_id, status, "status", why))

    def note(self, charger_id: str, event: str, detail: str) -> None:
        """A network event that is not a status change (connected, disconnected, rejected)."""
        self._pending_logs.append((self._clock.now_iso(), charger_id, self.status(charger_id), event, detail))

    async def flush(self) -> None:
        logs, self._pending_logs = self._pending_logs, []
        seen, self._unflushed = self._unflushed, {}
        if logs or seen:
            await self._journal.write(_write_presence, logs, seen)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._check_every)
            self.check()
            await self.flush()


def _write_presence(store: Store, logs: list, seen: dict[str, str]) -> None:
    for at, charger_id, status, event, detail in logs:
        store.record_network(at, charger_id, status, event, detail)
    store.touch_chargers(seen)
