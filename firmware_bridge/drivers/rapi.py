"""The OpenEVSE RAPI driver: the serial protocol of the OpenEVSE controller board.

One command at a time (a lock, as on any shared serial bus), each tagged
with a sequence id so that a late answer to an earlier, timed-out command is
recognised and dropped instead of being taken for the answer to this one.
A garbled line or a wrong checksum while a command waits means its answer
was lost: the command is sent again at once rather than after the timeout.
Commands are idempotent, so sending one twice is harmless.
"""

from __future__ import annotations

import asyncio
import itertools
import logging

from firmware_bridge.drivers import rapi_frames as frames
from firmware_bridge.drivers.base import (DriverError, Fault, Identity, Mode, Pilot, PortLost, SerialSettings,
                                          WallboxState, register)
from firmware_bridge.serial_line import SerialLine

log = logging.getLogger(__name__)

_MODE_COMMANDS = {Mode.ENABLED: "FE", Mode.SLEEPING: "FS", Mode.DISABLED: "FD"}


class Refused(DriverError):
    """The wallbox answered $NK."""

    def __init__(self, command: str, params: tuple[str, ...]) -> None:
        super().__init__(f"${command} refused: $NK {' '.join(params)}".rstrip())
        self.params = params


@register("rapi")
class RapiDriver:
    def __init__(self, settings: SerialSettings) -> None:
        self.settings = settings
        self.line = SerialLine(settings.device, settings.baud_rate)
        self._lock = asyncio.Lock()
        self._sequence = itertools.cycle(range(1, 256))  # 0 means "no id" in RAPI
        # Set when the wallbox announced a change while a command was waiting.
        self._notified = False
        # Lines that were not valid frames, for the installer's diagnostics.
        self.bad_frames = 0

    # ---- the interface -------------------------------------------------------

    async def connect(self) -> Identity:
        self.line.close()
        self.line.open()
        version = await self.query("GV", 1)
        capacity = await self.query("GC", 3)  # min, hardware max, pilot, configured max
        return Identity(vendor="OpenEVSE", model="OpenEVSE (RAPI)", firmware_version=version[0],
                        max_current=frames.number(capacity[1]))

    async def close(self) -> None:
        self.line.close()

    async def read_state(self) -> WallboxState:
        # The firmware folds a session's energy into its lifetime total when the
        # vehicle leaves. Reading the state on both sides of $GU tells whether
        # that happened in between; if so the reading is taken again.
        for _ in range(3):
            before = await self._state()
            used = await self.query("GU", 2)  # watt-seconds this session, Wh before it
            after = await self._state()
            if before[0].plugged == after[0].plugged:
                break
        else:
            raise DriverError("the vehicle kept plugging and unplugging while being read")
        pilot, mode, fault = after
        session_ws, total_wh = frames.number(used[0]), frames.number(used[1])
        energy = total_wh + (session_ws // 3600 if pilot.plugged else 0)
        measured = await self.query("GG", 2)  # milliamps (-1 without ammeter), millivolts
        milliamps, millivolts = frames.number(measured[0]), frames.number(measured[1])
        capacity = await self.query("GC", 3)
        return WallboxState(pilot=pilot, mode=mode, fault=fault, offered_current=frames.number(capacity[2]),
                            current=max(0, milliamps) / 1000, voltage=millivolts / 1000, energy_wh=energy)

    async def set_current(self, amps: int) -> int:
        # V: volatile. Without it the firmware writes its EEPROM on every change,
        # and load management changes the current often enough to wear it out.
        try:
            applied = await self.command("SC", amps, "V")
        except Refused as refused:  # out of range: the firmware clamps and says to what
            applied = refused.params
        return frames.number(applied[0]) if applied else amps

    async def set_mode(self, mode: Mode) -> None:
        await self.command(_MODE_COMMANDS[mode])

    async def restart(self) -> None:
        await self.command("FR")

    async def wait_notification(self, timeout: float) -> bool:
        # Reading while idle also notices an adapter pulled out between polls.
        async with self._lock:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while not self._notified and (left := deadline - loop.time()) > 0:
                raw = await self.line.readline(left)
                if raw is None:
                    break
                try:
                    self._notified = frames.decode(raw).is_async  # a stale reply is dropped
                except frames.FrameError as exc:
                    self._bad_frame(exc)
            notified, self._notified = self._notified, False
            return notified

    # ---- commands ----------------------------------------------------------------

    async def command(self, code: str, *params: str | int) -> tuple[str, ...]:
        """Send one command and return the parameters of its $OK. Raises Refused, DriverError, PortLost."""
        async with self._lock:
            last_problem = "no answer"
            for _ in range(self.settings.attempts):
                seq = next(self._sequence)
                self.line.write(frames.encode(code, *params, seq=seq))
                try:
                    reply = await self._reply(seq)
                except frames.FrameError:  # logged with its bytes; the status says it short
                    last_problem = "garbled reply"
                    continue
                if reply is None:
                    continue
                if reply.code == "NK":
                    raise Refused(code, reply.params)
                return reply.params
            raise DriverError(f"{last_problem} to ${code} ({self.settings.attempts} attempts on "
                              f"{self.settings.device})")

    async def query(self, code: str, values: int) -> tuple[str, ...]:
        """A command whose $OK carries at least `values` parameters."""
        params = await self.command(code)
        if len(params) < values:
            raise frames.FrameError(f"${code} answered {' '.join(params)!r}: expected {values} values")
        return params

    async def _reply(self, seq: int) -> frames.Frame | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.reply_timeout
        while (left := deadline - loop.time()) > 0:
            raw = await self.line.readline(left)
            if raw is None:
                break
            try:
                frame = frames.decode(raw)
            except frames.FrameError as exc:
                self._bad_frame(exc)
                raise
            if frame.is_async:
                self._notified = True
            elif frame.code in ("OK", "NK") and frame.seq in (seq, None):
                return frame  # no id: firmware before RAPI 3 answers in order
            else:
                log.debug("dropped stale reply %s from %s", frame, self.settings.device)
        return None

    def _bad_frame(self, exc: frames.FrameError) -> None:
        self.bad_frames += 1
        log.warning("bad frame from %s: %s", self.settings.device, exc)

    async def _state(self) -> tuple[Pilot, Mode, Fault | None]:
        params = await self.query("GS", 3)  # evse state (hex), elapsed s, pilot state (hex), flags
        return frames.interpret_state(frames.number(params[0], base=16), frames.number(params[2], base=16))


__all__ = ["PortLost", "RapiDriver", "Refused"]
