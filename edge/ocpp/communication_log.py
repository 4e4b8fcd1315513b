"""The communication log: every OCPP frame in and out, per charger, bounded.

Charger keys are masked before a frame is kept (masking.py).
Frames are buffered in memory and written once a second in one journal
commit: the log is for diagnosis, not a record we acknowledge, so it must not
cost an fsync per frame. The journal keeps the newest N frames per charger;
the memory buffer is capped too, so a journal stall cannot eat the RAM.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from edge.clock import Clock
from edge.journal import Journal, Store
from edge.ocpp.masking import mask_frame

log = logging.getLogger(__name__)


class CommunicationLog:
    def __init__(self, journal: Journal, clock: Clock, *, keep_per_charger: int, max_frame_chars: int,
                 max_buffered: int = 50_000, flush_every: float = 1.0):
        self._journal = journal
        self._clock = clock
        self._keep = keep_per_charger
        self._max_chars = max_frame_chars
        self._max_buffered = max_buffered
        self._flush_every = flush_every
        self._buffer: deque[tuple[str, str, str, str]] = deque()
        self.dropped = 0

    def record(self, charger_id: str, direction: str, frame: str | bytes, *, max_chars: int | None = None) -> None:
        """max_chars: a tighter cut for this frame (a stranger's, say) than the configured one."""
        limit = min(self._max_chars, max_chars or self._max_chars)
        if isinstance(frame, bytes):
            frame = frame.decode("utf-8", errors="replace")
        # Before the cut: a key must not survive as the start of a shortened frame.
        frame = mask_frame(frame)
        if len(frame) > limit:
            frame = f"{frame[:limit]}…[{len(frame) - limit} more characters]"
        if len(self._buffer) >= self._max_buffered:
            self._buffer.popleft()
            self.dropped += 1
        self._buffer.append((self._clock.now_iso(), charger_id, direction, frame))

    async def flush(self) -> None:
        frames, self._buffer = self._buffer, deque()
        if frames:
            await self._journal.write(Store.record_frames, list(frames), self._keep)

    async def run(self) -> None:
        # The app flushes once more on shutdown, before the journal closes.
        while True:
            await asyncio.sleep(self._flush_every)
            await self.flush()
