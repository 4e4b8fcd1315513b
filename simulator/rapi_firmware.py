"""A simulated OpenEVSE controller board, as its RAPI serial port shows it, on a real tty.

`simulated_wallbox()` puts `SimulatedRapiFirmware` on one end of a null
modem (`simulator.serial_link`: two pseudo-terminals relayed by the event
loop) and gives the other end a stable path for the bridge, a symlink as
udev makes for an adapter. Pulling the adapter out (`WallboxRig.unplug`)
closes the cable and removes the path; `replug` lays a new cable and puts
the path back, as a re-enumerated USB adapter comes back under its name.

The firmware follows the RAPI protocol description (checksums, sequence
ids, $AT notifications, EVSE state numbers) and models what the bridge
relies on: the vehicle's pilot state, enable/sleep/disable, the current
capacity, and an energy meter that folds a session into its lifetime total
when the vehicle leaves. Faults are injected by the tests: garbled or
badly checksummed replies, noise on the wire, silence, the wallbox's own
fault states.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import tty
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Callable

from firmware_bridge.bridge import Bridge
from firmware_bridge.config import BridgeConfig
from firmware_bridge.drivers.rapi_frames import DISABLED, SLEEPING, FrameError, checksum, decode
from simulator.serial_link import NullModem

STATE_A, STATE_B, STATE_C = 0x01, 0x02, 0x03
GFCI_FAULT, NO_GROUND, STUCK_RELAY, OVER_TEMPERATURE = 0x06, 0x07, 0x08, 0x0A


@dataclass
class Vehicle:
    max_current: float = 32.0
    wants_energy: bool = True


class SimulatedRapiFirmware:
    """An OpenEVSE board answering RAPI on `device`, a tty path (WallboxRig gives it one end of a null modem)."""

    def __init__(self, device: str | Path, *, hardware_max: int = 32, capacity: int = 16, voltage: float = 230.0,
                 energy_wh: int = 0, firmware_version: str = "8.2.2", clock: Callable[[], float] = time.monotonic,
                 speed: float = 1.0) -> None:
        self.device = Path(device)
        self.hardware_max, self.min_current, self.voltage = hardware_max, 6, voltage
        self.capacity = self.eeprom_capacity = capacity
        self.firmware_version = firmware_version
        self.clock, self.speed = clock, speed  # speed: how much faster than the clock energy flows
        self.mode = "enabled"
        self.fault: int | None = None
        self.vehicle: Vehicle | None = None
        self.session_ws, self.total_wh, self._last = 0.0, energy_wh, clock()
        self.commands: list[str] = []  # every command received, e.g. "SC 10 V"
        # Fault injection: the next n replies with a wrong checksum; no replies at all.
        self.bad_checksums = 0
        self.silent = False
        self._fd: int | None = None
        self._buffer = bytearray()
        self._changed = asyncio.Event()  # replaced by a fresh one each time it fires
        self._shown: tuple[int, int] | None = None

    # ---- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        self._fd = os.open(self.device, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self._fd)
        asyncio.get_running_loop().add_reader(self._fd, self._readable)
        self._shown = self._states()

    def close(self) -> None:
        if self._fd is not None:
            asyncio.get_running_loop().remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None

    # ---- what happens at the wallbox ------------------------------------------------------

    def plug_in(self, max_current: float = 32.0, wants_energy: bool = True) -> None:
        self._advance()
        self.vehicle = Vehicle(max_current, wants_energy)
        self.session_ws = 0.0  # the firmware starts a session when a vehicle connects
        self._announce()

    def unplug(self) -> None:
        self._advance()
        if self.vehicle is not None:
            self.total_wh += int(self.session_ws // 3600)  # ... and folds it into the total when it leaves
        self.vehicle = None
        self._announce()

    def vehicle_wants_energy(self, wants: bool) -> None:
        assert self.vehicle is not None, "no vehicle plugged in"
        self._advance()
        self.vehicle.wants_energy = wants
        self._announce()

    def set_fault(self, state: int | None) -> None:
        """Enter one of the firmware's fault states (e.g. GFCI_FAULT); None clears it."""
        self._advance()
        self.fault = state
        self._announce()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Until `predicate()` holds; checked after every command and every change."""
        async def until() -> None:
            while not predicate():
                await self._changed.wait()
        await asyncio.wait_for(until(), timeout)

    # ---- what the bridge can read ----------------------------------------------------------

    @property
    def pilot_state(self) -> int:
        if self.vehicle is None:
            return STATE_A
        charging = self.vehicle.wants_energy and self.mode == "enabled" and self.fault is None
        return STATE_C if charging else STATE_B

    @property
    def evse_state(self) -> int:
        if self.fault is not None:
            return self.fault
        if self.mode == "sleeping":
            return SLEEPING
        if self.mode == "disabled":
            return DISABLED
        return self.pilot_state

    @property
    def current(self) -> float:
        """Amps the vehicle draws now."""
        if self.evse_state != STATE_C or self.vehicle is None:
            return 0.0
        return float(min(self.capacity, self.vehicle.max_current))

    @property
    def energy_wh(self) -> int:
        self._advance()
        return self.total_wh + (int(self.session_ws // 3600) if self.vehicle else 0)

    # ---- the serial side -------------------------------------------------------------------

    def _readable(self) -> None:
        assert self._fd is not None
        try:
            data = os.read(self._fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # the cable is gone; WallboxRig.replug opens the new one
            self.close()
            return
        self._buffer += data
        while (end := self._buffer.find(b"\r")) >= 0:
            line, self._buffer = bytes(self._buffer[:end]), self._buffer[end + 1:]
            self._command(line.strip(b"\n"))
        self._fire()

    def _command(self, line: bytes) -> None:
        try:
            frame = decode(line)
        except FrameError:
            self.send("NK", seq=None)
            return
        self.commands.append(" ".join((frame.code, *frame.params)))
        if self.silent:
            return
        self._advance()
        handler = getattr(self, f"_cmd_{frame.code}", None)
        try:
            ok, params = handler(*frame.params) if handler else (False, ())
        except (TypeError, ValueError):  # wrong number or kind of parameters
            ok, params = False, ()
        self.send("OK" if ok else "NK", *params, seq=frame.seq)
        if frame.code == "FR":
            self.send("AB", "00", self.firmware_version, seq=None)  # what a board says after booting
        self._announce()

    def send(self, code: str, *params: object, seq: int | None) -> None:
        text = "$" + " ".join([code, *(str(p) for p in params)]) + (f" :{seq:02X}" if seq else "")
        value = checksum(text)
        if self.bad_checksums and code in ("OK", "NK"):
            self.bad_checksums -= 1
            value ^= 0x5A
        data = f"{text}^{value:02X}\r".encode("ascii")
        if self._fd is not None:
            with contextlib.suppress(BlockingIOError, OSError):
                os.write(self._fd, data)

    def _states(self) -> tuple[int, int]:
        return self.evse_state, self.pilot_state if self.mode != "disabled" else 0

    def _announce(self) -> None:
        """$AT when the state changed, as the firmware does on every transition."""
        states = self._states()
        if states != self._shown:
            self._shown = states
            self.send("AT", f"{states[0]:02X}", f"{states[1]:02X}", self.capacity, "0000", seq=None)
        self._fire()

    def _fire(self) -> None:
        fired, self._changed = self._changed, asyncio.Event()
        fired.set()

    def _advance(self) -> None:
        now = self.clock()
        if self.vehicle is not None:
            self.session_ws += self.current * self.voltage * (now - self._last) * self.speed
        self._last = now

    # ---- commands: (ok, reply parameters) ------------------------------------------------------

    def _cmd_GV(self) -> tuple[bool, tuple]:
        return True, (self.firmware_version, "5.2.1")

    def _cmd_GC(self) -> tuple[bool, tuple]:
        return True, (self.min_current, self.hardware_max, self.capacity, self.hardware_max)

    def _cmd_GS(self) -> tuple[bool, tuple]:
        evse, pilot = self._states()
        return True, (f"{evse:02x}", 0, f"{pilot:02x}", "0000")

    def _cmd_GG(self) -> tuple[bool, tuple]:
        return True, (int(self.current * 1000), int(self.voltage * 1000))

    def _cmd_GU(self) -> tuple[bool, tuple]:
        return True, (int(self.session_ws), self.total_wh)

    def _cmd_SC(self, amps: str, *flags: str) -> tuple[bool, tuple]:
        wanted = int(amps)
        self.capacity = max(self.min_current, min(self.hardware_max, wanted))
        if "V" not in flags:
            self.eeprom_capacity = self.capacity
        return self.capacity == wanted, (self.capacity,)

    def _cmd_FE(self) -> tuple[bool, tuple]:
        self.mode = "enabled"
        return True, ()

    def _cmd_FS(self) -> tuple[bool, tuple]:
        self.mode = "sleeping"
        return True, ()

    def _cmd_FD(self) -> tuple[bool, tuple]:
        self.mode = "disabled"
        return True, ()

    def _cmd_FR(self) -> tuple[bool, tuple]:
        # A reboot: volatile settings are gone, the board comes back enabled.
        self.capacity, self.mode = self.eeprom_capacity, "enabled"
        return True, ()


class WallboxRig:
    """The firmware on a null modem; the bridge opens `bridge_path`."""

    def __init__(self, directory: str | Path, **firmware: Any) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.bridge_path = directory / "ttyBRIDGE"
        self._wallbox_path = directory / "ttyWALLBOX"
        self.cable = NullModem()
        self.firmware = SimulatedRapiFirmware(self._wallbox_path, **firmware)
        # Line noise on what travels to the bridge (bytes in, bytes out); None: a clean line.
        self.noise: Callable[[bytes], bytes] | None = None

    def plug(self) -> None:
        """Lay the cable and connect both ends (again)."""
        self.cable = NullModem()
        self.cable.noise = self._on_the_wire
        wallbox_end, bridge_end = self.cable.open()
        for path, target in ((self._wallbox_path, wallbox_end), (self.bridge_path, bridge_end)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            path.symlink_to(target)
        self.firmware.close()  # its end of the old cable, if it has not noticed yet
        self.firmware.start()

    def unplug(self) -> None:
        """The USB adapter is pulled out: the bridge's tty closes and its path is gone."""
        self.bridge_path.unlink(missing_ok=True)
        self.cable.close()

    replug = plug

    def _on_the_wire(self, data: bytes, towards: int) -> bytes:
        return self.noise(data) if self.noise is not None and towards == 1 else data

    def close(self) -> None:
        self.firmware.close()
        self.cable.close()
        for path in (self._wallbox_path, self.bridge_path):
            path.unlink(missing_ok=True)


@contextlib.asynccontextmanager
async def simulated_wallbox(directory: str | Path, **firmware: Any) -> AsyncIterator[WallboxRig]:
    """A WallboxRig in `directory`, plugged in, closed on exit."""
    rig = WallboxRig(directory, **firmware)
    rig.plug()
    try:
        yield rig
    finally:
        rig.close()


@contextlib.asynccontextmanager
async def running_bridge(bridge: Bridge, timeout: float = 10.0) -> AsyncIterator[Bridge]:
    """Run `bridge` in the background until the block ends, then stop it as SIGTERM would."""
    task = asyncio.create_task(bridge.run())
    started = asyncio.create_task(bridge.started.wait())
    await asyncio.wait([task, started], return_when=asyncio.FIRST_COMPLETED, timeout=timeout)
    if task.done():
        task.result()  # raises the start-up error
    try:
        yield bridge
    finally:
        started.cancel()
        bridge.stop()
        await asyncio.wait_for(task, timeout)


@contextlib.asynccontextmanager
async def bridged_wallbox(directory: str | Path, *, charge_point_id: str, url: str, password: str | None,
                          meter_interval: float = 10.0, speed: float = 1.0,
                          default_current: float = 6.0) -> AsyncIterator[tuple[WallboxRig, Bridge]]:
    """A serial wallbox as a site has it, in this process: the simulated firmware on a
    null modem in `directory` and a firmware bridge that presents it to the edge at `url`
    (ws://host:port/ocpp). Drive the vehicle with rig.firmware.plug_in() / unplug()."""
    directory = Path(directory)
    async with simulated_wallbox(directory, speed=speed) as rig:
        config = BridgeConfig.model_validate({
            "charge_point": {"id": charge_point_id},
            "edge": {"url": url, "password": password, "reconnect_max_interval": 5},
            "wallbox": {"device": str(rig.bridge_path), "default_current": default_current},
            "metering": {"interval": meter_interval},
            "state_dir": str(directory / "bridge-state"),
        })
        async with running_bridge(Bridge(config)) as bridge:
            yield rig, bridge
