"""A part that raises is restarted alone and reported; the others never notice."""

import asyncio

from edge.clock import Clock
from edge.events import EventBus
from edge import supervision
from edge.supervision import Supervisor


async def test_a_failing_part_is_restarted_and_reported_while_the_others_run():
    bus = EventBus()
    events = bus.subscribe()
    supervisor = Supervisor(bus, Clock(), first_delay=0.01, max_delay=0.04)
    attempts = 0
    recovered = asyncio.Event()
    beats = 0

    async def flaky() -> None:
        nonlocal attempts
        attempts += 1
        if attempts <= 3:
            raise OverflowError("date value out of range")
        recovered.set()
        await asyncio.Event().wait()

    async def steady() -> None:
        nonlocal beats
        while True:
            beats += 1
            await asyncio.sleep(0)

    async with asyncio.TaskGroup() as tg:
        flaky_task = tg.create_task(supervisor.run_part("charge-records", flaky))
        steady_task = tg.create_task(supervisor.run_part("ocpp", steady))
        await asyncio.wait_for(recovered.wait(), 5)
        assert not steady_task.done() and beats > 0
        flaky_task.cancel()
        steady_task.cancel()

    [failure] = supervisor.report()
    assert failure["part"] == "charge-records" and failure["count"] == 3
    assert failure["error"] == "OverflowError: date value out of range"
    assert "test_supervision.py" in failure["where"] and "flaky" in failure["where"]
    reported = [events.queue.get_nowait() for _ in range(events.queue.qsize())]
    assert [e.kind for e in reported] == ["edge.part_failed"] * 3
    assert reported[-1].data["part"] == "charge-records" and reported[-1].data["count"] == 3


async def test_the_back_off_doubles_up_to_its_cap():
    supervisor = Supervisor(EventBus(), Clock(), first_delay=0.01, max_delay=0.04)
    delays = []

    async def always() -> None:
        if supervisor.failures:
            delays.append(supervisor.failures["uplink"].restart_in)
        if len(delays) == 4:
            return
        raise RuntimeError("broken")

    await asyncio.wait_for(supervisor.run_part("uplink", always), 5)
    assert delays == [0.01, 0.02, 0.04, 0.04]


async def test_cancelling_a_supervised_part_stops_it_and_is_not_a_failure():
    supervisor = Supervisor(EventBus(), Clock())
    task = asyncio.create_task(supervisor.run_part("api", lambda: asyncio.Event().wait()))
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled() and supervisor.report() == []


async def test_in_a_running_edge_a_failing_part_leaves_chargers_served_and_is_shown(make_edge, monkeypatch,
                                                                                    tmp_path, capsys):
    """A bug in the charge records (any part but the journal) must not stop the OCPP server."""
    from ocpp.v16 import call

    from edge.cdr.service import ChargeRecords
    from edge.cli import main
    from tests.edge.conftest import api_call, charger, site_toml

    failed_once = asyncio.Event()
    original = ChargeRecords.run

    async def breaks_first(self) -> None:
        if not failed_once.is_set():
            failed_once.set()
            raise ZeroDivisionError("a record nobody foresaw")
        await original(self)
    monkeypatch.setattr(ChargeRecords, "run", breaks_first)

    async with make_edge() as edge:
        await asyncio.wait_for(failed_once.wait(), 5)
        async with charger(edge) as cp:
            started = await cp.call(call.StartTransaction(connector_id=1, id_tag="TAG-OK", meter_start=0,
                                                          timestamp=edge.clock.now_iso()))
            assert started.id_tag_info["status"] == "Accepted"
        health = await api_call(edge, "GET", "/health")
        [failure] = health["failed_parts"]
        assert failure["part"] == "charge-records" and "ZeroDivisionError" in failure["error"]
        assert health["healthy"] is True
        (tmp_path / "site.toml").write_text(
            site_toml(tmp_path).replace("[api]\nport = 0", f"[api]\nport = {edge.api.bound_port}"))
        capsys.readouterr()
        code = await asyncio.to_thread(main, ["health", "--config", str(tmp_path / "site.toml"),
                                              "--state-dir", str(tmp_path)])
        assert code == 1
        out = capsys.readouterr().out
        assert "part charge-records failed 1 time(s)" in out and "ZeroDivisionError" in out


async def test_a_part_that_loses_its_cancellation_is_cancelled_again_and_named(caplog, monkeypatch):
    """The cause of edges that took over 20 s to stop: Python 3.11's wait_for returns the answer
    instead of raising when the answer and the cancellation come in the same loop turn (pymodbus
    awaits every meter answer so), and the poller polled on. Here that race is made to happen."""
    monkeypatch.setattr(supervision, "STOP_GRACE_S", 0.2, raising=False)
    supervisor = Supervisor(EventBus(), Clock())
    loop = asyncio.get_running_loop()
    polls: list[asyncio.Future] = []
    polling = asyncio.Event()

    async def poller() -> None:
        while True:
            answer = loop.create_future()
            polls.append(answer)
            polling.set()
            await asyncio.wait_for(answer, 30)

    task = asyncio.create_task(supervisor.run_part("meter grid", poller))
    await polling.wait()
    polls[-1].set_result("registers")       # the meter answers ...
    task.cancel()                           # ... as the edge stops
    await asyncio.wait([task], timeout=30)
    assert task.cancelled()
    assert len(polls) >= 2                  # the first cancellation was lost: it polled again
    [again] = [r for r in caplog.records if "cancelling it again" in r.getMessage()]
    assert "meter grid" in again.getMessage() and "in poller" in again.getMessage()
    assert supervisor.report() == []


async def test_a_part_that_will_not_stop_is_left_behind_named_and_the_stop_returns(caplog, monkeypatch):
    monkeypatch.setattr(supervision, "STOP_GRACE_S", 0.1, raising=False)
    released = asyncio.Event()
    cancellations = 0

    async def stubborn() -> None:
        nonlocal cancellations
        while not released.is_set():
            try:
                await released.wait()
            except asyncio.CancelledError:
                cancellations += 1

    supervisor = Supervisor(EventBus(), Clock())
    task = asyncio.create_task(supervisor.run_part("uplink", stubborn))
    await asyncio.sleep(0)
    task.cancel()
    try:
        await asyncio.wait([task], timeout=30)
        assert task.cancelled() and cancellations == supervision.STOP_CANCELS
        [left] = [r for r in caplog.records if r.levelname == "ERROR"]
        assert "part uplink did not stop" in left.getMessage() and "in stubborn" in left.getMessage()
    finally:
        released.set()                      # lets it end before the test's event loop closes
        await asyncio.sleep(0)


async def test_a_running_edge_stops_when_a_part_waits_on_a_peer_while_stopping(make_edge, monkeypatch, caplog):
    """A part whose cleanup waits for something that never comes (a close handshake nobody answers):
    the edge cancels it again, says which part it was, and stops."""
    from edge.metrics import MetricsRecorder

    monkeypatch.setattr(supervision, "STOP_GRACE_S", 0.2, raising=False)
    waiting = asyncio.Event()

    async def closes_slowly(self) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            waiting.set()
            await asyncio.Event().wait()    # the peer's answer
    monkeypatch.setattr(MetricsRecorder, "run", closes_slowly)

    async with make_edge():
        pass                                # leaving it waits (20 s at most) for the edge's task to end
    assert waiting.is_set()
    named = [r.getMessage() for r in caplog.records if "cancelling it again" in r.getMessage()]
    assert any("part metrics" in m and "in closes_slowly" in m for m in named), named
