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

Stopping is bounded (`run_bounded`, which `run_part` uses and the app wraps
its listeners in): a part runs in a task of its own; when the edge stops, that
task is cancelled, given STOP_GRACE_S to end, cancelled again (naming the part
and where it was in the log) up to STOP_CANCELS times, and then left behind
with an error naming it, so that the edge's own stop never waits on one part.
A cancellation can be lost: on Python 3.11, `asyncio.wait_for` returns the
result instead of raising when the awaited future completes in the same loop
turn as the cancellation, and pymodbus awaits every meter answer that way, so
a meter poller stopped as its meter answered went on polling and the edge's
stop waited forever (seen in the closed-loop tests on a loaded machine). A
second cancellation lands: the poller is then sleeping or awaiting the next
answer.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from dataclasses import dataclass
from typing import Awaitable, Callable, TypeVar

from edge.clock import Clock
from edge.events import Event, EventBus

log = logging.getLogger(__name__)
T = TypeVar("T")

FIRST_DELAY = 1.0
MAX_DELAY = 60.0
# A part that ran this long before failing counts as having recovered: its next failure starts the
# back-off from the beginning again.
STABLE_AFTER = 300.0
# After each cancellation a part has this long to end before it is cancelled again; after
# STOP_CANCELS of them it is left behind. 3 x 2 s stays well inside the 10 s that a signalled
# stop has in all (edge.lifecycle.STOP_GRACE_S), which the journal's last flush needs too.
STOP_GRACE_S = 2.0
STOP_CANCELS = 3


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
                await run_bounded(name, run())
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


async def run_bounded(name: str, work: Awaitable[T]) -> T:
    """Await `work` in a task of its own; when this is cancelled, stop that task within a
    bound (see the module's doc) and raise CancelledError, whatever `work` does with its
    cancellations. Its result or exception is this one's otherwise."""
    task = asyncio.ensure_future(work)
    if isinstance(task, asyncio.Task):
        task.set_name(name)
    try:
        await asyncio.wait([task])      # unlike awaiting the task, leaves it alone when cancelled
    except asyncio.CancelledError:
        await _stop(name, task)
        raise
    return task.result()


async def _stop(name: str, task: asyncio.Future, grace: float | None = None, cancels: int | None = None) -> None:
    """Cancel `task` until it ends, at most `cancels` times `grace` seconds apart; log any
    slowness with the part's name and where it waits. Further cancellations of the caller
    are absorbed: this wait is bounded, and the caller raises CancelledError after it."""
    grace = STOP_GRACE_S if grace is None else grace
    cancels = STOP_CANCELS if cancels is None else cancels
    loop = asyncio.get_running_loop()
    started = loop.time()
    for attempt in range(1, cancels + 1):
        if attempt > 1:
            log.warning("part %s has not stopped %.1f s after it was cancelled (waiting %s); cancelling it "
                        "again (%d of %d)", name, loop.time() - started, waiting_at(task), attempt, cancels)
        task.cancel()
        deadline = loop.time() + grace
        while not task.done() and loop.time() < deadline:
            try:
                await asyncio.wait([task], timeout=deadline - loop.time())
            except asyncio.CancelledError:
                pass
        if task.done():
            if attempt > 1:
                log.warning("part %s stopped %.1f s after it was first cancelled, on cancellation %d",
                            name, loop.time() - started, attempt)
            if not task.cancelled() and task.exception() is not None:
                log.warning("part %s raised while stopping", name, exc_info=task.exception())
            return
    log.error("part %s did not stop %.1f s after it was cancelled %d times (waiting %s); the edge stops "
              "without it", name, loop.time() - started, cancels, waiting_at(task))
    task.add_done_callback(lambda left: log.warning("part %s, left behind, has stopped%s", name, "" if (
        left.cancelled() or left.exception() is None) else f": {left.exception()!r}"))


def waiting_at(task: asyncio.Future) -> str:
    """Where a task is suspended, innermost coroutine first: "poller.py:103 in run <- ..."."""
    frames, awaited = [], task.get_coro() if isinstance(task, asyncio.Task) else None
    while awaited is not None and len(frames) < 20:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
        if frame is None:
            break
        frames.append(f"{frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_lineno} in {frame.f_code.co_name}")
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    return " <- ".join(reversed(frames[-3:])) or "?"
