"""N NotifyEvent is answered only once its entries are on disk (design: nothing acknowledged before it is
committed). While another writer holds the journal's database, the edge cannot commit: the station gets an
error answer, not an acknowledgement, and the message it sends again once the database is free is kept.
The real edge and journal (SQLite), the simulated 2.0.1 station over real WebSockets."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from ocpp.exceptions import InternalError
from ocpp.v201 import call

from edge.journal import Store
from edge.journal import store as journal_store
from tests.edge.v201.conftest import SITE_CHARGERS, STATION, station

TRIPPED = call.NotifyEvent(generated_at="2026-12-07T11:00:00Z", seq_no=0, event_data=[{
    "event_id": 5, "timestamp": "2026-12-07T10:59:59Z", "trigger": "Delta", "actual_value": "true",
    "event_notification_type": "HardWiredNotification", "component": {"name": "RCD", "evse": {"id": 1}},
    "variable": {"name": "Tripped"}}])


async def test_a_notify_event_the_journal_could_not_commit_is_not_acknowledged(make_edge, monkeypatch):
    # The journal's commits wait 0.5 s for the other writer, not 5 s, before they fail.
    monkeypatch.setattr(journal_store, "BUSY_TIMEOUT_MS", 500)
    async with make_edge(chargers=SITE_CHARGERS) as edge, station(edge) as sim:
        await sim.wait_online()
        events = edge.bus.subscribe()
        # Another writer holds the database: the edge's commit waits its busy timeout, then fails.
        blocker = sqlite3.connect(edge.journal.path, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            with pytest.raises(InternalError):
                await asyncio.wait_for(sim.link.send(TRIPPED), 30)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert await edge.journal.read(Store.notified_events, STATION) == []
        # The station sends it again (it had no answer): now it is kept, and alerted once.
        await sim.link.send(TRIPPED)
        [kept] = await edge.journal.read(Store.notified_events, STATION)
        assert (kept["component"], kept["event_id"], kept["problem"]) == ("RCD", 5, True)
        problems = []
        while not events.queue.empty():
            event = events.queue.get_nowait()
            if event.kind == "station.problem":
                problems.append(event.data["event_id"])
        assert problems == [5]
