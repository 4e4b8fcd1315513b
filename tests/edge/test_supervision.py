"""A part that raises is restarted alone and reported; the others never notice."""

import asyncio

from edge.clock import Clock
from edge.events import EventBus
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
