"""The RAPI driver: frames as data, then the driver against the simulated firmware on a real pty."""

from __future__ import annotations

import pytest

from firmware_bridge import drivers
from firmware_bridge.drivers import rapi_frames as frames
from firmware_bridge.drivers.base import FaultKind, Mode, Pilot, PortLost, SerialSettings, register
from firmware_bridge.drivers.rapi import RapiDriver
from simulator.rapi_firmware import GFCI_FAULT


# --- frames ---------------------------------------------------------------------

def test_encode_with_sequence_id_and_xor_checksum() -> None:
    data = frames.encode("SC", 16, "V", seq=0x1A)
    text = data.decode()
    assert text.startswith("$SC 16 V :1A^") and text.endswith("\r")
    assert int(text[-3:-1], 16) == frames.checksum("$SC 16 V :1A")


def test_known_checksums_from_the_protocol_description() -> None:
    # The examples the RAPI description gives for its XOR checksum.
    assert frames.encode("GS") == b"$GS^30\r"
    assert frames.encode("GG") == b"$GG^24\r"
    assert frames.encode("GU") == b"$GU^36\r"


@pytest.mark.parametrize("line, frame", [
    (b"$OK 03 1234 03 0200^" + b"%02X" % frames.checksum("$OK 03 1234 03 0200"),
     frames.Frame("OK", ("03", "1234", "03", "0200"))),
    (b"$OK 16 :07^" + b"%02X" % frames.checksum("$OK 16 :07"), frames.Frame("OK", ("16",), 7)),
    (b"$NK^" + b"%02X" % frames.checksum("$NK"), frames.Frame("NK", ())),
    (b"$AT 03 03 32 0000^" + b"%02X" % frames.checksum("$AT 03 03 32 0000"),
     frames.Frame("AT", ("03", "03", "32", "0000"))),
])
def test_decode(line: bytes, frame: frames.Frame) -> None:
    assert frames.decode(line) == frame


@pytest.mark.parametrize("line", [
    b"$OK 03 0 03 0000^00",          # wrong checksum
    b"$OK 03 0 03 0000",             # no checksum: not accepted from anyone
    b"$O\xcbK 16^12",                # line noise
    b"OK 16^12",                     # no start
    b"",
])
def test_decode_refuses(line: bytes) -> None:
    with pytest.raises(frames.FrameError):
        frames.decode(line)


@pytest.mark.parametrize("evse, pilot, expected", [
    (0x01, 0x01, (Pilot.A, Mode.ENABLED, None)),
    (0x03, 0x03, (Pilot.C, Mode.ENABLED, None)),
    (0xFE, 0x02, (Pilot.B, Mode.SLEEPING, None)),   # asleep, the pilot still shows the vehicle
    (0xFF, 0x00, (Pilot.UNKNOWN, Mode.DISABLED, None)),
    (0x00, 0x00, (Pilot.UNKNOWN, Mode.ENABLED, None)),
])
def test_interpret_state(evse, pilot, expected) -> None:
    assert frames.interpret_state(evse, pilot) == expected


@pytest.mark.parametrize("evse, kind", [
    (0x05, FaultKind.VEHICLE), (0x06, FaultKind.GROUND), (0x07, FaultKind.GROUND), (0x08, FaultKind.RELAY),
    (0x09, FaultKind.GROUND), (0x0A, FaultKind.OVER_TEMPERATURE), (0x0B, FaultKind.OVER_CURRENT),
    (0x0E, FaultKind.RELAY), (0x42, FaultKind.OTHER),
])
def test_fault_states(evse, kind) -> None:
    pilot, _, fault = frames.interpret_state(evse, 0x02)
    assert fault is not None and fault.kind == kind and fault.vendor_code == f"{evse:02X}"
    assert pilot == Pilot.B


# --- the registry ----------------------------------------------------------------

def test_drivers_are_registered_by_name() -> None:
    assert "rapi" in drivers.names()
    settings = SerialSettings("/dev/null", 115200, 0.1, 1)
    assert isinstance(drivers.create("rapi", settings), RapiDriver)
    with pytest.raises(ValueError, match="no wallbox driver 'modbus'"):
        drivers.create("modbus", settings)
    with pytest.raises(ValueError, match="already registered"):
        register("rapi")(RapiDriver)


# --- the driver on a real tty ----------------------------------------------------

@pytest.fixture
async def driver(rig):
    d = RapiDriver(SerialSettings(str(rig.bridge_path), 115200, reply_timeout=0.1, attempts=2))
    yield d
    await d.close()


async def test_identity_state_and_meter(rig, driver) -> None:
    identity = await driver.connect()
    assert (identity.vendor, identity.firmware_version, identity.max_current) == ("OpenEVSE", "8.2.2", 32)
    state = await driver.read_state()
    assert (state.pilot, state.mode, state.fault, state.offered_current) == (Pilot.A, Mode.ENABLED, None, 16)
    rig.firmware.plug_in(max_current=16)
    assert await driver.wait_notification(1.0)  # $AT
    assert await driver.set_current(13) == 13
    assert "SC 13 V" in rig.firmware.commands
    await driver.set_mode(Mode.ENABLED)
    state = await driver.read_state()
    assert (state.pilot, state.current, state.voltage) == (Pilot.C, 13.0, 230.0)


async def test_a_current_out_of_range_is_clamped_by_the_wallbox(rig, driver) -> None:
    await driver.connect()
    assert await driver.set_current(40) == 32  # $NK 32: the firmware says what it set
    assert await driver.set_current(3) == 6


async def test_energy_is_one_register_across_sessions(rig, driver) -> None:
    """The firmware counts a session apart and adds it to its total when the vehicle leaves;
    the driver's register neither jumps nor drops at that moment."""
    firmware = rig.firmware
    await driver.connect()
    firmware.plug_in()
    await driver.set_mode(Mode.ENABLED)
    firmware.session_ws = 7200.0 + 1800  # 2.5 Wh
    assert (await driver.read_state()).energy_wh == 2
    firmware.unplug()
    assert firmware.total_wh == 2
    assert (await driver.read_state()).energy_wh == 2
    firmware.plug_in()  # a new session starts at 0 watt-seconds
    assert (await driver.read_state()).energy_wh == 2


async def test_a_late_reply_is_not_taken_for_the_next_one(rig, driver) -> None:
    await driver.connect()
    # The answer to a command that timed out earlier arrives first: the driver waits for its own.
    rig.firmware.send("OK", 99, 99, 99, seq=0x77)
    assert (await driver.query("GC", 3))[1] == "32"


async def test_faults_and_a_lost_port(rig, driver) -> None:
    await driver.connect()
    rig.firmware.set_fault(GFCI_FAULT)
    state = await driver.read_state()
    assert state.fault is not None and state.fault.kind == FaultKind.GROUND
    rig.unplug()
    with pytest.raises(PortLost):
        await driver.read_state()
    await driver.close()
    with pytest.raises(PortLost, match="cannot open"):
        await driver.connect()
