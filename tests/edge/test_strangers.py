"""Strangers (charger ids neither configured nor adopted) cost the edge a small, bounded footprint."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import timedelta

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from edge.clock import ManualClock
from edge.journal import Store
from edge.ocpp import strangers
from tests.edge.conftest import api_call, ocpp_url, wait_for


def _recording_on(store: Store) -> None:
    # What an enabled [uplink] does at start: the journal's triggers fill the outbox.
    store.conn.execute("UPDATE uplink_settings SET recording = 1")


def _rows(sql: str, *args):
    return lambda store: [dict(r) for r in store.conn.execute(sql, args)]


async def _exchange(ws, frame: list) -> list:
    await ws.send(json.dumps(frame))
    return json.loads(await ws.recv())


@contextlib.asynccontextmanager
async def _raw(edge, charger_id: str):
    async with connect(ocpp_url(edge, charger_id), subprotocols=["ocpp1.6"], max_size=2**22) as ws:
        yield ws


async def _boot(ws, unique_id: str = "b1") -> dict:
    answer = await _exchange(ws, [2, unique_id, "BootNotification",
                                  {"chargePointVendor": "Acme", "chargePointModel": "X"}])
    return answer[2]


async def _settle(edge) -> None:
    """What the edge's housekeeping does every few seconds, now."""
    await edge.communication_log.flush()
    await edge.presence.flush()
    await edge.ocpp.tidy()


async def test_made_up_call_results_are_not_queued(edge):
    """A stranger's CALLRESULT/CALLERROR frames answer nothing we asked: they
    used to pile up unread in the library's response queue (RSS 60 -> 489 MiB)."""
    async with _raw(edge, "NOBODY") as ws:
        big = "x" * 200_000
        for i in range(150):
            kind = [3, f"r{i}", {"data": big}] if i % 2 else [4, f"r{i}", "GenericError", big[:1000], {}]
            await ws.send(json.dumps(kind))
        assert (await _boot(ws))["status"] == "Rejected"   # answered after all of them: they were read
        session = edge.ocpp.sessions["NOBODY"]
        assert session._response_queue.qsize() == 0


async def test_answers_to_our_calls_still_arrive(edge):
    """The filter lets through what a call of ours is waiting for, even with junk around it."""
    from tests.edge.conftest import charger
    async with charger(edge, "CP-2", password=None) as cp:
        await cp._connection.send(json.dumps([3, "junk-1", {}]))
        result = await api_call(edge, "POST", "/chargers/CP-2/commands/Reset",
                                body={"params": {"type": "Soft"}, "reason": "test"})
        assert result["outcome"] == "ok", result
        assert edge.ocpp.sessions["CP-2"]._response_queue.qsize() == 0


async def test_many_strangers_leave_a_bounded_record_and_nothing_for_the_cloud(make_edge, monkeypatch):
    """2,000 unknown connections used to leave 2,000 charger rows, 6,005 network-log
    rows and 4,001 status messages in the outbox; now: the newest 50, a few notes each, nothing upward."""
    monkeypatch.setattr(strangers, "STRANGER_CONNECT_BURST", 1000)   # all let in: what do they leave?
    async with make_edge(unknown="pending") as edge:
        await edge.journal.write(_recording_on)
        events = edge.bus.subscribe()
        count = strangers.STRANGERS_KEPT + 20

        async def visit(i: int) -> None:
            async with _raw(edge, f"NEW-{i:03d}") as ws:
                assert (await _boot(ws))["status"] == "Pending"
                for j in range(30):   # chatter beyond what is logged for a stranger
                    await _exchange(ws, [2, f"h{j}", "Heartbeat", {}])

        for first in range(0, count, 10):
            await asyncio.gather(*(visit(i) for i in range(first, min(count, first + 10))))
        await wait_for(lambda: not edge.ocpp.sessions, what="strangers gone")
        await _settle(edge)

        pending = [r["id"] for r in await edge.journal.read(Store.chargers) if r["registration"] == "pending"]
        assert len(pending) == strangers.STRANGERS_KEPT
        assert f"NEW-{count - 1:03d}" in pending and "NEW-000" not in pending
        outbox = await edge.journal.read(Store.outbox_next, "status", 0, 10_000)
        assert [m for m in outbox if "NEW-" in m["body"]] == []
        network = await edge.journal.read(_rows("SELECT charger_id, event FROM network_log"))
        assert {r["charger_id"] for r in network} <= set(pending)
        assert not [r for r in network if r["event"] == "status"]
        assert len(network) <= strangers.STRANGERS_KEPT * strangers.STRANGER_LOG_ROWS
        frames = await edge.journal.read(_rows("SELECT charger_id, count(*) AS n, max(length(frame)) AS longest "
                                               "FROM communication_log GROUP BY charger_id"))
        assert {r["charger_id"] for r in frames} <= set(pending)
        assert max(r["n"] for r in frames) <= strangers.STRANGER_LOG_ROWS
        seen = []
        while not events.queue.empty():
            seen.append(events.queue.get_nowait())
        assert [e.kind for e in seen if (e.charger_id or "").startswith("NEW-")] == []

        # The newest can still be adopted, and is a charger like any other from then on.
        result = await api_call(edge, "POST", f"/chargers/NEW-{count - 1:03d}/adopt")
        assert result["adopted"] == f"NEW-{count - 1:03d}"


async def test_a_strangers_frames_are_cut_short(edge):
    async with _raw(edge, "NOBODY") as ws:
        await _exchange(ws, [2, "dt", "DataTransfer", {"vendorId": "x", "data": "y" * 100_000}])
    await _settle(edge)
    [row] = [r for r in await edge.journal.read(Store.log, "communication", "NOBODY") if r["direction"] == "in"]
    assert len(row["frame"]) < strangers.STRANGER_FRAME_CHARS + 50


async def test_strangers_are_forgotten_after_a_week(make_edge):
    clock = ManualClock()
    clock.advance(1_000_000)
    async with make_edge(clock=clock, unknown="pending") as edge:
        async with _raw(edge, "OLD-1") as ws:
            await _boot(ws)
        clock.advance(timedelta(days=8).total_seconds())
        async with _raw(edge, "NEW-1") as ws:
            await _boot(ws)
        ids = {r["id"] for r in await edge.journal.read(Store.chargers)}
        assert "NEW-1" in ids and "OLD-1" not in ids


async def test_logs_are_pruned_by_age_and_count(make_edge, monkeypatch):
    clock = ManualClock()
    async with make_edge(clock=clock) as edge:
        monkeypatch.setattr(strangers, "NETWORK_ROWS_PER_CHARGER", 10)
        for i in range(5):
            edge.presence.note("CP-2", "connected", f"old {i}")
        edge.communication_log.record("CP-2", "in", "[2,\"old\",\"Heartbeat\",{}]")
        await _settle(edge)
        clock.advance(timedelta(days=91).total_seconds())
        edge.communication_log.record("CP-2", "in", "[2,\"new\",\"Heartbeat\",{}]")
        for i in range(30):
            edge.presence.note("CP-2", "connected", f"recent {i}")
        await _settle(edge)
        await edge.ocpp.tidy(sweep=True)
        network = await edge.journal.read(Store.log, "network", "CP-2", 1000)
        frames = await edge.journal.read(Store.log, "communication", "CP-2", 1000)
    assert [r["detail"] for r in network] == [f"recent {i}" for i in range(29, 19, -1)]
    assert [r["frame"] for r in frames] == ['[2,"new","Heartbeat",{}]']


async def test_unknown_connections_at_once_are_capped(edge, monkeypatch):
    monkeypatch.setattr(strangers, "STRANGER_CONNECTIONS", 3)
    async with contextlib.AsyncExitStack() as stack:
        for i in range(3):
            await stack.enter_async_context(_raw(edge, f"NEW-{i}"))
        with pytest.raises(InvalidStatus) as refused:
            async with _raw(edge, "NEW-3"):
                pass
        assert refused.value.response.status_code == 503
        # A known charger is never refused for it.
        async with _raw(edge, "CP-2") as ws:
            assert (await _boot(ws))["status"] == "Accepted"


async def test_new_unknown_connections_are_rate_limited(make_edge, monkeypatch):
    monkeypatch.setattr(strangers, "STRANGER_CONNECT_BURST", 5)
    clock = ManualClock()
    async with make_edge(clock=clock) as edge:
        for i in range(5):
            async with _raw(edge, f"NEW-{i}"):
                pass
        with pytest.raises(InvalidStatus) as refused:
            async with _raw(edge, "NEW-5"):
                pass
        assert refused.value.response.status_code == 503
        assert refused.value.response.headers["Retry-After"]
        async with _raw(edge, "CP-2") as ws:   # the site's own chargers are not held up
            assert (await _boot(ws))["status"] == "Accepted"
        clock.advance(1 / strangers.STRANGER_CONNECTS_PER_SECOND)
        async with _raw(edge, "NEW-5") as ws:
            assert (await _boot(ws))["status"] == "Rejected"


async def test_a_failing_tidy_up_does_not_stop_the_ocpp_server(make_edge, monkeypatch, caplog):
    from edge.ocpp import server

    def broken(*args):
        raise RuntimeError("disk on fire")
    monkeypatch.setattr(server, "TIDY_EVERY", 0.05)
    monkeypatch.setattr(strangers, "trim_strangers", broken)
    async with make_edge() as edge:
        async with _raw(edge, "NOBODY") as ws:
            await _boot(ws)
        await wait_for(lambda: "pruning the charger logs failed" in caplog.text, what="the failure logged")
        async with _raw(edge, "CP-2") as ws:
            assert (await _boot(ws))["status"] == "Accepted"
