"""Configuration documents and commands, from the API to the sites, until the site has them.

A push is first stored (with its version, for documents: strictly increasing
per site and kind), then published with QoS 1: documents retained on
`down/{kind}`, so a site that is offline gets the newest one when it comes
back; commands not retained, with an MQTT message expiry so a broker does not
hand a stale "unlock" to a site that returns hours later.

The broker's PUBACK is not delivery: a broker killed before its autosave
forgets a retained document and the commands it queued for an offline site.
So a push stays open (`pending`, then `published`) until the SITE answers on
its ack topic (cloud/store/ingest.py store_ack), and is sent again:

* when the site is born (its retained state goes online: cloud/ingest.py),
* when this cloud's connection to the broker is made again,
* and otherwise every 5 minutes, doubling up to an hour, until acked.

Of several open versions of one document only the newest goes out (the others
are `superseded`); a command is sent again until it expires (then `expired`).
The site is idempotent: the version in force is acked again without applying
it again, a command id it already ran gets its first answer again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from cloud import projections as p
from cloud.db import Database
from cloud.db.connection import Row
from cloud.brokers import Brokers
from cloud.store import pushes as store
from contract.v1 import MAX_PAYLOAD_BYTES, RETAINED_DOWN, Down, down_topic, encode
from edge.clock import Clock, iso, parse_iso

log = logging.getLogger(__name__)

# How often the open pushes are looked at (each is sent again only when its back-off has passed).
TICK_S = 30.0
# A push younger than this is left to the request that created it (avoids a double publish).
REPUBLISH_AFTER_S = 10.0
# Sent and not acked: sent again after this, doubling up to RESEND_MAX_S.
RESEND_FIRST_S = 300.0
RESEND_MAX_S = 3600.0


def next_send(row: Row, republish_after_s: float = REPUBLISH_AFTER_S) -> datetime:
    """When an open push is due to be sent (again), with its back-off. Pure."""
    if row["last_sent_at"] is None:
        return parse_iso(row["created_at"]) + timedelta(seconds=republish_after_s)
    sent = max(1, int(row["sent_count"] or 1))
    return parse_iso(row["last_sent_at"]) + timedelta(seconds=min(RESEND_FIRST_S * 2 ** (sent - 1), RESEND_MAX_S))


class PushError(ValueError):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status            # the HTTP status the API answers with


def down_message(row: Row) -> Down:
    return Down(site=row["site"], kind=row["kind"], id=row["id"], version=row["version"], mode=row["mode"],
                document=json.loads(row["document"]), expires_at=row["expires_at"])


class Downlink:
    def __init__(self, db: Database, link: Brokers, clock: Clock | None = None):
        self.db = db
        self.link = link
        self.clock = clock or Clock()
        self.republish_after_s = REPUBLISH_AFTER_S
        self._born: set[str] = set()          # sites that came online since the last round
        self._young_due: datetime | None = None   # when the youngest push left alone last round is due
        self._wake = asyncio.Event()

    def _check(self, **fields: Any) -> bytes:
        """The message as the site will get it, checked against the contract (the same bounds the site
        checks: document depth, integers, string sizes), so a push the site would refuse is refused here."""
        try:
            message = Down(**fields)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise PushError(f"{where}: {first['msg'].removeprefix('Value error, ')}") from None
        payload = encode(message)
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise PushError(f"the document is {len(payload)} bytes encoded; the contract allows {MAX_PAYLOAD_BYTES}",
                            413)
        return payload

    async def _create(self, idempotency: tuple[str, str] | None, **push: Any) -> Row:
        """Stores a new push; with an Idempotency-Key (key, request hash) seen before with the same request,
        -> that request's push (marked `replayed`), which is not published again here."""
        key, request_hash = idempotency or (None, "")
        try:
            return await self.db.write(lambda conn: store.create_once(conn, key=key, request_hash=request_hash,
                                                                       now=self.clock.now_iso(), **push))
        except store.KeyReused:
            raise PushError(f"Idempotency-Key {key!r} was used before with another request (another site, "
                            "kind or body); use a new key for a new request", 422) from None

    async def push_document(self, site: str, kind: str, document: dict[str, Any], mode: str,
                            operator: str, idempotency: tuple[str, str] | None = None) -> Row:
        if kind not in RETAINED_DOWN:
            raise PushError(f"kind {kind!r} is not a configuration document; one of {', '.join(sorted(RETAINED_DOWN))}")
        # Validate against the contract before a version is spent on it.
        push_id = uuid.uuid4().hex
        self._check(site=site, kind=kind, id=push_id, version=1, mode=mode, document=document)
        row = await self._create(idempotency, id=push_id, site=site, kind=kind, versioned=True, mode=mode,
                                 document=p.dumps(document), expires_at=None, operator=operator)
        return await self._publish_new(row)

    async def _publish_new(self, row: Row) -> Row:
        if row.get("replayed"):
            return {**await self.get(row["site"], row["id"]), "replayed": True}
        await self.publish(row)
        return await self.get(row["site"], row["id"])

    async def push_command(self, site: str, document: dict[str, Any], expires_in_s: float, operator: str,
                           idempotency: tuple[str, str] | None = None) -> Row:
        push_id = uuid.uuid4().hex
        expires_at = iso(self.clock.now() + timedelta(seconds=expires_in_s))
        self._check(site=site, kind="command", id=push_id, document=document, expires_at=expires_at)
        row = await self._create(idempotency, id=push_id, site=site, kind="command", versioned=False, mode="full",
                                 document=p.dumps(document), expires_at=expires_at, operator=operator)
        return await self._publish_new(row)

    async def get(self, site: str, push_id: str) -> Row:
        row = await self.db.read(store.get, site, push_id)
        assert row is not None
        return row

    async def publish(self, row: Row) -> bool:
        """-> True once the broker has it (PUBACK); the push stays open until the site's ack."""
        message = down_message(row)
        expiry = None
        if row["kind"] not in RETAINED_DOWN:
            remaining = (parse_iso(row["expires_at"]) - self.clock.now()).total_seconds()
            if remaining <= 0:
                await self.db.write(store.mark, row["id"], "expired")
                log.info("command %s for site %s expired before the site acknowledged it", row["id"], row["site"])
                return False
            expiry = int(remaining) + 1
        retain = row["kind"] in RETAINED_DOWN
        ok = await self.link.publish(down_topic(row["site"], row["kind"]), encode(message), retain=retain,
                                     expiry_s=expiry)
        if not ok:
            log.info("push %s (%s for site %s) not published yet: broker not reachable; will retry",
                     row["id"], row["kind"], row["site"])
            return False
        await self.db.write(store.mark_published, row["id"], self.clock.now_iso())
        log.info("published %s version %s to site %s (push %s, send %d)", row["kind"], row["version"], row["site"],
                 row["id"], int(row["sent_count"] or 0) + 1)
        if retain:
            await self._keep_newest_retained(row)
        return True

    async def _keep_newest_retained(self, row: Row) -> None:
        """Two instances pushing versions 5 and 6 at once may publish 6 before 5: the broker would then
        retain 5. After each publish, if a newer version exists, publish that one again."""
        newest = await self.db.read(store.newest_version, row["site"], row["kind"])
        if newest is not None and newest["version"] > row["version"] and newest["published_at"] is not None:
            await self.link.publish(down_topic(newest["site"], newest["kind"]), encode(down_message(newest)),
                                    retain=True)

    def site_online(self, site: str) -> None:
        """A site was born (its state went online, published just now): what it has not acked goes again
        now, whatever the back-off (the broker it reconnected to may have lost it)."""
        self._born.add(site)
        self._wake.set()

    async def republish(self, site: str | None = None, *, force: bool = False) -> int:
        """Sends the open pushes that are due (all of them with `force`, but never one younger than
        republish_after_s that was never sent: its own request is sending it); -> how many went out."""
        now = self.clock.now()
        sent = 0
        self._young_due = None
        for row in await self.db.read(store.open_pushes, site):
            if row["version"] is not None:
                newest = await self.db.read(store.newest_version, row["site"], row["kind"])
                if newest is not None and newest["version"] > row["version"]:
                    await self.db.write(store.mark, row["id"], "superseded")
                    continue
            young = row["last_sent_at"] is None and now < next_send(row, self.republish_after_s)
            if young:
                # Its request may still be publishing it; if not (its broker was away), it goes when due.
                due = next_send(row, self.republish_after_s)
                self._young_due = due if self._young_due is None else min(self._young_due, due)
            if young or not (force or now >= next_send(row, self.republish_after_s)):
                continue
            if not self.link.reachable(row["site"]):
                continue           # its broker is away: the reconnection to it sends everything open
            sent += await self.publish(row)
        return sent

    async def _prune_keys(self) -> None:
        """Idempotency keys are kept a day (a client retries within minutes)."""
        if self.clock.monotonic() < self._pruned_at + 3600:
            return
        self._pruned_at = self.clock.monotonic()
        before = iso(self.clock.now() - timedelta(days=1))
        await self.db.write(store.prune_idempotency_keys, before)

    async def run(self) -> None:
        self._pruned_at = float("-inf")
        while True:
            await self.link.connected.wait()
            # A (re)connection: the broker may have restarted and lost what it had; everything open goes.
            everything = self.link.reconnected.is_set()
            self.link.reconnected.clear()
            born, self._born = self._born, set()
            self._wake.clear()
            try:
                if everything:
                    await self.republish(force=True)
                for site in sorted(born):
                    await self.republish(site, force=True)
                await self.republish()
                await self._prune_keys()
            except Exception as exc:  # noqa: BLE001 - database away: logged, the next round tries again
                log.warning("republishing open pushes failed: %s", exc)
            waits = [asyncio.ensure_future(self.link.reconnected.wait()), asyncio.ensure_future(self._wake.wait())]
            timeout = TICK_S
            if self._young_due is not None:
                timeout = min(TICK_S, max(0.5, (self._young_due - self.clock.now()).total_seconds()))
            try:
                await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waits:
                    waiter.cancel()
