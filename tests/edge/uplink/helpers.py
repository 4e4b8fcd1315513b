"""Helpers for the uplink tests: charge records made straight in the journal, and
a TCP proxy between the edge and the broker that can swallow the broker's answers."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

from edge.journal import Store
from tests.mqtt_broker import free_port


def cdr_document(n: int, charger: str = "CP-1") -> dict[str, Any]:
    """A minimal record with the columns the journal needs (a start that failed)."""
    return {"id": str(uuid.uuid4()), "transaction_id": None, "charger_id": charger, "user_group": None,
            "status": "Failed", "start_time": f"2026-01-01T00:{n // 60 % 60:02d}:{n % 60:02d}.000Z",
            "created_at": f"2026-01-01T01:00:{n % 60:02d}.000Z", "n": n}


async def make_cdrs(edge: Any, count: int, first: int = 0) -> list[str]:
    """`count` records, in order (their seq order is the order of this list), in one commit
    (the journal takes queued writes in order into its next group commit)."""
    docs = [cdr_document(n) for n in range(first, first + count)]
    assert all(await asyncio.gather(*(edge.journal.write(Store.record_cdr, doc, None) for doc in docs)))
    return [doc["id"] for doc in docs]


class Proxy:
    """Loopback TCP proxy to the broker. `swallow_answers`: bytes from the broker are
    dropped (the edge's PUBLISHes arrive, their PUBACKs never come back); `cut()` closes
    every connection without an MQTT DISCONNECT (a lost link: the broker sends the will)."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.port = free_port()
        self.swallow_answers = False
        self.refusing = False            # new connections are closed at once (the link stays down)
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.base_events.Server | None = None
        self.connections = 0

    async def start(self) -> "Proxy":
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.close()
            return
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        self._writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, answers: bool) -> None:
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                while data := await src.read(65536):
                    if answers and self.swallow_answers:
                        continue
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer, False), pipe(up_reader, writer, True))

    def cut(self) -> None:
        for writer in self._writers:
            transport = writer.transport
            if not transport.is_closing():
                transport.abort()
        self._writers.clear()

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
