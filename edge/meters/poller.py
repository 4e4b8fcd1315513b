"""Polling one meter: read, check, keep the last good reading.

`MeterPoller.run()` polls every `period` until cancelled. Nothing a meter
does makes it raise: timeouts, refused connections, garbled or refused
answers are reported through `on_problem` (rate-limited: a dead meter polled
every second must not fill the journal) and tried again: every period when the
meter is alone on its link, with a growing pause when it shares an RS-485 bus
or a gateway with other meters (a dead one must not hog the bus). The load
manager reads `latest` and `healthy()`: a meter that stops answering keeps its
last good reading, which just grows old until `healthy()` says no.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import Counter
from typing import Callable

from pymodbus.exceptions import ModbusException

from edge.clock import Clock
from edge.meters.blocks import Block, decode, plan
from edge.meters.config import MeterConfig
from edge.meters.modbus import MeterIOError, ModbusLinks
from edge.meters.reading import MeterReading, Sample, check
from edge.meters.sunspec import find_model
from edge.metrics import Histogram

log = logging.getLogger(__name__)

REPORT_EVERY = 60.0         # s: the same problem is reported at most this often per meter
BACKOFF_PERIODS = 8         # a failing meter is retried at least every 8 poll periods
GRACE_FAILURES = 3          # failed polls before the pauses start to grow
_NUMBER = re.compile(r"-?\d+(\.\d+)?(e-?\d+)?")
# s: a Modbus TCP meter answers in milliseconds, one on RS-485 at 9600 baud in tens of them per
# request; the top buckets are for retries after a timeout.
POLL_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class _RateLimit:
    """Lets a problem through once per `every` seconds; problems that differ
    only in their numbers ("12.5 A", "13.1 A") count as the same."""

    def __init__(self, every: float):
        self.every = every
        self._last: dict[str, tuple[float, int]] = {}

    def admit(self, text: str, now: float) -> str | None:
        key = _NUMBER.sub("#", text)
        last = self._last.get(key)
        if last is not None and now - last[0] < self.every:
            self._last[key] = (last[0], last[1] + 1)
            return None
        self._last[key] = (now, 0)
        if last is not None and last[1]:
            return f"{text} (and {last[1]} more like this in the last {now - last[0]:.0f} s)"
        return text


class MeterPoller:
    def __init__(self, config: MeterConfig, clock: Clock,
                 on_reading: Callable[[MeterReading], None] | None = None,
                 on_problem: Callable[[str, str], None] | None = None,
                 *, links: ModbusLinks | None = None):
        """`links`: the edge's shared ModbusLinks, so meters on one RS-485 device
        or TCP gateway share a client; without it the poller has its own."""
        self.config = config
        self.clock = clock
        self.map = config.register_map()
        self.latest: MeterReading | None = None
        self.failures = 0           # consecutive polls that got no answer
        self.polls = 0              # polls started (answered or not)
        # Answered polls: from the first request (the bus ours) to the last answer.
        self.poll_seconds = Histogram(POLL_SECONDS_BUCKETS)
        self.errors: Counter[str] = Counter()   # polls without a good reading: "no_answer" or "refused"
        self._on_reading = on_reading
        self._on_problem = on_problem
        self._links = links if links is not None else ModbusLinks()
        self._link = self._links.link_for(config)
        self._released = False
        self._limit = _RateLimit(REPORT_EVERY)
        self._offset = 0
        self._generation = -1
        self._blocks: list[Block] | None = (
            None if self.map.sunspec_model is not None else plan(self.map.registers, 0, self.map.max_gap))

    @property
    def meter_id(self) -> str:
        return self.config.id

    def healthy(self, now_monotonic: float, max_age: float) -> bool:
        """A reading that passed the checks, at most `max_age` seconds old."""
        return self.latest is not None and 0 <= now_monotonic - self.latest.at <= max_age

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                started = loop.time()
                await self.poll_once()
                await asyncio.sleep(max(0.0, self.pause() - (loop.time() - started)))
        finally:
            self.close()

    def pause(self) -> float:
        """Seconds from the start of one poll to the start of the next."""
        # The load manager is in failsafe while a meter is silent, and leaves it at the
        # first good reading: a meter alone on its link is asked every period, so that
        # reading comes within a period of its answering again, not after a back-off. Only
        # where other meters share the bus is a meter that stays dead asked less often
        # (a glitch of a poll or three still at full rate), so its timeouts do not
        # hold the bus the others need.
        if not self._link.shared:
            return self.config.period
        extra = max(0, self.failures - GRACE_FAILURES)
        return self.config.period * min(2 ** extra, BACKOFF_PERIODS)

    async def poll_once(self) -> MeterReading | None:
        """One read and check; the reading that passed, else None. Never raises
        for anything the meter or the bus does."""
        self.polls += 1
        try:
            sample = await self._read()
        except MeterIOError as exc:
            return self._failed(str(exc))
        except (ModbusException, OSError, asyncio.TimeoutError) as exc:
            return self._failed(f"{self.config.where()}: {type(exc).__name__}: {exc}")
        except Exception as exc:  # noqa: BLE001
            # A bug here or in pymodbus must neither stop polling silently nor
            # take the edge down: the traceback goes to the log, the meter
            # counts as failing, and the load manager's failsafe takes over
            # once the last reading is too old.
            log.exception("meter %s: unexpected error while reading", self.meter_id)
            return self._failed(f"internal error while reading: {exc!r}")
        reading, problems = check(sample, self.latest, self.clock.monotonic(), self.config)
        for text in problems:
            self._problem(text)
        if reading is None:
            self.errors["refused"] += 1
            return None
        if self.failures:
            message = self._limit.admit(f"answers again after {self.failures} failed polls", self.clock.monotonic())
            if message:
                log.info("meter %s %s", self.meter_id, message)
        self.failures = 0
        self.latest = reading
        if self._on_reading is not None:
            self._deliver(self._on_reading, reading)
        return reading

    async def _read(self) -> Sample:
        link, config = self._link, self.config
        async with link.lock:
            began = self.clock.monotonic()
            if self.map.sunspec_model is not None and self._generation != link.generation:
                # First read, or the link reconnected (the device may have been swapped).
                model_at = await find_model(link, config.unit, config.retries, self.map.sunspec_model)
                self._offset, self._generation = model_at, link.generation
                self._blocks = plan(self.map.registers, model_at, self.map.max_gap)
            answers: dict[Block, list[int]] = {}
            for block in self._blocks or []:
                answers[block] = await link.read(block, config.unit, config.retries)
            at, wall = self.clock.monotonic(), self.clock.now()
        self.poll_seconds.observe(max(0.0, at - began))
        return Sample(values=decode(self.map, answers, self._offset), at=at, wall=wall, phases=self.map.phases)

    def _failed(self, text: str) -> None:
        self.failures += 1
        self.errors["no_answer"] += 1
        self._problem(text)
        return None

    def _problem(self, text: str) -> None:
        message = self._limit.admit(text, self.clock.monotonic())
        if message is None:
            return
        log.warning("meter %s: %s", self.meter_id, message)
        if self._on_problem is not None:
            self._deliver(self._on_problem, self.meter_id, message)

    def _deliver(self, callback: Callable, *args) -> None:
        try:
            callback(*args)
        except Exception:  # noqa: BLE001
            # The consumer's bug, not the meter's: log it loudly and keep polling.
            log.exception("meter %s: callback %r failed", self.meter_id, callback)

    def close(self) -> None:
        """Give the link back (closing it when no other meter uses it)."""
        if not self._released:
            self._released = True
            self._links.release(self._link)
