"""What happened at the site, as plain data, for the parts that follow the
OCPP layer (sessions, load management, charge records, uplink).

A small in-process fan-out: each subscriber gets its own bounded queue, so a
slow consumer loses its own oldest events (and knows it) instead of stalling
the chargers.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    kind: str          # charger.connected, charger.disconnected, charger.booted, connector.status, command.done,
                       # transaction.started, transaction.stopped, meter.values, charger.presence,
                       # charger.ready (it listens: boot accepted, or first frame; see edge.ocpp.v16.session)
    charger_id: str
    at: str
    data: dict[str, Any] = field(default_factory=dict)


class Subscription:
    def __init__(self, maxsize: int):
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self.dropped = 0

    async def get(self) -> Event:
        return await self.queue.get()


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[Subscription] = []

    def subscribe(self, maxsize: int = 10_000) -> Subscription:
        sub = Subscription(maxsize)
        self._subscribers.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscribers.remove(sub)

    def publish(self, event: Event) -> None:
        for sub in self._subscribers:
            if sub.queue.full():
                sub.queue.get_nowait()
                sub.dropped += 1
                if sub.dropped in (1, 100) or sub.dropped % 10_000 == 0:
                    log.warning("event subscriber is slow; dropped %d events so far", sub.dropped)
            sub.queue.put_nowait(event)
