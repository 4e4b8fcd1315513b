"""Several broker processes, each with its share of the sites (issue 18: beyond one broker).

A site connects to one broker (its `[uplink] host`); which one is the site-to-broker map:
`CLOUD_MQTT_SITE_BROKERS` (glob patterns over site ids, first match wins), and for a site no pattern
matches a stable hash of its id over `CLOUD_MQTT_BROKERS` in the order given (`cloud brokers which
SITE` prints it, to configure the site). Every cloud instance connects to every broker, with the
same shared subscriptions on each, so whichever instance a broker hands a message to stores it; and

* a push leaves through the broker the map puts its site on, whichever instance the operator's POST
  reached (`publish`);
* a receipt, an AckReceipt and a PUBACK go back through the broker the message came from (the site
  is there, whatever the map says);
* a site heard on another broker than the map's is logged (its pushes would not reach it).

`Brokers` looks like one `MqttLink` to the rest of the service: `connected` and `subscribed` are set
while at least one broker is (a broker that is down stops only its own sites' traffic), and
`reconnected` at any broker's CONNACK.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import zlib
from datetime import timedelta
from typing import Callable

from cloud.config import MqttSettings
from cloud.db import Connection, Database
from cloud.mqtt import MqttLink, Received
from contract.v1 import parse_topic
from edge.clock import Clock, iso

log = logging.getLogger(__name__)

# A broker's retained states are read again (by one instance) at a connection when nobody did for this long.
SWEEP_EVERY_S = 60.0


def broker_of(site: str, settings: MqttSettings) -> str:
    """The broker a site is on: the first pattern of the map that matches its id, else a hash of the
    id (CRC-32, the same in every process and release) over the brokers in their configured order."""
    for pattern, broker in settings.site_brokers:
        if fnmatch.fnmatchcase(site, pattern):
            return broker
    shards = settings.shards
    return shards[zlib.crc32(site.encode()) % len(shards)].name


def claim_sweep(conn: Connection, broker: str, instance: str, now: str, before: str) -> bool:
    """-> True when this instance is to read `broker`'s retained states: nobody did since `before`."""
    return bool(conn.run(
        "INSERT INTO state_sweeps (broker, instance, at) VALUES (?, ?, ?) ON CONFLICT (broker) DO UPDATE "
        "SET instance = excluded.instance, at = excluded.at WHERE state_sweeps.at < ?",
        (broker, instance, now, before)))


def _site_of(topic: str) -> str | None:
    try:
        return parse_topic(topic)[0]
    except ValueError:
        return None


class Brokers:
    def __init__(self, settings: MqttSettings, deliver: Callable[[Received], None], db: Database | None = None,
                 clock: Clock | None = None):
        self.settings = settings
        self._deliver = deliver
        self._db = db
        self.clock = clock or Clock()
        self.links = {b.name: MqttLink(settings.for_broker(b), self._received, name=b.name, on_change=self._changed)
                      for b in settings.shards}
        self.connected = asyncio.Event()
        self.subscribed = asyncio.Event()
        self.disconnected = asyncio.Event()
        self.disconnected.set()
        self.reconnected = asyncio.Event()
        self._heard: dict[str, str] = {}        # site -> the broker this instance last heard it on
        self.misrouted: set[str] = set()        # sites heard on another broker than the map's
        self._sweeps: set[asyncio.Task] = set()
        self.settled = asyncio.Event()          # no state sweep is running (tests wait for it before publishing)
        self.settled.set()

    @property
    def connections(self) -> int:
        return sum(link.connections for link in self.links.values())

    def broker_of(self, site: str) -> str:
        return broker_of(site, self.settings)

    def link_for(self, site: str) -> MqttLink:
        """Pushes: the broker the map puts the site on."""
        return self.links[self.broker_of(site)]

    def reachable(self, site: str) -> bool:
        return self.link_for(site).connected.is_set()

    def status(self) -> dict[str, dict[str, object]]:
        return {name: {"host": link.settings.host, "port": link.settings.port, "connected": link.connected.is_set(),
                       "subscribed": link.subscribed.is_set()} for name, link in self.links.items()}

    # -- from the links (event loop) ---------------------------------------------------------------------

    def _received(self, received: Received) -> None:
        site = _site_of(received.topic)
        if site is not None and self._heard.get(site) != received.broker:
            self._heard[site] = received.broker
            mapped = self.broker_of(site)
            if mapped != received.broker and site not in self.misrouted and len(self.links) > 1:
                self.misrouted.add(site)
                log.warning("site %s is connected to broker %s, but the site-to-broker map puts it on %s: its "
                            "pushes go to %s and will not reach it (fix CLOUD_MQTT_SITE_BROKERS or the site's "
                            "[uplink] host)", site, received.broker, mapped, mapped)
        self._deliver(received)

    def _changed(self, link: MqttLink) -> None:
        links = self.links.values()
        for event, on in ((self.connected, any(x.connected.is_set() for x in links)),
                          (self.subscribed, any(x.subscribed.is_set() for x in links)),
                          (self.disconnected, any(x.disconnected.is_set() for x in links))):
            event.set() if on else event.clear()
        if link.reconnected.is_set():
            link.reconnected.clear()
            self.reconnected.set()
        if link.subscribed.is_set() and self._db is not None:
            task = asyncio.get_running_loop().create_task(self._maybe_sweep(link), name=f"state-sweep-{link.name}")
            self._sweeps.add(task)
            self.settled.clear()
            task.add_done_callback(self._sweep_ended)

    def _sweep_ended(self, task: asyncio.Task) -> None:
        self._sweeps.discard(task)
        if not self._sweeps:
            self.settled.set()

    async def _maybe_sweep(self, link: MqttLink) -> None:
        """Just subscribed: states published while no instance was subscribed there were dropped by the
        broker, and a shared subscription gets no retained copies. One instance reads them (the first
        to connect after a minute without a sweep), not all: a retained copy changes nothing its
        counter makes stale."""
        assert self._db is not None
        now = self.clock.now()
        try:
            claimed = await self._db.write(claim_sweep, link.name, self.settings.client_id, iso(now),
                                           iso(now - timedelta(seconds=SWEEP_EVERY_S)))
        except Exception as exc:  # noqa: BLE001 - the database away: read them, better twice than never
            log.warning("could not claim the state sweep of broker %s (%s); reading the states anyway", link.name, exc)
            claimed = True
        if claimed and link.sweep_states():
            # Until its retained copies are in (or the connection is gone): `settled` means no copy is on its way.
            waits = [asyncio.ensure_future(e.wait()) for e in (link.swept, link.disconnected)]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()

    # -- towards the brokers -----------------------------------------------------------------------------

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            for name, link in self.links.items():
                tasks.create_task(link.run(), name=f"mqtt-{name}")

    def ack(self, received: Received) -> None:
        """PUBACK on the broker (and connection) the message came on."""
        link = self.links.get(received.broker)
        if link is not None:
            link.ack(received)

    def send(self, topic: str, payload: bytes) -> None:
        """A receipt or AckReceipt: through the broker this instance heard its site on (the message it
        confirms came from there), else the map's."""
        site = _site_of(topic)
        if site is None:
            return
        self.links.get(self._heard.get(site, ""), self.link_for(site)).send(topic, payload)

    async def publish(self, topic: str, payload: bytes, *, retain: bool, expiry_s: int | None = None,
                      timeout: float = 10.0) -> bool:
        """A push, through the broker the map puts its site on."""
        site = _site_of(topic)
        if site is None:
            raise ValueError(f"{topic!r} is not a site's topic")
        return await self.link_for(site).publish(topic, payload, retain=retain, expiry_s=expiry_s, timeout=timeout)
