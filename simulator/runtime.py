"""What a simulated charger does apart from speaking OCPP, shared by the 1.6 and the 2.0.1 one.

Its events (for tests and the CLI), waiting on conditions, the follow-up tasks
it runs after answering a request, and the pause of its periodic loops that a
reconfiguration cuts short.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Coroutine

from ocpp.exceptions import OCPPError

from simulator.session import NotConnected


class Runtime:
    """The base of a simulated charger; the subclass has an `outbox` and an `id`."""

    id: str
    outbox: Any

    def __init__(self, *, on_event: Callable[[str, dict], None] | None, max_events: int) -> None:
        self.on_event = on_event
        # The latest max_events events: a fleet running for days must not grow without bound.
        self.events: list[tuple[str, dict]] = []
        self.max_events = max_events
        self._event_counts: dict[str, int] = {}
        self._latest: dict[str, dict] = {}
        # Set once connected, booted and resynchronised; None while offline.
        self.link: Any = None
        self._accepted = asyncio.Event()  # cleared again only by a Reset
        self._changed = asyncio.Condition()  # outbox deliveries and link changes
        self._reconfigured = asyncio.Event()  # replaced by a fresh one each time it fires
        self._emitted = asyncio.Event()  # likewise, for wait_event
        self._task_group: asyncio.TaskGroup | None = None

    def spawn(self, coro_fn: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        """Run a follow-up (a request sent after answering one) under run(), which keeps its reference;
        dropped (the event follow_up_dropped) when the station is already shutting down."""
        if self._task_group is None:
            raise RuntimeError("the simulator is not running")

        async def guarded() -> None:
            try:
                await coro_fn()
            except NotConnected:
                pass  # the link went away; state changes survive, reports resync on reconnect
            except (OCPPError, TimeoutError) as exc:  # the central system's failure, not ours
                self.emit("call_error", action=getattr(coro_fn, "__name__", "follow-up"), error=repr(exc))
        follow_up = guarded()
        try:
            self._task_group.create_task(follow_up)
        except RuntimeError:
            # The station is shutting down (its task group no longer starts tasks): the follow-up is dropped,
            # as a station losing power never sends it; the request's caller does not fail for it.
            follow_up.close()
            self.emit("follow_up_dropped", action=getattr(coro_fn, "__name__", "follow-up"))

    async def wait_accepted(self, timeout: float | None = 10) -> None:
        """Until a BootNotification was Accepted (since the start or the last Reset)."""
        await asyncio.wait_for(self._accepted.wait(), timeout)

    async def wait_online(self, timeout: float | None = 10) -> None:
        """Until connected, booted, the queue delivered and the statuses reported.

        wait_accepted stays true across plain reconnects; this does not.
        """
        await self._wait(lambda: self.link is not None, timeout)

    async def flush(self, timeout: float | None = 10) -> None:
        """Until every queued transaction message has been answered."""
        await self._wait(lambda: len(self.outbox) == 0, timeout)

    async def _wait(self, predicate: Callable[[], bool], timeout: float | None) -> None:
        async def until() -> None:
            async with self._changed:
                await self._changed.wait_for(predicate)
        await asyncio.wait_for(until(), timeout)

    def reconfigure(self) -> None:
        """Wake the periodic loops, so a new interval applies now and not after the old one ran out."""
        fired, self._reconfigured = self._reconfigured, asyncio.Event()
        fired.set()

    async def pause(self, seconds: float) -> bool:
        """Sleep one period (0: until reconfigured); False when a reconfiguration cut it short."""
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation.
        try:
            async with asyncio.timeout(seconds if seconds > 0 else None):
                await self._reconfigured.wait()
        except TimeoutError:
            return True
        return False

    async def notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def is_accepted(self) -> bool:
        return self._accepted.is_set()

    async def set_link(self, link: Any) -> None:
        self.link = link
        await self.notify()

    def emit(self, name: str, **data: Any) -> None:
        """Record an event and pass it to on_event (which must not raise: it runs inside handlers)."""
        self.events.append((name, data))
        if len(self.events) > self.max_events:
            del self.events[: len(self.events) - self.max_events // 2]  # trimmed in bulk, not per event
        self._event_counts[name] = self._event_counts.get(name, 0) + 1
        self._latest[name] = data
        fired, self._emitted = self._emitted, asyncio.Event()
        fired.set()
        if self.on_event is not None:
            self.on_event(name, data)

    async def wait_event(self, name: str, count: int = 1, timeout: float | None = 10) -> dict:
        """Until event `name` happened `count` times since the start; returns the latest one's data."""
        async def until() -> dict:
            while self._event_counts.get(name, 0) < count:
                await self._emitted.wait()
            return self._latest[name]
        return await asyncio.wait_for(until(), timeout)

    async def send(self, payload: Any) -> Any:
        """Send a message that is not queued while offline; raises NotConnected or the CallError."""
        if self.link is None:
            raise NotConnected(f"{self.id} is not connected")
        return await self.link.send(payload)

