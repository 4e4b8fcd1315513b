"""The subscriber: every message from the sites, checked against the contract, stored once.

Messages arrive from paho's thread (cloud/mqtt.py) and wait per site. A
bounded pool of workers (one per database writer: 1 on SQLite, several on
PostgreSQL) takes one site at a time, whatever of it is waiting (up to
MAX_GROUP messages), checks each with `contract.v1.parse` (which also checks
that the payload's site is the topic's site), stores them in one transaction
with a savepoint per message, and only after the COMMIT sends a receipt per
batch to its site (down/receipt: the site may now forget those messages), an
AckReceipt per ack (down/acked: the site may stop sending it) and the PUBACKs.

* One site is never in two workers of an instance at once, so a site's
  messages are applied in the order they arrived; different sites go in
  parallel, and a transaction holds the locks of one site only, so two
  instances wait on each other only for a site both were handed at once.
* A gap in a stream's seqs is not reported when it is seen: with several
  instances a later batch is often committed before an earlier one the other
  instance holds. It is reported when it is still open GAP_GRACE_S later.

* A message that breaks the contract is rejected: counted per reason (in
  memory, and per site in the `rejections` table), logged, acknowledged (so
  the broker does not send it forever), never stored. An up batch whose seqs
  can still be read gets a receipt saying `rejected`, so its site can find
  the message at fault and set it aside rather than send it forever.
* A message the database refuses (a value PostgreSQL cannot hold) is rolled
  back alone to its savepoint and rejected as `unstorable`.
* If the database is down, nothing is acknowledged; the group is retried with
  backoff, and the broker holds the rest (at most receive_maximum in flight).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter, deque
from dataclasses import dataclass
from typing import Callable

from pydantic import ValidationError

from cloud.db import Connection, Database
from cloud.mqtt import Received
from cloud.store import ingest as store
from contract.v1 import (CSR_TYPE, MAX_PAYLOAD_BYTES, PREFIX, SITE_ID, Ack, AckReceipt, ContractError, Receipt,
                         SiteState, UpBatch, acked_topic, encode, parse, parse_topic, receipt_topic)
from edge.clock import Clock

log = logging.getLogger(__name__)

MAX_GROUP = 64
ERROR_TEXT = 300
# A gap in a stream is reported only if it is still open after this long (another instance, or a
# redelivery, usually fills it within a receipt wait).
GAP_GRACE_S = 60.0


@dataclass
class Item:
    received: Received
    message: UpBatch | SiteState | Ack
    outcome: str = ""                 # stored | duplicate | state | ack | unknown_ack | unstorable
    new: int = 0
    duplicates: int = 0
    error: str = ""
    gaps: list[tuple[int, int]] | None = None


def topic_site(topic: str) -> str:
    """The site a topic names, for counting a rejection ('' when there is none)."""
    parts = topic.split("/")
    if "/".join(parts[:2]) == PREFIX and len(parts) > 3 and parts[2] == "sites" and SITE_ID.match(parts[3]):
        return parts[3]
    return ""


def _store_group(conn: Connection, items: list[Item], rejected: list[tuple[str, str, str]],
                 now: str) -> list[tuple[str, str, str]]:
    """One transaction for the whole group; each message under its own savepoint.
    rejected: (topic, reason, error) found before; -> those plus the messages the database refused."""
    rejections = list(rejected)
    # The group's bookkeeping (sites' last_seen, streams' seqs: the rows another instance storing the
    # same site writes too) is written at the end, so those rows are locked only for the COMMIT.
    book = store.Bookkeeping()
    # By site (stable: a site's messages keep their order, a birth stays before the will after it).
    for item in sorted(items, key=lambda item: item.message.site):
        message = item.message
        mine = store.Bookkeeping()            # kept only if this message's savepoint is released
        try:
            with conn.savepoint():
                if isinstance(message, UpBatch):
                    outcome = store.store_up(conn, message, now, mine)
                    item.new, item.duplicates = outcome.new, outcome.duplicates
                    item.outcome = "stored" if outcome.new else "duplicate"
                elif isinstance(message, SiteState):
                    store.store_state(conn, message, now, fresh=not item.received.retain)
                    item.outcome = "state"
                else:
                    item.outcome = "ack" if store.store_ack(conn, message, now, mine) else "unknown_ack"
        except conn.data_errors as exc:
            item.outcome, item.error = "unstorable", f"{type(exc).__name__}: {exc}"[:ERROR_TEXT]
            rejections.append((item.received.topic, "unstorable", item.error))
        else:
            book.merge(mine)
    gaps = book.apply(conn)
    for item in items:
        if item.outcome == "stored":
            item.gaps = gaps.get((item.message.site, item.message.stream)) or None
    counts: Counter[tuple[str, str]] = Counter()
    last: dict[tuple[str, str], str] = {}
    for topic, reason, error in rejections:
        key = (topic_site(topic), reason)
        counts[key] += 1
        last[key] = error
    if counts:
        store.count_rejections(conn, [(site, reason, n, now, last[(site, reason)])
                                      for (site, reason), n in sorted(counts.items())])
    return rejections


def receipt_for(item: Item) -> Receipt | None:
    """The receipt for a stored batch (new or already there): its seq range. The edge sends
    each batch as a run of consecutive seqs, so the range names exactly its messages."""
    batch = item.message
    if not isinstance(batch, UpBatch) or item.outcome not in ("stored", "duplicate"):
        return None
    last = max(batch.messages, key=lambda m: m.seq)
    return Receipt(site=batch.site, stream=batch.stream, first_seq=min(m.seq for m in batch.messages),
                   last_seq=last.seq, last_id=last.id, stored=item.new, duplicates=item.duplicates)


def rejected_receipt(topic: str, payload: bytes, error: str) -> Receipt | None:
    """For a refused up batch whose messages can still be made out (each one's seq and id, a run
    of consecutive seqs as an edge sends): tells the site which seqs were refused and why, so it
    can find the message at fault and set it aside. None when not even that can be read."""
    try:
        site, part, stream = parse_topic(topic)
        if part != "up" or len(payload) > MAX_PAYLOAD_BYTES:
            return None
        runs = sorted((m["seq"], m["id"]) for m in json.loads(payload)["messages"])
    except (ContractError, ValueError, KeyError, TypeError, RecursionError):
        return None
    if not runs or any(not isinstance(seq, int) or isinstance(seq, bool) for seq, _ in runs):
        return None
    first, (last, last_id) = runs[0][0], runs[-1]
    if last - first + 1 != len(runs):
        return None
    try:
        return Receipt(site=site, stream=stream, first_seq=first, last_seq=last, last_id=last_id,
                       status="rejected", error=error[:1000])
    except ValidationError:
        return None


def ack_receipt_for(item: Item) -> AckReceipt | None:
    """The confirmation of a stored ack (known or not: either way the site may stop sending it)."""
    ack = item.message
    if not isinstance(ack, Ack) or item.outcome not in ("ack", "unknown_ack"):
        return None
    return AckReceipt(site=ack.site, kind=ack.kind, id=ack.id, status=ack.status, known=item.outcome == "ack")


def open_gaps(conn: Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """-> per (site, stream) of `keys`, how many seqs below its last are still missing (0: none)."""
    out = {}
    for site, stream in keys:
        row = conn.one("SELECT last_seq - received AS missing FROM streams WHERE site = ? AND stream = ?",
                       (site, stream))
        out[(site, stream)] = int(row["missing"]) if row else 0
    return out


class Ingest:
    def __init__(self, db: Database, ack: Callable[[Received], None], clock: Clock | None = None,
                 send_receipt: Callable[[str, bytes], None] | None = None, workers: int | None = None):
        self.db = db
        self._ack = ack
        self._send_receipt = send_receipt
        self.clock = clock or Clock()
        self.workers = workers or db.writers
        # Waiting messages per site ('' for a topic without one); a site is in _ready or in a worker
        # (then in _busy) at most once, which keeps its messages in order.
        self._waiting: dict[str, deque[Received]] = {}
        self._busy: set[str] = set()
        self._ready: asyncio.Queue[str] = asyncio.Queue()
        self._gaps: dict[tuple[str, str], float] = {}        # (site, stream) -> when a gap was first seen
        self.gap_grace_s = GAP_GRACE_S
        self.gaps_reported = 0
        self.counts: Counter[str] = Counter()       # received, stored, duplicates, states, acks, unknown_acks
        self.rejected: Counter[str] = Counter()     # per reason
        self._logged: Counter[tuple[str, str]] = Counter()
        self._changed = asyncio.Event()
        # Told the site id of every birth stored (a fresh online state): the downlink sends what it has not acked.
        self.on_birth: Callable[[str], None] | None = None
        # Told when a stored status batch held a certificate.csr (cloud/certificates.py).
        self.on_csr: Callable[[], None] | None = None

    def deliver(self, received: Received) -> None:
        """Called on the event loop (handed over from paho's thread)."""
        site = topic_site(received.topic)
        self._waiting.setdefault(site, deque()).append(received)
        if site not in self._busy:
            self._busy.add(site)
            self._ready.put_nowait(site)

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self._waiting.values())

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            for n in range(self.workers):
                tasks.create_task(self._work(), name=f"ingest-{n}")
            tasks.create_task(self._watch_gaps(), name="ingest-gaps")

    async def _work(self) -> None:
        while True:
            site = await self._ready.get()
            waiting = self._waiting[site]
            group = [waiting.popleft() for _ in range(min(MAX_GROUP, len(waiting)))]
            try:
                await self.handle(group)
            finally:
                if waiting:
                    self._ready.put_nowait(site)        # its turn again, after the sites waiting before it
                else:
                    del self._waiting[site]
                    self._busy.discard(site)

    def _note_gaps(self, items: list[Item]) -> None:
        now = self.clock.monotonic()
        for item in items:
            if item.gaps:
                self._gaps.setdefault((item.message.site, item.message.stream), now)

    async def _watch_gaps(self) -> None:
        """Reports the gaps still open GAP_GRACE_S after they were seen; forgets the filled ones."""
        while True:
            await asyncio.sleep(max(0.05, self.gap_grace_s / 4))
            if not self._gaps:
                continue
            try:
                missing = await self.db.read(open_gaps, sorted(self._gaps))
            except Exception as exc:  # noqa: BLE001 - the database away: the next round looks again
                log.debug("looking at stream gaps failed: %s", exc)
                continue
            now = self.clock.monotonic()
            for key, count in missing.items():
                if count <= 0:
                    self._gaps.pop(key, None)
                elif now - self._gaps[key] >= self.gap_grace_s:
                    self._gaps.pop(key, None)
                    self.gaps_reported += 1
                    log.warning("site %s stream %s: %d seq(s) missing for %.0f s (GET /api/v1/sites/%s shows "
                                "the gaps)", key[0], key[1], count, self.gap_grace_s, key[0])

    async def handle(self, group: list[Received]) -> None:
        items, rejections = [], []
        refused: list[tuple[Received, str]] = []
        for received in group:
            try:
                message = parse(received.topic, received.payload)
            except ContractError as exc:
                rejections.append((received.topic, exc.reason, str(exc)[:ERROR_TEXT]))
                refused.append((received, f"{exc.reason}: {exc}"))
                continue
            except Exception as exc:    # a bug in checking, not in the message: still never a crash loop on it
                log.exception("checking a message on %s failed", received.topic[:200])
                rejections.append((received.topic, "invalid", f"{type(exc).__name__}: {exc}"[:ERROR_TEXT]))
                continue
            if isinstance(message, (UpBatch, SiteState, Ack)):
                items.append(Item(received, message))
            else:            # a down message on a cloud subscription: the broker ACL or a filter is wrong
                rejections.append((received.topic, "direction", "a cloud-to-site message on an up topic"))
        rejections = await self._store(items, rejections)
        # Committed: now the site may forget them (receipts), and the broker may too (PUBACKs).
        if self._send_receipt is not None:
            receipts = [receipt_for(item) for item in items]
            refused += [(item.received, f"unstorable: {item.error}") for item in items if item.outcome == "unstorable"]
            receipts += [rejected_receipt(received.topic, received.payload, error) for received, error in refused]
            for receipt in receipts:
                if receipt is not None:
                    self._send_receipt(receipt_topic(receipt.site), encode(receipt))
            for item in items:
                confirmation = ack_receipt_for(item)
                if confirmation is not None:
                    self._send_receipt(acked_topic(confirmation.site), encode(confirmation))
        for received in group:
            self._ack(received)
        if self.on_birth is not None:
            for item in items:
                if item.outcome == "state" and item.message.online and not item.received.retain:
                    self.on_birth(item.message.site)
        if self.on_csr is not None and any(item.new and item.message.stream == "status" and any(
                m.type == CSR_TYPE for m in item.message.messages) for item in items if item.outcome == "stored"):
            self.on_csr()       # a charger's CSR is queued: cloud/certificates.py signs it
        self._note_gaps(items)
        self._count(group, items, rejections)

    async def _store(self, items: list[Item], rejected: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
        delay, attempt = 0.2, 0
        while True:
            try:
                return await self.db.write(_store_group, items, rejected, self.clock.now_iso())
            except Exception as exc:   # not the message's fault (database down, deadlock): nothing committed
                attempt += 1
                level = logging.WARNING if attempt < 5 else logging.ERROR
                log.log(level, "storing %d messages failed (attempt %d; retrying in %.1f s, not acknowledged): %s",
                        len(items), attempt, delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _count(self, group: list[Received], items: list[Item], rejections: list[tuple[str, str, str]]) -> None:
        self.counts["received"] += len(group)
        for item in items:
            if item.outcome in ("stored", "duplicate"):
                self.counts["stored"] += item.new
                self.counts["duplicates"] += item.duplicates
            elif item.outcome == "state":
                self.counts["states"] += 1
            elif item.outcome in ("ack", "unknown_ack"):
                self.counts[item.outcome + "s"] += 1
                if item.outcome == "unknown_ack":
                    log.warning("ack for a push this cloud does not know: %s", item.received.topic)
        for topic, reason, error in rejections:
            self.rejected[reason] += 1
            key = (topic_site(topic), reason)
            self._logged[key] += 1
            n = self._logged[key]
            if n <= 3 or n in (10, 100, 1000) or n % 10_000 == 0:     # a flood must not flood the log
                log.warning("rejected a message on %s (%s, %d from this site so far): %s",
                            topic[:200], reason, n, error)
        self._changed.set()
        self._changed = asyncio.Event()

    @property
    def changed(self) -> asyncio.Event:
        """Set (and replaced) after every group handled."""
        return self._changed

    @property
    def handled(self) -> int:
        return self.counts["received"]

    async def wait_until(self, predicate: Callable[["Ingest"], bool], timeout: float = 10.0) -> None:
        """Waits until `predicate(self)` holds (tests, benchmarks): woken after every group, no polling."""
        async def wait() -> None:
            while not predicate(self):
                await self._changed.wait()
        await asyncio.wait_for(wait(), timeout)
