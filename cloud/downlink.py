"""Configuration documents and commands, from the API to the sites.

A push is first stored (with its version, for documents: strictly increasing
per site and kind), then published with QoS 1: documents retained on
`down/{kind}`, so a site that is offline gets the newest one when it comes
back; commands not retained, with an MQTT message expiry so a broker does not
hand a stale "unlock" to a site that returns hours later. What the site
answers on its ack topic lands on the push (cloud/store/ingest.py store_ack).

Pushes that could not be published (broker away) are published by `run()`
when the connection is back; of several unpublished versions of one document
only the newest goes out (the others are `superseded`), and a command past
its expiry is `expired` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from datetime import timedelta
from typing import Any

from cloud import projections as p
from cloud.db import Database
from cloud.db.connection import Row
from cloud.mqtt import MqttLink
from cloud.store import pushes as store
from contract.v1 import MAX_PAYLOAD_BYTES, RETAINED_DOWN, Down, down_topic, encode
from edge.clock import Clock, iso, parse_iso

log = logging.getLogger(__name__)

REPUBLISH_EVERY_S = 30.0
# A push younger than this is left to the request that created it (avoids a double publish).
REPUBLISH_AFTER_S = 10.0


class PushError(ValueError):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status            # the HTTP status the API answers with


def down_message(row: Row) -> Down:
    return Down(site=row["site"], kind=row["kind"], id=row["id"], version=row["version"], mode=row["mode"],
                document=json.loads(row["document"]), expires_at=row["expires_at"])


class Downlink:
    def __init__(self, db: Database, link: MqttLink, clock: Clock | None = None):
        self.db = db
        self.link = link
        self.clock = clock or Clock()
        self.republish_after_s = REPUBLISH_AFTER_S

    def _check(self, message: Down) -> bytes:
        payload = encode(message)
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise PushError(f"the document is {len(payload)} bytes encoded; the contract allows {MAX_PAYLOAD_BYTES}",
                            413)
        return payload

    async def push_document(self, site: str, kind: str, document: dict[str, Any], mode: str,
                            operator: str) -> Row:
        if kind not in RETAINED_DOWN:
            raise PushError(f"kind {kind!r} is not a configuration document; one of {', '.join(sorted(RETAINED_DOWN))}")
        # Validate against the contract before a version is spent on it.
        push_id = uuid.uuid4().hex
        self._check(Down(site=site, kind=kind, id=push_id, version=1, mode=mode, document=document))
        row = await self.db.write(lambda conn: store.create(
            conn, id=push_id, site=site, kind=kind, versioned=True, mode=mode, document=p.dumps(document),
            expires_at=None, now=self.clock.now_iso(), operator=operator))
        await self.publish(row)
        return await self.get(site, push_id)

    async def push_command(self, site: str, document: dict[str, Any], expires_in_s: float, operator: str) -> Row:
        push_id = uuid.uuid4().hex
        expires_at = iso(self.clock.now() + timedelta(seconds=expires_in_s))
        self._check(Down(site=site, kind="command", id=push_id, document=document, expires_at=expires_at))
        row = await self.db.write(lambda conn: store.create(
            conn, id=push_id, site=site, kind="command", versioned=False, mode="full", document=p.dumps(document),
            expires_at=expires_at, now=self.clock.now_iso(), operator=operator))
        await self.publish(row)
        return await self.get(site, push_id)

    async def get(self, site: str, push_id: str) -> Row:
        row = await self.db.read(store.get, site, push_id)
        assert row is not None
        return row

    async def publish(self, row: Row) -> bool:
        """-> True once the broker has it (PUBACK)."""
        message = down_message(row)
        expiry = None
        if row["kind"] not in RETAINED_DOWN:
            remaining = (parse_iso(row["expires_at"]) - self.clock.now()).total_seconds()
            if remaining <= 0:
                await self.db.write(store.mark, row["id"], "expired")
                log.info("command %s for site %s expired before it could be sent", row["id"], row["site"])
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
        log.info("published %s version %s to site %s (push %s)", row["kind"], row["version"], row["site"], row["id"])
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

    async def republish(self) -> int:
        """Publishes what is still unpublished; -> how many went out."""
        before = iso(self.clock.now() - timedelta(seconds=self.republish_after_s))
        sent = 0
        for row in await self.db.read(store.unpublished, before):
            if row["version"] is not None:
                newest = await self.db.read(store.newest_version, row["site"], row["kind"])
                if newest is not None and newest["version"] > row["version"]:
                    await self.db.write(store.mark, row["id"], "superseded")
                    continue
            if not self.link.connected.is_set():
                break
            sent += await self.publish(row)
        return sent

    async def run(self) -> None:
        while True:
            await self.link.connected.wait()
            try:
                await self.republish()
            except Exception as exc:               # database away: the next round tries again
                log.warning("republishing pending pushes failed: %s", exc)
            # Next round after a while, or at once when the connection comes back after a loss.
            self.link.reconnected.clear()
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(REPUBLISH_EVERY_S):
                    await self.link.reconnected.wait()
