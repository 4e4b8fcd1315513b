"""Time for the edge, injected everywhere so tests can run hours in seconds.

Wall time is always timezone-aware UTC; stored and sent as ISO 8601 with 'Z'.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime | None:
    """A charger's timestamp, or None when it is not a usable ISO 8601 time."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except (ValueError, AttributeError):
        return None
    # A time without offset is taken as UTC, as most chargers mean it.
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@dataclass
class Clock:
    wall: Callable[[], datetime] = field(default=lambda: datetime.now(timezone.utc))
    monotonic: Callable[[], float] = time.monotonic

    def now(self) -> datetime:
        return self.wall()

    def now_iso(self) -> str:
        return iso(self.wall())


class ManualClock(Clock):
    """A clock that only moves when told to (tests, replays)."""

    def __init__(self, start: datetime | None = None):
        self._wall = start or datetime(2026, 1, 1, tzinfo=timezone.utc)
        self._mono = 0.0
        super().__init__(wall=lambda: self._wall, monotonic=lambda: self._mono)

    def advance(self, seconds: float) -> None:
        self._wall += timedelta(seconds=seconds)
        self._mono += seconds
