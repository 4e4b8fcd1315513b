"""Modbus transport for meters: one pymodbus client per TCP endpoint or RS-485
device, shared by every meter on it.

RS-485 is one pair of wires: only one request may be on it at a time, and a
meter needs a moment of silence after a frame before the next one (3.5
character times by the standard, more for many meters and USB adapters). So
meters on one device share one client, one lock and a gap between frames, as
Home Assistant's Modbus hub does. A TCP gateway in front of an RS-485 bus has
the same constraint, so meters behind one host:port share one client too.

pymodbus' own retries and reconnects are switched off: the poller decides
when to try again and reports what happened, so a dead meter costs a
predictable amount of bus time.
"""

from __future__ import annotations

import asyncio

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from edge.meters.blocks import Block
from edge.meters.config import MeterConfig

EXCEPTION_NAMES = {1: "illegal function", 2: "illegal data address", 3: "illegal data value",
                   4: "device failure", 5: "acknowledge", 6: "device busy",
                   10: "gateway path unavailable", 11: "gateway target did not respond"}
# Answers that mean "not now" rather than "never": worth another try.
TRANSIENT = {5, 6, 10, 11}
MIN_SERIAL_GAP = 0.02       # s of silence between frames on RS-485


class MeterIOError(Exception):
    """A read that gave no usable registers. `answered` is True when the meter
    (or gateway) replied with a Modbus exception, i.e. it is there but refuses."""

    def __init__(self, text: str, answered: bool = False):
        super().__init__(text)
        self.answered = answered


def _key(config: MeterConfig) -> tuple:
    return ("tcp", config.host, config.port) if config.transport == "tcp" else ("rtu", config.device)


class Link:
    """One Modbus client. Hold `lock` for every read: `async with link.lock:`."""

    def __init__(self, config: MeterConfig):
        self.settings = config
        self.where = f"{config.host}:{config.port}" if config.transport == "tcp" else str(config.device)
        self.timeout = config.timeout
        # 11 bits per character (start, 8 data, parity or stop, stop).
        self.gap = max(MIN_SERIAL_GAP, 3.5 * 11 / config.baudrate) if config.transport == "rtu" else 0.0
        self.lock = asyncio.Lock()
        self.generation = 0         # bumped on every (re)connect: SunSpec addresses are found again
        self.users = 0
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None
        self._quiet_until = 0.0

    @property
    def shared(self) -> bool:
        """More than one meter polls through this client (several meters on one
        RS-485 line or behind one gateway): a dead one must not hold the bus."""
        return self.users > 1

    def adopt(self, config: MeterConfig) -> None:
        """Another meter on the same bus: its settings must match."""
        if config.transport == "rtu":
            differ = [k for k in ("baudrate", "parity", "stopbits", "bytesize")
                      if getattr(config, k) != getattr(self.settings, k)]
            if differ:
                raise ValueError(f"meters on {self.where} differ in {', '.join(differ)}")
        # The slowest meter on the bus sets how long to wait for an answer.
        self.timeout = max(self.timeout, config.timeout)

    def _make_client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        s = self.settings
        if s.transport == "tcp":
            return AsyncModbusTcpClient(str(s.host), port=s.port, timeout=self.timeout, retries=0,
                                        reconnect_delay=0, name=f"meter {self.where}")
        return AsyncModbusSerialClient(str(s.device), baudrate=s.baudrate, parity=s.parity, stopbits=s.stopbits,
                                       bytesize=s.bytesize, timeout=self.timeout, retries=0, reconnect_delay=0,
                                       name=f"meter {self.where}")

    async def _client_ready(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        if self._client is not None and self._client.connected:
            return self._client
        self.close()
        client = self._make_client()
        if not await client.connect():
            client.close()
            what = "open" if self.settings.transport == "rtu" else "connect to"
            raise MeterIOError(f"cannot {what} {self.where}")
        self._client = client
        self.generation += 1
        return client

    async def _wait_quiet(self) -> None:
        delay = self._quiet_until - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)

    async def read(self, block: Block, unit: int, retries: int) -> list[int]:
        """The registers of one block; raises MeterIOError with the reason."""
        assert self.lock.locked(), "hold link.lock around reads"
        last = "no answer"
        for _attempt in range(retries + 1):
            client = await self._client_ready()
            await self._wait_quiet()
            try:
                call = client.read_holding_registers if block.function == 3 else client.read_input_registers
                response = await call(block.address, count=block.count, device_id=unit)
            except ModbusIOException as exc:
                last = (f"no answer within {self.timeout:g} s" if "no response" in str(exc).lower()
                        else f"unusable answer ({exc})")
                continue
            except (ConnectionException, OSError) as exc:
                self.close()
                last = f"connection lost ({exc})"
                continue
            except ModbusException as exc:
                last = f"unusable answer ({exc})"
                continue
            finally:
                self._quiet_until = asyncio.get_running_loop().time() + self.gap
            if response.isError():
                code = int(getattr(response, "exception_code", 0))
                text = f"Modbus exception {code} ({EXCEPTION_NAMES.get(code, 'unknown')})"
                if code in TRANSIENT:
                    last = text
                    continue
                raise MeterIOError(f"{block.describe()} at unit {unit} on {self.where}: answered {text}; check "
                                   "the register map's function code and addresses, and the unit id", answered=True)
            registers = list(getattr(response, "registers", None) or [])
            if len(registers) != block.count:
                last = f"answered {len(registers)} registers instead of {block.count}"
                continue
            return registers
        raise MeterIOError(f"{block.describe()} at unit {unit} on {self.where}: {last}")

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class ModbusLinks:
    """The open links of one edge, keyed by TCP endpoint or serial device path.
    Build one in the app and hand it to every MeterPoller."""

    def __init__(self) -> None:
        self._links: dict[tuple, Link] = {}

    def link_for(self, config: MeterConfig) -> Link:
        key = _key(config)
        link = self._links.get(key)
        if link is None:
            link = self._links[key] = Link(config)
        else:
            link.adopt(config)
        link.users += 1
        return link

    def release(self, link: Link) -> None:
        link.users -= 1
        if link.users <= 0:
            link.close()
            for key, value in list(self._links.items()):
                if value is link:
                    del self._links[key]

    def close(self) -> None:
        for link in self._links.values():
            link.close()
        self._links.clear()
