"""The poller against real pymodbus servers: every shipped map end to end over
TCP, SunSpec discovery, a shared RS-485 bus on a pty, and the faults a meter
in the field has (silence, NaN, a restarted server, a refused connection,
garbled frames, a map with the wrong function code)."""

from __future__ import annotations

import asyncio
import socket
from typing import Callable

import pytest

from edge.clock import Clock, ManualClock
from edge.meters import MeterConfig, MeterPoller, MeterReading, ModbusLinks
from edge.meters.poller import BACKOFF_PERIODS, GRACE_FAILURES
from edge.meters.registers import load_map, shipped_names
from simulator.meter import SimulatedMeter
from simulator.serial_link import NullModem

from tests.edge.meters.servers import (KNOWN, close_to, device, expected, registers_for, serve_rtu, serve_tcp,
                                       sunspec_registers)

FAST = {"period": 0.2, "timeout": 0.1, "retries": 0}


def tcp_config(port: int, model: str = "sdm630", **changes) -> MeterConfig:
    return MeterConfig.model_validate({"id": "grid", "model": model, "transport": "tcp", "host": "127.0.0.1",
                                       "port": port, **FAST, **changes})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Recorder:
    """Collects what a poller reports and lets a test wait for a condition."""

    def __init__(self) -> None:
        self.readings: list[MeterReading] = []
        self.problems: list[str] = []
        self._changed = asyncio.Event()

    def reading(self, reading: MeterReading) -> None:
        self.readings.append(reading)
        self._changed.set()

    def problem(self, meter_id: str, text: str) -> None:
        assert meter_id == "grid"
        self.problems.append(text)
        self._changed.set()

    def has_problem(self, text: str) -> bool:
        return any(text in p for p in self.problems)

    async def until(self, condition: Callable[[], bool], timeout: float = 4.0) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
async def cleanup():
    """Things to stop after the test: servers, simulated meters, pollers, tasks, cables."""
    items: list = []
    yield items
    for item in reversed(items):
        if isinstance(item, asyncio.Task):
            item.cancel()
            await asyncio.gather(item, return_exceptions=True)
        elif isinstance(item, MeterPoller):
            item.close()
        elif isinstance(item, NullModem):
            item.close()
        elif isinstance(item, SimulatedMeter):
            await item.stop()
        else:
            await item.shutdown()


def assert_reads(reading: MeterReading | None, values: dict[str, float]) -> None:
    assert reading is not None
    for n in range(3):
        assert close_to(reading.current[n], abs(values[f"current_l{n + 1}"]))
        assert close_to(reading.voltage[n], values[f"voltage_l{n + 1}"])
        assert close_to(reading.power[n], values[f"power_l{n + 1}"])
    assert close_to(reading.import_wh, values["import_energy"])
    assert close_to(reading.export_wh, values["export_energy"])
    assert close_to(reading.frequency, values["frequency"])


# -- every map, end to end ---------------------------------------------------------------

@pytest.mark.parametrize("name", [n for n in shipped_names() if load_map(n).sunspec_model is None])
async def test_every_shipped_map_reads_back_over_tcp(name, cleanup):
    rmap = load_map(name)
    server, port = await serve_tcp([device(7, registers_for(rmap, KNOWN))])
    cleanup.append(server)
    recorder = Recorder()
    poller = MeterPoller(tcp_config(port, name, unit=7), Clock(), recorder.reading, recorder.problem)
    cleanup.append(poller)
    reading = await poller.poll_once()
    assert recorder.problems == []
    assert_reads(reading, expected(rmap))
    assert poller.latest is reading and recorder.readings == [reading]


@pytest.mark.parametrize("base", [40000, 0, 50000])
@pytest.mark.parametrize("name", ["sunspec_203", "sunspec_201"])
async def test_sunspec_meter_is_found_from_its_marker(name, base, cleanup):
    rmap = load_map(name)
    server, port = await serve_tcp([device(1, sunspec_registers(rmap, KNOWN, base))])
    cleanup.append(server)
    recorder = Recorder()
    poller = MeterPoller(tcp_config(port, name), Clock(), on_problem=recorder.problem)
    cleanup.append(poller)
    reading = await poller.poll_once()
    assert recorder.problems == []
    assert_reads(reading, expected(rmap))
    # The model's place is found once per connection, not on every poll.
    assert await poller.poll_once() is not None


async def test_no_sunspec_marker(cleanup):
    server, port = await serve_tcp([device(1, registers_for(load_map("sdm630"), KNOWN))])
    cleanup.append(server)
    recorder = Recorder()
    poller = MeterPoller(tcp_config(port, "sunspec_203"), Clock(), on_problem=recorder.problem)
    cleanup.append(poller)
    assert await poller.poll_once() is None
    assert recorder.has_problem('no SunSpec marker "SunS" at 40000, 0, 50000')


async def test_sunspec_model_not_on_the_device(cleanup):
    server, port = await serve_tcp([device(1, sunspec_registers(load_map("sunspec_201"), KNOWN, 40000))])
    cleanup.append(server)
    recorder = Recorder()
    poller = MeterPoller(tcp_config(port, "sunspec_203"), Clock(), on_problem=recorder.problem)
    cleanup.append(poller)
    assert await poller.poll_once() is None
    assert recorder.has_problem("SunSpec model 203 not found on unit 1")
    assert recorder.has_problem("models there: 1, 201")


# -- a shared RS-485 bus ---------------------------------------------------------------------

async def test_two_meters_share_one_rs485_bus(cleanup):
    cable = NullModem()
    cleanup.append(cable)
    meter_end, edge_end = cable.open()
    sdm = load_map("sdm630")
    other = {**KNOWN, "current_l1": 1.5, "power_l1": 345.0}
    server = await serve_rtu([device(1, registers_for(sdm, KNOWN)), device(2, registers_for(sdm, other))],
                             meter_end)
    cleanup.append(server)
    links = ModbusLinks()
    pollers = []
    for unit in (1, 2):
        config = MeterConfig.model_validate({"id": "grid", "model": "sdm630", "transport": "rtu",
                                             "device": edge_end, "unit": unit, **FAST, "timeout": 0.3})
        pollers.append(MeterPoller(config, Clock(), links=links))
        cleanup.append(pollers[-1])
    assert pollers[0]._link is pollers[1]._link, "one client and one lock per serial device"
    for _ in range(3):
        first, second = await asyncio.gather(pollers[0].poll_once(), pollers[1].poll_once())
        assert_reads(first, KNOWN)
        assert_reads(second, other)


# -- faults ---------------------------------------------------------------------------------

async def test_map_with_the_wrong_function_code(cleanup):
    sim = SimulatedMeter(lambda: (10.0, 5.0, 2.0))
    cleanup.append(sim)
    port = await sim.start_tcp()
    rows = [{**row.model_dump(), "function": 3} for row in load_map("sdm630").registers]
    recorder = Recorder()
    poller = MeterPoller(tcp_config(port, "custom", registers=rows), Clock(), on_problem=recorder.problem)
    cleanup.append(poller)
    assert await poller.poll_once() is None
    assert recorder.has_problem("holding registers 0..17 (function 3)")
    assert recorder.has_problem("Modbus exception 2 (illegal data address); check the register map's function code")


async def test_silent_meter_keeps_its_last_reading_until_too_old_then_recovers(cleanup):
    sim = SimulatedMeter(lambda: (10.0, 5.0, 2.0))
    cleanup.append(sim)
    port = await sim.start_tcp()
    clock, recorder = Clock(), Recorder()
    poller = MeterPoller(tcp_config(port), clock, recorder.reading, recorder.problem)
    cleanup.append(asyncio.create_task(poller.run()))
    await recorder.until(lambda: len(recorder.readings) >= 1)

    sim.silent = True
    await recorder.until(lambda: recorder.has_problem("no answer within 0.1 s"))
    last = poller.latest
    assert last is not None and poller.failures >= 1
    # The last good reading stays; it only grows old.
    assert poller.healthy(last.at + 0.5, max_age=0.5)
    assert not poller.healthy(last.at + 0.51, max_age=0.5)
    assert not poller.healthy(clock.monotonic(), max_age=clock.monotonic() - last.at - 1e-3)

    sim.silent = False
    await recorder.until(lambda: poller.latest is not last)
    assert poller.failures == 0
    assert poller.healthy(clock.monotonic(), max_age=0.5)
    after = recorder.readings[recorder.readings.index(last) + 1:]
    assert after == [poller.latest], "nothing was read while the meter was silent"
    assert poller.latest.at - last.at > 0.2


async def test_nan_answers_are_refused(cleanup):
    sim = SimulatedMeter(lambda: (10.0, 5.0, 2.0))
    cleanup.append(sim)
    port = await sim.start_tcp()
    recorder = Recorder()
    poller = MeterPoller(tcp_config(port), Clock(), recorder.reading, recorder.problem)
    cleanup.append(poller)
    good = await poller.poll_once()
    sim.garbage = True
    assert await poller.poll_once() is None
    assert recorder.has_problem("current_l1 is not a number (nan)")
    assert poller.latest is good
    sim.garbage = False
    assert await poller.poll_once() is not None


async def test_server_killed_and_restarted(cleanup):
    sim = SimulatedMeter(lambda: (10.0, 5.0, 2.0))
    cleanup.append(sim)
    port = await sim.start_tcp()
    recorder = Recorder()
    poller = MeterPoller(tcp_config(port), Clock(), recorder.reading, recorder.problem)
    cleanup.append(asyncio.create_task(poller.run()))
    await recorder.until(lambda: len(recorder.readings) >= 1)

    await sim.stop()
    await recorder.until(lambda: recorder.has_problem(f"127.0.0.1:{port}"))
    count = len(recorder.readings)
    await sim.start_tcp(port=port)
    await recorder.until(lambda: len(recorder.readings) > count)


async def test_connection_refused_at_start(cleanup):
    port = free_port()
    recorder = Recorder()
    poller = MeterPoller(tcp_config(port), Clock(), recorder.reading, recorder.problem)
    cleanup.append(asyncio.create_task(poller.run()))
    await recorder.until(lambda: recorder.has_problem(f"cannot connect to 127.0.0.1:{port}"))
    assert poller.latest is None and not poller.healthy(0.0, 1e9)

    sim = SimulatedMeter(lambda: (3.0, 2.0, 1.0))
    cleanup.append(sim)
    await sim.start_tcp(port=port)
    await recorder.until(lambda: len(recorder.readings) >= 1)
    assert recorder.readings[0].current == pytest.approx((3.0, 2.0, 1.0))


async def test_garbled_frames_on_the_serial_line(cleanup):
    sim = SimulatedMeter(lambda: (10.0, 5.0, 2.0))
    cleanup.append(sim)
    path = await sim.start_rtu(unit=4)
    recorder = Recorder()
    config = MeterConfig.model_validate({"id": "grid", "model": "sdm630", "transport": "rtu", "device": path,
                                         "unit": 4, **FAST, "timeout": 0.2})
    poller = MeterPoller(config, Clock(), recorder.reading, recorder.problem)
    cleanup.append(poller)
    assert await poller.poll_once() is not None

    # Flip a bit in every byte of the meter's answers: no answer's CRC matches.
    sim.cables[0].noise = lambda data, towards: bytes(b ^ 0x10 for b in data) if towards == 1 else data
    assert await poller.poll_once() is None
    assert recorder.problems and "unit 4" in recorder.problems[-1]
    sim.cables[0].noise = None
    assert await poller.poll_once() is not None


async def test_noise_on_requests_too(cleanup):
    """Garbled requests leave junk in the meter's receive buffer; a real meter
    drops it after 3.5 characters of silence, the pymodbus server after a few
    frames. The edge must simply keep polling until the meter answers."""
    sim = SimulatedMeter(lambda: (10.0, 5.0, 2.0))
    cleanup.append(sim)
    path = await sim.start_rtu(unit=4)
    config = MeterConfig.model_validate({"id": "grid", "model": "sdm630", "transport": "rtu", "device": path,
                                         "unit": 4, **FAST, "timeout": 0.2})
    poller = MeterPoller(config, Clock())
    cleanup.append(poller)
    sim.cables[0].noise = lambda data, towards: bytes(b ^ 0x55 for b in data)
    assert await poller.poll_once() is None
    sim.cables[0].noise = None
    results = [await poller.poll_once() for _ in range(5)]
    assert results[-1] is not None


async def test_problems_are_rate_limited(cleanup):
    sim = SimulatedMeter(lambda: (10.0, 5.0, 2.0))
    cleanup.append(sim)
    port = await sim.start_tcp()
    sim.silent = True
    clock, recorder = ManualClock(), Recorder()
    poller = MeterPoller(tcp_config(port), clock, on_problem=recorder.problem)
    cleanup.append(poller)
    for _ in range(3):
        await poller.poll_once()
        clock.advance(10)
    assert len(recorder.problems) == 1
    clock.advance(31)
    await poller.poll_once()
    assert len(recorder.problems) == 2
    assert "(and 2 more like this in the last 61 s)" in recorder.problems[1]


async def test_a_failing_callback_does_not_stop_polling(cleanup):
    sim = SimulatedMeter(lambda: (1.0, 1.0, 1.0))
    cleanup.append(sim)
    port = await sim.start_tcp()
    calls = []

    def broken(reading: MeterReading) -> None:
        calls.append(reading)
        raise RuntimeError("consumer bug")

    poller = MeterPoller(tcp_config(port), Clock(), broken)
    cleanup.append(poller)
    assert await poller.poll_once() is not None
    assert await poller.poll_once() is not None
    assert len(calls) == 2


async def test_cancelling_run_closes_the_link(cleanup):
    sim = SimulatedMeter(lambda: (1.0, 1.0, 1.0))
    cleanup.append(sim)
    port = await sim.start_tcp()
    links, recorder = ModbusLinks(), Recorder()
    poller = MeterPoller(tcp_config(port), Clock(), recorder.reading, links=links)
    task = asyncio.create_task(poller.run())
    await recorder.until(lambda: len(recorder.readings) >= 1)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert links._links == {}


def test_a_failing_meter_on_a_shared_bus_is_polled_less_often_but_not_forever_less():
    links = ModbusLinks()
    port = free_port()
    poller, other = (MeterPoller(tcp_config(port, unit=unit), Clock(), links=links) for unit in (1, 2))
    try:
        assert poller._link is other._link and poller._link.shared
        pauses = []
        for failures in range(10):
            poller.failures = failures
            pauses.append(poller.pause())
        assert pauses[:GRACE_FAILURES + 1] == [0.2] * (GRACE_FAILURES + 1)
        assert pauses == sorted(pauses)
        assert max(pauses) == pytest.approx(0.2 * BACKOFF_PERIODS)
        # The other meter gone, the bus is this one's alone: no back-off any more.
        other.close()
        assert not poller._link.shared and poller.pause() == 0.2
    finally:
        poller.close()
        other.close()


def test_a_meter_alone_on_its_link_is_polled_every_period_however_long_it_failed():
    """The load manager leaves failsafe at the first good reading: a meter with
    nobody to share its link with must be asked again at once, so that reading
    comes within a period of its answering (issue 15, observation 4)."""
    poller = MeterPoller(tcp_config(free_port()), Clock())
    try:
        assert not poller._link.shared
        for failures in (0, GRACE_FAILURES, GRACE_FAILURES + 1, 100):
            poller.failures = failures
            assert poller.pause() == 0.2
    finally:
        poller.close()
