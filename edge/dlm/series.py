"""The per-phase current of each circuit against its limit, downsampled for the
journal: one point per circuit and phase per interval (the highest and mean
metered current, so a short peak is not averaged away)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from edge.clock import iso
from edge.dlm.model import Allocation
from edge.journal import Journal, Store


@dataclass
class _Bucket:
    maximum: float | None = None
    total: float = 0.0
    count: int = 0
    failsafe: bool = False


@dataclass
class SeriesRecorder:
    journal: Journal
    interval: float
    keep_days: int
    _buckets: dict[tuple[str, int], _Bucket] = field(default_factory=dict)
    _last: Allocation | None = None
    _started: float | None = None
    _wall: datetime | None = None

    def add(self, wall: datetime, monotonic: float, allocation: Allocation) -> None:
        if self._started is None:
            self._started = monotonic
        for circuit, load in allocation.circuits.items():
            for phase, value in enumerate(load.phases):
                bucket = self._buckets.setdefault((circuit, phase), _Bucket())
                bucket.failsafe = bucket.failsafe or load.failsafe
                if value.metered is not None:
                    bucket.maximum = max(bucket.maximum or 0.0, value.metered)
                    bucket.total += value.metered
                    bucket.count += 1
        self._last, self._wall = allocation, wall
        if monotonic - self._started >= self.interval:
            self._started = monotonic
            points = self._points()
            self.journal.submit(Store.record_load_points, points,
                                iso(wall - timedelta(days=self.keep_days)))

    def _points(self) -> list[dict]:
        if self._last is None or self._wall is None:
            return []
        points = []
        for circuit, load in self._last.circuits.items():
            for phase, value in enumerate(load.phases):
                bucket = self._buckets.get((circuit, phase), _Bucket())
                points.append({
                    "circuit": circuit, "phase": phase + 1, "at": iso(self._wall),
                    "metered_max": bucket.maximum,
                    "metered_mean": round(bucket.total / bucket.count, 2) if bucket.count else None,
                    "allocated": round(value.allocated, 1), "unmanaged": round(value.unmanaged, 2),
                    "reserved": round(value.reserved, 1), "limit_a": value.limit, "failsafe": int(bucket.failsafe)})
        self._buckets.clear()
        return points

    async def flush(self) -> None:
        points = self._points()
        if points and self._wall is not None:
            await self.journal.write(Store.record_load_points, points, iso(self._wall - timedelta(days=self.keep_days)))
