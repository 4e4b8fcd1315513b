"""The queue of transaction messages (StartTransaction, StopTransaction, MeterValues).

OCPP 1.6 requires these to reach the central system in order, even across
connection losses. An entry leaves the queue only once the central system
answered it, so one sent just before the link died is sent again after the
reconnect: the central system may see it twice, as with a real wallbox.

The payload is built when the entry is sent, not when it is queued, so
messages queued behind an unanswered StartTransaction carry the transaction
id the central system gave it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from simulator.connector import Transaction


@dataclass(eq=False)
class Entry:
    transaction: Transaction
    action: str
    # Returns the ocpp call payload, or None when it can no longer be sent
    # (its transaction never got an id from the central system).
    build: Callable[[], Any]
    on_result: Callable[[Any], None] | None = None
    delivered: bool = False


class Outbox:
    def __init__(self) -> None:
        self._entries: deque[Entry] = deque()
        self._filled = asyncio.Event()

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, entry: Entry) -> Entry:
        # Synchronous so state changes and their queued message happen in one
        # step, also inside ocpp handlers that must not await a call.
        self._entries.append(entry)
        self._filled.set()
        return entry

    async def head(self) -> Entry:
        while not self._entries:
            self._filled.clear()
            await self._filled.wait()
        return self._entries[0]

    def pop(self, entry: Entry) -> None:
        if not self._entries or self._entries[0] is not entry:
            raise RuntimeError("only the entry at the head can leave the outbox")
        self._entries.popleft()
        entry.delivered = True
