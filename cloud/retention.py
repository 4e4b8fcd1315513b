"""The retention job: every RUN_EVERY_S (and at start), on whichever instance gets the lock first,
the steps of cloud/store/retention.py until none is left: partitions ahead, raw telemetry past
CLOUD_TELEMETRY_RAW_DAYS folded into 1-minute aggregates and dropped, aggregates past
CLOUD_TELEMETRY_AGGREGATE_DAYS deleted."""

from __future__ import annotations

import asyncio
import logging

from cloud.db import Database
from cloud.store import retention as store
from edge.clock import Clock

log = logging.getLogger(__name__)

RUN_EVERY_S = 3600.0
MAX_STEPS = 1000            # a run ends there (a large backlog after an upgrade goes on next run)


class Retention:
    def __init__(self, db: Database, clock: Clock, raw_days: int = 30, aggregate_days: int = 365):
        self.db, self.clock = db, clock
        self.raw_days, self.aggregate_days = raw_days, aggregate_days
        self.runs = 0

    async def run_once(self) -> list[str]:
        """-> what was done, step by step."""
        done = []
        today = self.clock.now().date()
        for _ in range(MAX_STEPS):
            what = await self.db.write(store.step, today, self.raw_days, self.aggregate_days)
            if what is None:
                break
            log.info("retention: %s", what)
            done.append(what)
        self.runs += 1
        return done

    async def run(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception as exc:  # noqa: BLE001 - the database away, a lock timeout: the next run goes on
                log.warning("retention: a run failed (retried in %.0f s): %s", RUN_EVERY_S, exc)
            await asyncio.sleep(RUN_EVERY_S)
