"""Failure domains between the edge's long-running parts.

Every part runs under one TaskGroup, and a TaskGroup ends when any of its
tasks raises: without this, a bug in the charge records or the uplink (a
record nobody foresaw) would stop the OCPP server and the load manager with
it, and systemd would restart the whole site into the same record. Each part
but the journal runs under `Supervisor.run_part`: a part that raises is logged
with its traceback, reported (an `edge.part_failed` event, which the uplink
turns into an alert; `Supervisor.failures` for the API and edgectl) and started
again after a back-off that doubles from 1 s to a minute, so a part that fails
at once on every start costs one log line a minute, not a busy loop.

The journal stays outside: without it nothing can be acknowledged to a
charger, so its failure must stop the process (systemd restarts it).
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from dataclasses import dataclass
from typing import Awaitable, Callable

from edge.clock import Clock
from edge.events import Event, EventBus

log = logging.getLogger(__name__)

FIRST_DELAY = 1.0
MAX_DELAY = 60.0
# A part that ran this long before failing counts as having recovered: its next failure starts the
# back-off from the beginning again.
STABLE_AFTER = 300.0


@dataclass
class PartFailure:
    part: str
    error: str            # "ValueError: year 0 is out of range"
    at: str               # ISO time of the last failure
    count: int            # failures since the edge started
    restart_in: float     # seconds until the part runs again
    where: str            # the innermost frame of the traceback: file:line in function


class Supervisor:
    def __init__(self, bus: EventBus, clock: Clock, *, first_delay: float = FIRST_DELAY,
                 max_delay: float = MAX_DELAY):
        self._bus, self._clock = bus, clock
        self._first_delay, self._max_delay = first_delay, max_delay
        self.failures: dict[str, PartFailure] = {}

    async def run_part(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run `run()` until it returns or is cancelled; start it again each time it raises."""
        delay = self._first_delay
        while True:
            started = self._clock.monotonic()
            try:
                await run()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the failure domain: logged, reported, restarted
                if self._clock.monotonic() - started >= STABLE_AFTER:
                    delay = self._first_delay
                self._failed(name, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_delay)

    def _failed(self, name: str, exc: Exception, delay: float) -> None:
        log.error("part %s failed; starting it again in %.0f s", name, delay, exc_info=exc)
        frames = traceback.extract_tb(exc.__traceback__)
        where = f"{frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name}" if frames else "?"
        previous = self.failures.get(name)
        failure = PartFailure(part=name, error=f"{type(exc).__name__}: {exc}"[:500], at=self._clock.now_iso(),
                              count=(previous.count if previous else 0) + 1, restart_in=delay, where=where)
        self.failures[name] = failure
        self._bus.publish(Event("edge.part_failed", "", failure.at, {
            "part": name, "error": failure.error, "count": failure.count, "where": where}))

    def report(self) -> list[dict]:
        """What has failed since start, for the API and `edgectl status`."""
        return [vars(f).copy() for f in sorted(self.failures.values(), key=lambda f: f.part)]
