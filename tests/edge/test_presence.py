"""Connection status thresholds (pure) and the monitor's network log, on a manual clock."""

from __future__ import annotations

import pytest

from edge.clock import ManualClock
from edge.events import EventBus
from edge.journal import Journal, Store
from edge.ocpp.presence import PresenceMonitor, Thresholds, presence

T = Thresholds(temporarily_unavailable_after=120, long_term_unavailable_after=300)


@pytest.mark.parametrize("silence, expected", [
    (0, "Available"), (119.9, "Available"), (120, "TemporarilyUnavailable"), (299, "TemporarilyUnavailable"),
    (300, "LongTermUnavailable"), (None, "LongTermUnavailable"),
])
def test_thresholds(silence, expected):
    assert presence(silence, T) == expected


async def test_monitor_logs_each_change_once(tmp_path):
    clock = ManualClock()
    async with Journal(str(tmp_path / "j.sqlite")) as journal:
        import asyncio
        runner = asyncio.create_task(journal.run())
        monitor = PresenceMonitor(T, journal, EventBus(), clock)
        monitor.frame("CP-1")
        for step in (60, 61, 10, 170, 100):   # t = 60, 121, 131, 301, 401
            clock.advance(step)
            monitor.check()
        monitor.frame("CP-1")
        monitor.check()
        await monitor.flush()
        log = await journal.read(Store.log, "network", "CP-1")
        runner.cancel()
    assert [e["status"] for e in reversed(log)] == [
        "Available", "TemporarilyUnavailable", "LongTermUnavailable", "Available"]
    assert monitor.status("CP-1") == "Available"
