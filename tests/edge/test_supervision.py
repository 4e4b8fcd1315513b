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
