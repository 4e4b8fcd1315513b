"""What the edge counts for its metrics (docs/metrics.md): the domain half.

`MetricsRecorder` is a part (under the supervisor) that counts what only passes
by on the event bus: commands sent to chargers by action and outcome, the events
the OCPP layer publishes, energy of finished sessions, recovery steps; and, told
by the OCPP layer, the Calls chargers sent by action and answer. It knows
nothing of HTTP or Prometheus: edge/web/api/metrics.py reads these counters and
the live state at scrape time and renders them.
"""

from __future__ import annotations

import bisect
from collections import Counter
from typing import Any

from edge.events import EventBus


class Histogram:
    """Observations counted into buckets (upper bounds), with their sum: what a Prometheus
    histogram exports, kept by the part that observes, without Prometheus."""

    def __init__(self, bounds: tuple[float, ...]):
        self.bounds = tuple(sorted(bounds))
        self.counts = [0] * (len(self.bounds) + 1)      # the last: above every bound
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations at or below it), ending with (inf, all)."""
        out, total = [], 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts):
            total += n
            out.append((bound, total))
        return out


class MetricsRecorder:
    """Counters of what happens, from the event bus; since this edge started (Prometheus' rate()
    and increase() handle the reset at a restart)."""

    def __init__(self, bus: EventBus):
        self._bus = bus
        self.commands: Counter[tuple[str, str]] = Counter()      # (action, outcome)
        self.events: Counter[str] = Counter()                    # event kind
        self.energy_wh: Counter[str] = Counter()                 # charger -> Wh of finished sessions
        self.recovery: Counter[tuple[str, str]] = Counter()      # (charger, step or gave_up)
        self.calls: Counter[tuple[str, str, str]] = Counter()    # (charger, action, result) of chargers' Calls
        self._starts: dict[int, int] = {}                        # transaction -> meter_start

    async def run(self) -> None:
        sub = self._bus.subscribe()
        try:
            while True:
                self.note(await sub.get())
        finally:
            self._bus.unsubscribe(sub)

    def call_answered(self, charger: str, action: str, result: str) -> None:
        """The OCPP layer's hook (Site.on_call): a Call a charger sent, answered "accepted" or with a
        CallError's code. A callback, not an event: one per message would crowd every bus subscriber."""
        self.calls[(charger, action, result)] += 1

    def note(self, event: Any) -> None:
        self.events[event.kind] += 1
        data = event.data
        if event.kind == "command.done":
            self.commands[(str(data.get("action")), str(data.get("outcome")))] += 1
        elif event.kind == "transaction.started" and isinstance(data.get("meter_start"), int):
            self._starts[data["transaction_id"]] = data["meter_start"]
        elif event.kind == "transaction.stopped":
            start = self._starts.pop(data.get("transaction_id"), None)
            stop = data.get("meter_stop")
            if start is not None and isinstance(stop, int) and stop >= start:
                self.energy_wh[event.charger_id] += stop - start
        elif event.kind == "recovery.step":
            self.recovery[(event.charger_id, str(data.get("step") or data.get("gave_up")))] += 1
