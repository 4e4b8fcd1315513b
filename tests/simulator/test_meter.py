"""The simulated SDM630, polled by the edge's real poller over Modbus TCP and
over Modbus RTU on a pty null-modem cable; its energy counters; its fault
knobs; the household base-load profile; the null-modem cable itself."""

from __future__ import annotations

import asyncio
import math
import statistics

import pytest
import serial
from pymodbus.client import AsyncModbusTcpClient

from edge.clock import Clock, ManualClock
from edge.meters import MeterConfig, MeterPoller
from simulator.meter import SimulatedMeter, household_profile
from simulator.serial_link import NullModem

FAST = {"period": 0.2, "timeout": 0.2, "retries": 0}


def tcp(port: int) -> MeterConfig:
    return MeterConfig.model_validate({"id": "grid", "model": "sdm630", "transport": "tcp", "host": "127.0.0.1",
                                       "port": port, **FAST})


def rtu(device: str, unit: int = 1) -> MeterConfig:
    return MeterConfig.model_validate({"id": "grid", "model": "sdm630", "transport": "rtu", "device": device,
                                       "unit": unit, **FAST})


@pytest.fixture
async def meter():
    """A simulated meter whose source a test can change; stopped afterwards."""
    draw = {"currents": (16.0, 8.5, 0.25)}
    sim = SimulatedMeter(lambda: draw["currents"], clock=ManualClock())
    sim.draw = draw  # type: ignore[attr-defined]
    yield sim
    await sim.stop()


async def _poll(config: MeterConfig):
    poller = MeterPoller(config, Clock())
    try:
        return await poller.poll_once(), poller
    finally:
        poller.close()


@pytest.mark.parametrize("transport", ["tcp", "rtu"])
async def test_the_edge_reads_what_the_source_says(meter, transport):
    config = tcp(await meter.start_tcp()) if transport == "tcp" else rtu(await meter.start_rtu(unit=5), unit=5)
    poller = MeterPoller(config, Clock())
    try:
        reading = await poller.poll_once()
        assert reading is not None
        assert reading.current == pytest.approx((16.0, 8.5, 0.25))
        assert reading.voltage == pytest.approx((230.0, 230.0, 230.0))
        assert reading.power == pytest.approx((3680.0, 1955.0, 57.5))
        first_import = reading.import_wh

        # Closed loop: the source changes (a car starts), an hour passes on the meter's clock.
        meter.draw["currents"] = (32.0, 8.5, 0.25)
        meter.clock.advance(3600)
        reading = await poller.poll_once()
        assert reading is not None and reading.current[0] == pytest.approx(32.0)
        # The hour was spent at the old draw: 3680 + 1955 + 57.5 W for one hour.
        assert reading.import_wh - first_import == pytest.approx(5692.5, abs=1.0)
        assert reading.export_wh == 0.0
    finally:
        poller.close()


async def test_export_and_power_factor(meter):
    meter.power_factor = 0.9
    meter.draw["currents"] = (-10.0, 0.0, 0.0)        # PV feeding in on L1
    config = tcp(await meter.start_tcp())
    poller = MeterPoller(config, Clock())
    try:
        reading = await poller.poll_once()
        assert reading is not None
        assert reading.current[0] == pytest.approx(10.0), "the fuse sees the magnitude"
        assert reading.power[0] == pytest.approx(-2070.0)
        meter.clock.advance(1800)
        reading = await poller.poll_once()
        assert reading is not None and reading.export_wh == pytest.approx(1035.0, abs=1.0)
        assert reading.import_wh == 0.0
    finally:
        poller.close()


async def test_counters_start_where_told_and_are_float32_kwh(meter):
    sim = SimulatedMeter(lambda: (0.0, 0.0, 0.0), import_kwh=12345.6, export_kwh=7.0)
    try:
        reading, _ = await _poll(tcp(await sim.start_tcp()))
        assert reading is not None
        assert reading.import_wh == pytest.approx(12_345_600.0, rel=1e-6)
        assert reading.export_wh == pytest.approx(7000.0)
    finally:
        await sim.stop()


async def test_fault_knobs(meter):
    port = await meter.start_tcp()
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=0.2, retries=0, reconnect_delay=0)
    await client.connect()
    try:
        ok = await client.read_input_registers(0x06, count=2, device_id=1)
        assert client.convert_from_registers(ok.registers, client.DATATYPE.FLOAT32) == pytest.approx(16.0)
        meter.garbage = True
        bad = await client.read_input_registers(0x06, count=2, device_id=1)
        assert math.isnan(client.convert_from_registers(bad.registers, client.DATATYPE.FLOAT32))
        meter.garbage, meter.silent = False, True
        reads = meter.reads
        with pytest.raises(Exception, match="No response"):
            await client.read_input_registers(0x06, count=2, device_id=1)
        assert meter.reads == reads
    finally:
        client.close()


async def test_both_transports_at_once_and_stop_closes_them(meter):
    port = await meter.start_tcp()
    path = await meter.start_rtu()
    assert (await _poll(tcp(port)))[0] is not None
    assert (await _poll(rtu(path)))[0] is not None
    await meter.stop()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


async def test_rtu_answers_only_its_unit(meter):
    path = await meter.start_rtu(unit=3)
    assert (await _poll(rtu(path, unit=3)))[0] is not None
    problems = []
    poller = MeterPoller(rtu(path, unit=2), Clock(), on_problem=lambda _id, text: problems.append(text))
    try:
        assert await poller.poll_once() is None
        assert "unit 2" in problems[0] and "no answer" in problems[0]
    finally:
        poller.close()


# -- the null-modem cable -------------------------------------------------------------------

async def _read(port: serial.Serial, count: int) -> bytes:
    """`count` bytes from a non-blocking port, waking when its fd is readable."""
    loop, readable, data = asyncio.get_running_loop(), asyncio.Event(), b""
    loop.add_reader(port.fileno(), readable.set)
    try:
        async with asyncio.timeout(2):
            while len(data) < count:
                await readable.wait()
                readable.clear()
                data += port.read(1024)
    finally:
        loop.remove_reader(port.fileno())
    return data


async def test_null_modem_passes_every_byte_both_ways():
    cable = NullModem()
    a_path, b_path = cable.open()
    a = serial.Serial(a_path, 9600, timeout=0)
    b = serial.Serial(b_path, 9600, timeout=0)
    try:
        every_byte = bytes(range(256))      # includes XON/XOFF, CR, LF, Ctrl-C
        for sender, receiver in ((a, b), (b, a)):
            sender.write(every_byte)
            assert await _read(receiver, len(every_byte)) == every_byte
    finally:
        a.close()
        b.close()
        cable.close()


# -- the household base load ------------------------------------------------------------------

def test_household_profile_is_reproducible_and_seeded():
    day = [household_profile(t, seed=7) for t in range(0, 86400, 60)]
    assert day == [household_profile(t, seed=7) for t in range(0, 86400, 60)]
    assert day != [household_profile(t, seed=8) for t in range(0, 86400, 60)]


def test_household_profile_is_plausible():
    minutes = range(0, 86400, 60)
    total = {t: sum(household_profile(t, seed=3)) for t in minutes}
    night = statistics.mean(total[t] for t in minutes if 1 * 3600 <= t < 5 * 3600)
    evening = statistics.mean(total[t] for t in minutes if 18 * 3600 <= t < 21 * 3600)
    assert 0.5 < night < 3 and evening > 2 * night
    for t in minutes:
        currents = household_profile(t, seed=3)
        assert all(0 <= a < 63 for a in currents), "within a home's 63 A main fuse"
    # Appliances switch on and off: the load has steps, not only a smooth curve.
    steps = [abs(total[t + 60] - total[t]) for t in range(0, 86400 - 60, 60)]
    assert max(steps) > 5


def test_a_block_of_flats_is_many_households():
    one = statistics.mean(sum(household_profile(t, seed=1)) for t in range(0, 86400, 300))
    twenty = statistics.mean(sum(household_profile(t, seed=1, households=20)) for t in range(0, 86400, 300))
    assert 10 * one < twenty < 40 * one
