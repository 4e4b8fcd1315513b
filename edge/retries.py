"""How often the edge asks a charger again when configuring it failed on the
charger's side (no answer, a CALLERROR): soon at first, then less and less
often, and a bounded number of times per connection. A charger that still
fails is tried again from the start when it next connects (and is ready)."""

from __future__ import annotations

import asyncio
from typing import Callable

# Seconds before retry 1, 2, ...: about nine minutes in all.
RETRY_DELAYS: tuple[float, ...] = (5.0, 15.0, 45.0, 135.0, 300.0)


def next_delay(attempts_so_far: int, delays: tuple[float, ...] = RETRY_DELAYS) -> float | None:
    """The wait before the next retry, or None when the retries are used up."""
    return delays[attempts_so_far] if 0 <= attempts_so_far < len(delays) else None


class Later:
    """At most one pending retry per charger, run after its delay; asking again replaces it. The
    charger may have gone meanwhile: `action` checks that itself when it runs."""

    def __init__(self, name: str):
        self._name = name
        self._tasks: dict[str, asyncio.Task] = {}

    def call(self, charger_id: str, delay: float, action: Callable[[], None]) -> None:
        self.cancel(charger_id)
        self._tasks[charger_id] = asyncio.create_task(self._after(charger_id, delay, action),
                                                      name=f"{self._name} {charger_id}")

    async def _after(self, charger_id: str, delay: float, action: Callable[[], None]) -> None:
        try:
            await asyncio.sleep(delay)
        finally:
            if self._tasks.get(charger_id) is asyncio.current_task():
                del self._tasks[charger_id]
        action()

    def cancel(self, charger_id: str) -> None:
        task = self._tasks.pop(charger_id, None)
        if task is not None:
            task.cancel()

    def cancel_all(self) -> None:
        for charger_id in list(self._tasks):
            self.cancel(charger_id)
