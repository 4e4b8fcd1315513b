"""A serial port as a stream of lines, on the event loop and without a thread.

pyserial opens and configures the device (baud rate, 8N1, raw mode, an
exclusive lock so two bridges cannot share one wallbox); from then on the
bytes move through its non-blocking file descriptor, which the event loop
watches with `add_reader`. A read error or end of file means the device is
gone (a USB adapter pulled out): the line is then dead and the caller
opens a new one once the device is back.
"""

from __future__ import annotations

import asyncio
import logging
import os

import serial

from firmware_bridge.drivers.base import PortLost

log = logging.getLogger(__name__)

MAX_LINE = 256  # no RAPI frame is near this; a longer run without CR is noise


class SerialLine:
    def __init__(self, device: str, baud_rate: int, terminator: bytes = b"\r") -> None:
        self.device, self.baud_rate, self.terminator = device, baud_rate, terminator
        self._port: serial.Serial | None = None
        self._buffer = bytearray()
        self._lines: asyncio.Queue[bytes] = asyncio.Queue()
        self._lost: asyncio.Event = asyncio.Event()
        self.lost_reason = ""

    @property
    def is_open(self) -> bool:
        return self._port is not None and not self._lost.is_set()

    def open(self) -> None:
        try:
            port = serial.Serial(self.device, self.baud_rate, timeout=0, write_timeout=0, exclusive=True)
        except (serial.SerialException, OSError, ValueError) as exc:
            reason = os.strerror(exc.errno) if getattr(exc, "errno", None) else str(exc)
            raise PortLost(f"cannot open {self.device}: {reason}") from None
        self._port = port
        self._buffer.clear()
        self._lines = asyncio.Queue()
        self._lost = asyncio.Event()
        asyncio.get_running_loop().add_reader(port.fileno(), self._readable)

    def close(self) -> None:
        port, self._port = self._port, None
        if port is None:
            return
        try:
            asyncio.get_running_loop().remove_reader(port.fileno())
        except (ValueError, OSError):
            pass  # the descriptor is already unusable; closing below is all that is left
        try:
            port.close()
        except (serial.SerialException, OSError) as exc:
            log.debug("closing %s: %s", self.device, exc)
        self._mark_lost("closed")

    def write(self, data: bytes) -> None:
        if not self.is_open:
            raise PortLost(f"{self.device} is not open ({self.lost_reason or 'not opened yet'})")
        assert self._port is not None
        try:
            written = os.write(self._port.fileno(), data)
        except BlockingIOError:
            written = 0  # output queue full: nobody drains the line, as good as no answer
        except OSError as exc:
            self._mark_lost(str(exc))
            raise PortLost(f"{self.device}: {exc}") from None
        if written < len(data):
            log.warning("serial write to %s cut short (%d of %d bytes)", self.device, written, len(data))

    async def readline(self, timeout: float) -> bytes | None:
        """The next line without its terminator; None when `timeout` passed first. Raises PortLost."""
        if not self._lines.empty():
            return self._lines.get_nowait()
        if not self.is_open:
            raise PortLost(f"{self.device} is gone ({self.lost_reason})")
        line = asyncio.ensure_future(self._lines.get())
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            await asyncio.wait({line, lost}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            if not line.done():
                line.cancel()
        if line.done() and not line.cancelled():
            return line.result()
        if self._lost.is_set():
            raise PortLost(f"{self.device} is gone ({self.lost_reason})")
        return None

    def _readable(self) -> None:
        assert self._port is not None
        try:
            data = os.read(self._port.fileno(), 4096)
        except BlockingIOError:
            return
        except OSError as exc:  # EIO: the adapter (or the pty's other end) went away
            self._gone(str(exc))
            return
        if not data:
            self._gone("end of file")
            return
        self._buffer += data
        while (end := self._buffer.find(self.terminator)) >= 0:
            line = bytes(self._buffer[:end]).strip(b"\n")
            del self._buffer[: end + len(self.terminator)]
            if line:
                self._lines.put_nowait(line)
        if len(self._buffer) > MAX_LINE:
            self._lines.put_nowait(bytes(self._buffer))  # handed on as the garbage it is
            self._buffer.clear()

    def _gone(self, reason: str) -> None:
        log.warning("serial device %s lost: %s", self.device, reason)
        port = self._port
        if port is not None:
            asyncio.get_running_loop().remove_reader(port.fileno())
        self._mark_lost(reason)

    def _mark_lost(self, reason: str) -> None:
        if not self._lost.is_set():
            self.lost_reason = reason
            self._lost.set()
