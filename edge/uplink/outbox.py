"""The outbox: what the site has to tell the cloud, in the journal until the broker has it.

Where a message reports a journal record (a CDR, a session start or stop, a
status change, a fault), a trigger in the journal writes it in the same commit
as the record (migration 5), so nothing can happen at the site without its
message. Alerts from the load manager and telemetry arrive from the event bus
and are written here.

Every message has a stable id (a redelivery carries the same one) and, once it
is first put in a batch, a seq: per stream, counting up from 1 with no gaps.
A message leaves the outbox when the cloud has confirmed that its batch is in
the cloud database (a receipt), and not before: the broker's PUBACK is not
enough, since a broker can lose what it acknowledged. A message the cloud
refuses on its own is set aside (`held`, with the reason): kept, not sent
again until released (every hour, or `edgectl uplink release`).

The disk budget bounds the outbox. When it is exceeded, telemetry that was
never sent is thinned (every second message goes, up to MAX_THINNING times),
then dropped oldest first; then the oldest status changes, then alerts.
CDRs and session events are never dropped, nor a charger's CSR for the cloud to
sign and its answer to the certificate (KEPT_TYPES: they ride on the status
stream, and a lost CSR leaves the charger waiting days for a certificate that
never comes). Each drop is reported to the cloud as an `alert.outbox_dropped`
message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any, Callable

from contract.v1 import ANSWER_TYPE, CSR_TYPE, MAX_PAYLOAD_BYTES, PRECIOUS, STREAMS
from edge.clock import Clock
from edge.journal import Journal, Store

log = logging.getLogger(__name__)

MAX_BATCH_MESSAGES = 500            # contract.v1.UpBatch allows this many
MAX_THINNING = 3                    # telemetry keeps at least 1 in 8 before the oldest go
# Dropped in this order when over the budget (never the precious cdr and session streams).
EXPENDABLE = ("telemetry", "status", "alert")
if PRECIOUS & set(EXPENDABLE):
    raise ImportError("edge.uplink.outbox: a precious stream is listed as expendable")
# Messages of an expendable stream the budget keeps all the same: a charger's CSR (certificate.csr) waits on
# the cloud's certificate for days (docs/security.md), and its answer closes the cloud's record of it.
KEPT_TYPES = frozenset({CSR_TYPE, ANSWER_TYPE})
ALERT_TYPES = {"dlm.failsafe": "alert.failsafe", "dlm.over_limit": "alert.over_limit",
               "dlm.uncontrollable": "alert.uncontrollable", "edge.part_failed": "alert.part_failed",
               "recovery.step": "alert.recovery", "dlm.over_fuse": "alert.over_fuse",
               "security.critical": "alert.security_event",
               # a 2.0.1 station's NotifyEvent that needs a look (edge/ocpp/v201/services.py PROBLEM_EVENT)
               "station.problem": "alert.station_problem"}


def encode_batch(site: str, stream: str, rows: list[dict[str, Any]],
                 max_bytes: int = MAX_PAYLOAD_BYTES) -> tuple[bytes, int]:
    """An UpBatch payload with as many of `rows` (oldest first) as fit in `max_bytes`.
    -> (payload, how many rows it holds). The bodies are already JSON in the journal,
    so they are spliced in rather than parsed and dumped again."""
    head = f'{{"v":1,"site":{json.dumps(site)},"stream":{json.dumps(stream)},"messages":['.encode()
    parts: list[bytes] = []
    size = len(head) + 2
    for row in rows[:MAX_BATCH_MESSAGES]:
        part = (f'{{"id":{json.dumps(row["id"])},"seq":{row["seq"]},"at":{json.dumps(row["at"])},'
                f'"type":{json.dumps(row["type"])},"body":{row["body"]}}}').encode()
        if size + len(part) + 1 > max_bytes:
            break
        parts.append(part)
        size += len(part) + 1
    return head + b",".join(parts) + b"]}", len(parts)


class Outbox:
    def __init__(self, journal: Journal, clock: Clock, *, site_id: str, budget_bytes: int,
                 new_id: Callable[[], str] = lambda: uuid.uuid4().hex):
        self._journal = journal
        self._clock = clock
        self.site_id = site_id
        self.budget_bytes = budget_bytes
        self._new_id = new_id
        self._wake = {stream: asyncio.Event() for stream in STREAMS}
        self.over_budget = False     # only precious messages left and still over: reported in the status

    async def start(self) -> None:
        """Triggers on, and every CDR not yet in the outbox (made while the uplink was off) in."""
        fed = await self._journal.write(Store.uplink_recording, True)
        if fed:
            log.info("uplink: %d charge record(s) made while the uplink was off join the outbox", fed)
        self.wake()

    # -- waking the senders -----------------------------------------------------------------------------

    def wake(self, stream: str | None = None) -> None:
        for name in (stream,) if stream else STREAMS:
            self._wake[name].set()

    async def wait(self, stream: str, timeout: float) -> None:
        """Until something may have been added to `stream` (or `timeout` passed: triggers write
        without telling anyone, so the senders also look now and then)."""
        event = self._wake[stream]
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation.
        try:
            async with asyncio.timeout(timeout):
                await event.wait()
        except TimeoutError:
            pass
        event.clear()

    # -- adding ---------------------------------------------------------------------------------------------

    async def add(self, stream: str, type_: str, body: dict[str, Any], at: str | None = None) -> str:
        message_id = self._new_id()
        await self._journal.write(Store.outbox_add, [
            (message_id, stream, type_, at or self._clock.now_iso(), json.dumps(body, separators=(",", ":")))])
        self.wake(stream)
        return message_id

    async def alert_from_event(self, kind: str, charger_id: str, at: str, data: dict[str, Any]) -> None:
        """dlm.failsafe, dlm.over_limit, dlm.over_fuse, dlm.uncontrollable, edge.part_failed, station.problem
        (ALERT_TYPES) -> the alert stream."""
        await self.add("alert", ALERT_TYPES[kind], {"charger_id": charger_id or None, **data}, at)

    # -- sending --------------------------------------------------------------------------------------------

    async def next_batch(self, stream: str, after_seq: int,
                         max_messages: int = MAX_BATCH_MESSAGES) -> tuple[bytes, int, int] | None:
        """The next batch of `stream` after `after_seq` (messages set aside skipped): (payload, first
        seq, last seq), or None when there is nothing. Seqs are given and committed before this returns."""
        while True:
            rows = await self._journal.write(Store.outbox_next, stream, after_seq, max_messages)
            if not rows:
                return None
            payload, count = encode_batch(self.site_id, stream, rows)
            if count:
                return payload, rows[0]["seq"], rows[count - 1]["seq"]
            # One message larger than a payload may be: it can never be sent; say so, go on.
            oversized = rows[0]
            await self._journal.write(Store.outbox_remove, oversized["id"])
            log.error("uplink: message id=%s stream=%s type=%s is larger than %d bytes and cannot be sent; removed",
                      oversized["id"], stream, oversized["type"], MAX_PAYLOAD_BYTES)
            await self.add("alert", "alert.outbox_dropped", {
                "stream": stream, "reason": "larger than a payload may be", "dropped": 1, "thinned": 0,
                "ids": [oversized["id"]], "from": oversized["at"], "to": oversized["at"]})

    async def delivered(self, stream: str, first_seq: int, last_seq: int, last_id: str | None = None) -> int:
        """The cloud's receipt for first_seq..last_seq: those leave the outbox. -> how many
        (-1: the receipt's last_id does not match this journal, so it was ignored)."""
        return await self._journal.write(Store.outbox_delivered, stream, first_seq, last_seq, last_id,
                                         self._clock.now_iso())

    async def hold(self, stream: str, seq: int, message_id: str, why: str) -> dict[str, Any] | None:
        """Set aside the one message the cloud refused alone (kept; not sent until released)."""
        return await self._journal.write(Store.outbox_hold, stream, seq, message_id, why)

    async def release(self, stream: str | None = None) -> int:
        """Messages set aside go again, from their place in the stream."""
        released = await self._journal.write(Store.outbox_release, stream)
        if released:
            self.wake(stream)
        return released

    async def backlog(self) -> dict[str, int]:
        counts = await self._journal.read(Store.outbox_backlog)
        return {stream: counts.get(stream, 0) for stream in STREAMS}

    # -- the disk budget --------------------------------------------------------------------------------------

    async def enforce_budget(self) -> list[dict[str, Any]]:
        """Thin and drop expendable messages until the outbox fits its budget; each stream
        that lost messages is reported with an alert. -> the reports."""
        reports, over = await self._journal.write(_shrink, self.budget_bytes)
        if over and not self.over_budget:
            log.error("uplink: the outbox is over its disk budget of %d bytes with CDRs, session events and "
                      "certificate messages only; they are kept (raise [uplink] disk_budget_mb or restore the link)", self.budget_bytes)
        self.over_budget = over
        for report in reports:
            log.warning("uplink: disk budget: %s stream thinned by %d and %d dropped (%s .. %s)",
                        report["stream"], report["thinned"], report["dropped"], report["from"], report["to"])
            await self.add("alert", "alert.outbox_dropped", {**report, "reason": "disk budget",
                                                             "budget_bytes": self.budget_bytes})
        return reports


def _shrink(store: Store, budget: int) -> tuple[list[dict[str, Any]], bool]:
    """On the journal thread, in one commit: the budget policy (see the module doc)."""
    size = store.outbox_size()
    reports: dict[str, dict[str, Any]] = {}

    def note(stream: str, kind: str, result: tuple[int, str | None, str | None]) -> None:
        count, first, last = result
        if not count:
            return
        report = reports.setdefault(stream, {"stream": stream, "thinned": 0, "dropped": 0, "from": first, "to": last})
        report[kind] += count
        report["from"] = min(report["from"] or first, first)
        report["to"] = max(report["to"] or last, last)

    for stream in EXPENDABLE:
        if stream == "telemetry":
            while size > budget:
                result = store.outbox_thin(stream, MAX_THINNING, keep_types=KEPT_TYPES)
                if not result[0]:
                    break
                note(stream, "thinned", result)
                size = store.outbox_size()
        if size > budget:
            note(stream, "dropped", store.outbox_drop_oldest(stream, size - budget, keep_types=KEPT_TYPES))
            size = store.outbox_size()
    return list(reports.values()), size > budget
