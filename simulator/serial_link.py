"""A null-modem cable between two pseudo-terminals, for serial tests without hardware.

Each end is the slave side of its own pty, a real tty device that pyserial
opens like /dev/ttyUSB0. The event loop relays whatever is written to one
end's device to the other's (through the masters, with `loop.add_reader`), so
a simulated meter on one end and the edge on the other talk as over a wire.
"""

from __future__ import annotations

import asyncio
import os
import tty
from typing import Callable


class NullModem:
    def __init__(self) -> None:
        self._ends: list[tuple[int, int]] = []      # (master fd, slave fd) per end
        self._loop: asyncio.AbstractEventLoop | None = None
        self.paths: tuple[str, str] | None = None
        # Tests set this to garble the bytes on the wire: called with the bytes
        # and the index (0 or 1, as in `paths`) of the end they travel to.
        self.noise: Callable[[bytes, int], bytes] | None = None

    def open(self) -> tuple[str, str]:
        """The two device paths. Call from the event loop that is to relay."""
        self._loop = asyncio.get_running_loop()
        for _ in range(2):
            master, slave = os.openpty()
            # Raw mode: no echo, no CR/LF translation, no XON/XOFF eating 0x11/0x13.
            # Binary Modbus frames must pass byte for byte, even before pyserial
            # opens the device and sets its own mode.
            tty.setraw(slave)
            os.set_blocking(master, False)
            self._ends.append((master, slave))
        (a, _), (b, _) = self._ends
        self._loop.add_reader(a, self._relay, a, b, 1)
        self._loop.add_reader(b, self._relay, b, a, 0)
        # We keep the slave fds open: a pty whose slave nobody holds makes its
        # master read EIO, which would break the cable whenever a side re-opens.
        self.paths = (os.ttyname(self._ends[0][1]), os.ttyname(self._ends[1][1]))
        return self.paths

    def _relay(self, source: int, target: int, towards: int) -> None:
        try:
            data = os.read(source, 4096)
        except OSError:     # nothing there after all, or the other side is gone
            return
        if self.noise is not None:
            data = self.noise(data, towards)
        view = memoryview(data)
        while view:
            try:
                written = os.write(target, view)
            except (BlockingIOError, InterruptedError, OSError):
                return      # a full or dead line loses bytes, like a real one
            view = view[written:]

    def close(self) -> None:
        for master, slave in self._ends:
            if self._loop is not None:
                self._loop.remove_reader(master)
            os.close(master)
            os.close(slave)
        self._ends.clear()
        self.paths = None
