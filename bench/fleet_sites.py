"""Many light simulated sites on one event loop: the fleet bench's load generator (issue 18).

A site here is not an edge: it has no journal, chargers or load manager. It is a contract-level
client that behaves on the wire as edge/uplink does, with the edge's own defaults and bookkeeping:

- its own broker account (username = client id = site id, the shipped dynamic-security ACL), MQTT 5,
  a persistent session (clean_start false, 7-day expiry), keepalive 60 s, a retained last will
  (state offline) and a retained birth (state online with the backlog per stream) on each connection;
- messages kept until the cloud's receipt, per stream in seq order, batches of up to 500, at most
  `max_inflight` awaiting their PUBACK; the unconfirmed window, its receipt wait (15 s, doubling while
  nothing is confirmed) and the restart from the oldest message are edge.uplink.window.Window itself;
  a PUBACK saying no one subscribes (the cloud is away) counts as refused: the stream waits 0.5 s,
  doubling to 30 s, and sends again from its oldest message, as the edge's sender does;
- reconnects with the edge's backoff (1 s doubling to 120 s, jitter x0.5-1; reset after a connection
  that lasted 60 s), everything unconfirmed sent again on the new connection;
- every push answered with an ack, sent again until the cloud's AckReceipt.

Traffic (`traffic on`): telemetry every `telemetry_interval` s (the edge's default: 60 s), each site
at its own phase, with a body shaped as edge/uplink/telemetry.py makes it (three circuits); sessions
as starts and stops at `sessions_per_day` each (a Poisson process): a start is session.started and
two connector status changes, a stop two status changes, session.stopped and the charge record.

Why one loop and paho without its thread: a paho network thread per site took the machine's two
cores at about 300 sites. Here paho runs on the event loop's readiness callbacks (its documented
external-loop API: loop_read, loop_write, loop_misc) and the TCP connect is the loop's non-blocking
one (paho's own connect blocks the caller), so one process carries thousands of sites.

Run by bench/cloud_fleet.py, one process per slice of the sites:

    python -m bench.fleet_sites --host H --port P --first 0 --count 5000 --password pw [...]

Control on stdin, one line each: `connect`, `traffic on`, `traffic off`, `report PATH`, `quit`.
A status line (JSON) on stdout every second; `report` writes each stored message's (created, latency)
and the counters to PATH.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import random
import resource
import socket
import sys
import time
import uuid
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from contract.v1 import (STREAMS, Ack, Message, SiteState, UpBatch, ack_topic, acked_topic, down_filter, encode,
                         receipt_topic, state_topic, up_topic)
from edge.uplink.config import UplinkSection
from edge.uplink.mqtt import NO_MATCHING_SUBSCRIBERS
from edge.uplink.outbox import MAX_BATCH_MESSAGES
from edge.uplink.service import DEFAULT_RECEIVE_MAXIMUM, REFUSED_RETRY, STABLE_AFTER, UNCONFIRMED_BATCHES
from edge.uplink.window import Window

EDGE = UplinkSection()            # the edge's defaults: receipt_timeout, keepalive, backoff, session expiry
CONNECT_TIMEOUT = 30.0            # s, as edge.uplink.mqtt.LinkSettings
MISC_EVERY = 5.0                  # s: keepalive (PINGREQ) and ping timeouts, for every connected site
ACK_RESEND = 2.0                  # s: an ack without its AckReceipt goes again
FIRST_CONNECTS = 64               # first connections in flight at once (the storm after a restart is not paced)


def raise_fd_limit() -> int:
    """Each site is a socket: the soft limit (often 1,024) up to the hard one. -> the limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def now_iso() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def telemetry_body(n: int, interval: float) -> dict[str, Any]:
    """As TelemetryWindow.message makes it for a site with a main fuse, a garage and a PV circuit."""
    def circuit(name: str, limit: float, amps: float) -> dict[str, Any]:
        phases = [round(amps + i * 0.37 + n % 5, 2) for i in range(3)]
        return {"id": name, "failsafe": False, "limit_a": [limit] * 3, "current_max_a": [a + 1.5 for a in phases],
                "current_mean_a": phases, "allocated_a": [16.0] * 3, "power_mean_w": [round(a * 230) for a in phases],
                "import_wh": 1_000_000.0 + 37.5 * n, "export_wh": 0.0}
    return {"interval_s": interval, "samples": int(interval),
            "circuits": [circuit("main", 63.0, 24.0), circuit("garage", 32.0, 14.0), circuit("pv", 25.0, 0.0)]}


class FleetClient(paho.Client):
    """paho on a socket the event loop connected without blocking (paho's connect() blocks)."""
    pre_connected: socket.socket | None = None

    def _create_socket_connection(self) -> socket.socket:
        sock, self.pre_connected = self.pre_connected, None
        if sock is None:
            raise OSError("no connected socket was handed to paho")
        return sock


class StreamState:
    __slots__ = ("seq", "pending", "window", "sent_upto", "inflight", "refused_until", "retry")

    def __init__(self) -> None:
        self.seq = 0
        self.pending: dict[int, list[Any]] = {}     # seq -> [Message, created (wall s), sends]
        self.window = self.new_window()
        self.sent_upto = 0                          # sent on this connection up to this seq
        self.inflight = 0                           # batches awaiting their PUBACK
        self.refused_until = 0.0
        self.retry = REFUSED_RETRY[0]

    def unsent(self, limit: int) -> list[list[Any]]:
        """The next `limit` messages after sent_upto, by seq (not a scan of the whole backlog: after an
        outage a site holds thousands)."""
        if not self.pending:
            return []
        out = []
        for seq in range(max(self.sent_upto + 1, next(iter(self.pending))), self.seq + 1):
            entry = self.pending.get(seq)
            if entry is not None:
                out.append(entry)
                if len(out) == limit:
                    break
        return out

    @staticmethod
    def new_window() -> Window:
        return Window(limit=EDGE.max_inflight * UNCONFIRMED_BATCHES * MAX_BATCH_MESSAGES,
                      first_wait=EDGE.receipt_timeout)


class Site:
    def __init__(self, gen: "Generator", name: str, index: int) -> None:
        self.gen, self.name, self.index = gen, name, index
        self.streams = {s: StreamState() for s in STREAMS}
        self.client: FleetClient | None = None
        self.up = False
        self.connection = 0
        self.mids: dict[int, str] = {}
        self.acks: dict[str, list[Any]] = {}        # push id -> [ack payload, last sent]
        self.connack: asyncio.Future[None] | None = None
        self.closed: asyncio.Future[str] | None = None
        self.sessions = 0

    # -- the link: the edge's _link loop ------------------------------------------------------------

    async def run(self, first: asyncio.Semaphore) -> None:
        delay = EDGE.reconnect_min_delay
        gate: asyncio.Semaphore | None = first
        while True:
            try:
                if gate is not None:
                    async with gate:
                        await self.connect()
                else:
                    await self.connect()
            except (OSError, ConnectionError, asyncio.TimeoutError) as exc:
                self.gen.count("connect_failed")
                self.gen.last_error = f"{self.name}: {exc!r}"
                await self.gen.sleep_jittered(delay)
                delay = min(delay * 2, EDGE.reconnect_max_delay)
                continue
            gate = None
            started = time.monotonic()
            assert self.closed is not None
            await self.closed
            self.gen.count("disconnected")
            if time.monotonic() - started >= STABLE_AFTER:
                delay = EDGE.reconnect_min_delay
            await self.gen.sleep_jittered(delay)
            delay = min(delay * 2, EDGE.reconnect_max_delay)

    async def connect(self) -> None:
        loop = self.gen.loop
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (self.gen.host, self.gen.port)), CONNECT_TIMEOUT)
        except BaseException:
            sock.close()
            raise
        self.connection += 1
        client = FleetClient(CallbackAPIVersion.VERSION2, client_id=self.name, protocol=paho.MQTTv5)
        client.username_pw_set(self.name, self.gen.password)
        client.will_set(state_topic(self.name), self.state(False), qos=1, retain=True)
        client.max_inflight_messages_set(min(EDGE.max_inflight * len(STREAMS) + 2, DEFAULT_RECEIVE_MAXIMUM))
        client.on_socket_open = self._socket_open
        client.on_socket_close = self._socket_close
        client.on_socket_register_write = self._want_write
        client.on_socket_unregister_write = self._done_writing
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.pre_connected = sock
        self.connack, self.closed = loop.create_future(), loop.create_future()
        self.mids.clear()
        self.client = client
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = EDGE.session_expiry
        try:
            client.connect(self.gen.host, self.gen.port, EDGE.keepalive, clean_start=False, properties=properties)
            await asyncio.wait_for(asyncio.shield(self.connack), CONNECT_TIMEOUT)
        except BaseException:
            self.drop()
            raise

    def drop(self) -> None:
        """Close the socket at once (a connection that never came up, or the generator stopping)."""
        if self.client is not None:
            self.client._sock_close()       # noqa: SLF001 - paho has no public abort; this also unregisters
        self._ended("dropped")

    def state(self, online: bool) -> bytes:
        backlog = {s: len(st.pending) for s, st in self.streams.items()} if online else {}
        return encode(SiteState(site=self.name, online=online, at=now_iso(), backlog=backlog,
                                connection=self.connection))

    # -- paho's callbacks (on the loop: paho has no thread here) ------------------------------------

    def _socket_open(self, client: paho.Client, userdata: Any, sock: socket.socket) -> None:
        self.gen.loop.add_reader(sock, client.loop_read)

    def _socket_close(self, client: paho.Client, userdata: Any, sock: socket.socket) -> None:
        self.gen.loop.remove_reader(sock)
        self.gen.loop.remove_writer(sock)

    def _want_write(self, client: paho.Client, userdata: Any, sock: socket.socket) -> None:
        self.gen.loop.add_writer(sock, client.loop_write)

    def _done_writing(self, client: paho.Client, userdata: Any, sock: socket.socket) -> None:
        self.gen.loop.remove_writer(sock)

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        assert self.connack is not None
        if self.connack.done():
            return
        if reason.is_failure:
            self.connack.set_exception(ConnectionError(f"the broker refused the connection: {reason}"))
            return
        self.connack.set_result(None)
        self.up = True
        self.gen.connected += 1
        client.subscribe(down_filter(self.name), qos=1)
        client.publish(state_topic(self.name), self.state(True), qos=1, retain=True)
        for name, st in self.streams.items():       # a new connection: everything unconfirmed goes again
            st.window, st.sent_upto, st.inflight = st.new_window(), 0, 0
            st.refused_until, st.retry = 0.0, REFUSED_RETRY[0]
            self.pump(name)
        for entry in self.acks.values():
            entry[1] = 0.0

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self._ended(str(reason))

    def _ended(self, why: str) -> None:
        if self.connack is not None and not self.connack.done():
            self.connack.set_exception(ConnectionError(why))
            self.connack.exception()
        if self.closed is not None and not self.closed.done():
            self.closed.set_result(why)
        if self.up:
            self.up = False
            self.gen.connected -= 1

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        stream = self.mids.pop(mid, None)
        if stream is None:
            return
        st = self.streams[stream]
        st.inflight -= 1
        if reason.value == NO_MATCHING_SUBSCRIBERS or reason.is_failure:
            # The edge's sender: PublishRefused, wait (doubling), start the stream again from its oldest.
            self.gen.count("refused")
            st.refused_until = time.monotonic() + st.retry
            st.retry = min(st.retry * 2, REFUSED_RETRY[1])
            st.window, st.sent_upto = st.new_window(), 0
            self.gen.busy.add(self)
            return
        self.pump(stream)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        try:
            doc = json.loads(message.payload)
        except ValueError:
            return
        if message.topic == receipt_topic(self.name):
            self.receipt(doc)
        elif message.topic == acked_topic(self.name):
            self.acks.pop(doc.get("id"), None)
        elif isinstance(doc, dict) and "kind" in doc:
            status = "done" if doc["kind"] == "command" else "applied"
            ack = encode(Ack(site=self.name, kind=doc["kind"], id=doc["id"], version=doc.get("version"),
                             status=status, applied_version=doc.get("version")))
            self.acks[doc["id"]] = [ack, time.monotonic()]
            self.gen.busy.add(self)
            client.publish(ack_topic(self.name), ack, qos=1)

    # -- the outbox -----------------------------------------------------------------------------------

    def add(self, stream: str, type_: str, body: dict[str, Any]) -> None:
        st = self.streams[stream]
        st.seq += 1
        st.pending[st.seq] = [Message(id=uuid.uuid4().hex, seq=st.seq, at=now_iso(), type=type_, body=body),
                              time.time(), 0]
        self.gen.created += 1
        self.gen.pending += 1
        self.gen.busy.add(self)

    def pump(self, stream: str) -> None:
        """Send what the window and the PUBACK limit allow, from the first seq not sent on this connection."""
        st = self.streams[stream]
        if not self.up or self.client is None or time.monotonic() < st.refused_until:
            return
        while st.inflight < EDGE.max_inflight and st.window.has_room():
            batch = st.unsent(MAX_BATCH_MESSAGES)
            if not batch:
                return
            payload = encode(UpBatch(site=self.name, stream=stream, messages=[e[0] for e in batch]))
            info = self.client.publish(up_topic(self.name, stream), payload, qos=1)
            if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
                return
            self.mids[info.mid] = stream
            st.inflight += 1
            first, last = batch[0][0].seq, batch[-1][0].seq
            st.window.sent(first, last, time.monotonic())
            st.sent_upto = last
            for entry in batch:
                if entry[2]:
                    self.gen.resent += 1
                entry[2] += 1

    def receipt(self, doc: dict[str, Any]) -> None:
        st = self.streams.get(doc.get("stream", ""))
        if st is None or doc.get("site") != self.name:
            return
        first, last = int(doc["first_seq"]), int(doc["last_seq"])
        now = time.time()
        removed = 0
        for seq in range(first, last + 1):
            entry = st.pending.pop(seq, None)
            if entry is None:
                continue
            removed += 1
            if doc.get("status", "stored") == "stored":
                self.gen.latencies.append((round(entry[1], 3), round(now - entry[1], 4)))
            else:       # not expected from a well-formed site; counted, and not sent again forever
                self.gen.count("rejected")
                self.gen.last_error = f"{self.name}: rejected: {doc.get('error')}"
        self.gen.pending -= removed
        if st.window.confirmed(first, last) or removed:
            st.window.progress()
        self.pump(doc["stream"])

    def tick(self, now: float) -> bool:
        """Once a second while the site has something unconfirmed: receipt waits and refused streams,
        as the edge's sender loop. -> whether anything is still unconfirmed."""
        busy = bool(self.acks)
        for name, st in self.streams.items():
            if not st.pending:
                continue
            busy = True
            if st.window.expired(now):
                st.sent_upto = 0
                self.gen.count("receipt_timeouts")
            self.pump(name)
        if self.up and self.client is not None:
            for entry in self.acks.values():
                if now - entry[1] >= ACK_RESEND:
                    entry[1] = now
                    self.client.publish(ack_topic(self.name), entry[0], qos=1)
        return busy

    def oldest_pending(self) -> float | None:
        return min((entry[1] for st in self.streams.values() for entry in st.pending.values()), default=None)

    # -- what happens at the site -------------------------------------------------------------------

    def telemetry(self, n: int) -> None:
        self.add("telemetry", "telemetry", telemetry_body(n, self.gen.telemetry_interval))

    def session_start(self) -> None:
        self.sessions += 1
        charger, tx = f"{self.name}-cp{self.sessions % 4 + 1}", self.sessions
        at = now_iso()
        self.add("session", "session.started", {
            "transaction_id": tx, "charger_id": charger, "connector_id": 1, "id_tag": f"TAG{tx % 97:04d}",
            "auth_status": "Accepted", "user_group": "residents", "meter_start": 100_000 + tx, "start_time": at,
            "reservation_id": None, "flag": None, "received_at": at})
        for status in ("Preparing", "Charging"):
            self.add("status", "connector.status", _connector(charger, status, at))

    def session_stop(self) -> None:
        charger, tx = f"{self.name}-cp{self.sessions % 4 + 1}", max(self.sessions, 1)
        at = now_iso()
        for status in ("Finishing", "Available"):
            self.add("status", "connector.status", _connector(charger, status, at))
        self.add("session", "session.stopped", {
            "transaction_id": tx, "charger_id": charger, "connector_id": 1, "id_tag": f"TAG{tx % 97:04d}",
            "user_group": "residents", "meter_start": 100_000 + tx, "meter_stop": 112_345 + tx, "energy_wh": 12_345,
            "start_time": at, "stop_time": at, "stop_reason": "EVDisconnected", "stop_id_tag": None,
            "edge_stop": None, "received_at": at})
        self.add("cdr", "cdr", _cdr(self.name, charger, tx, at))


def _connector(charger: str, status: str, at: str) -> dict[str, Any]:
    return {"charger_id": charger, "connector_id": 1, "status": status, "error_code": "NoError", "info": None,
            "vendor_id": None, "vendor_error_code": None, "charger_time": at}


def _cdr(site: str, charger: str, tx: int, at: str) -> dict[str, Any]:
    """The fields of edge.cdr.record.Cdr, with typical values."""
    return {"id": uuid.uuid4().hex, "site_id": site, "timezone": "Europe/Berlin", "transaction_id": tx,
            "charger_id": charger, "connector_id": 1, "id_tag": f"TAG{tx % 97:04d}", "user": "resident",
            "user_group": "residents", "authorization": "local_list", "start_time": at, "stop_time": at,
            "start_received_at": at, "stop_received_at": at, "meter_start_wh": 100_000 + tx,
            "meter_stop_wh": 112_345 + tx, "energy_kwh": "12.345", "duration_s": 9000.0, "charging_s": 8100.0,
            "idle_s": 900.0, "max_power_kw": "11.040", "average_power_kw": "5.487", "stop_reason": "EVDisconnected",
            "stopped_by_edge": None, "tariff_group": "residents", "tariff": "home", "tariff_type": "energy",
            "currency": "EUR", "vat_percent": "19", "price_net": "3.11", "vat": "0.59", "price_gross": "3.70",
            "price_components": [{"kind": "energy", "quantity": "12.345", "unit_price": "0.252", "amount": "3.11"}],
            "status": "Successful", "status_reasons": [], "flags": [], "created_at": at, "revision": 1,
            "supersedes": None, "revision_reason": None, "tariff_version": "2026-01-01T00:00:00Z"}


class Generator:
    def __init__(self, args: argparse.Namespace) -> None:
        self.loop = asyncio.get_running_loop()
        self.host, self.port, self.password = args.host, args.port, args.password
        self.telemetry_interval = args.telemetry_interval
        self.session_rate = args.sessions_per_day / 86400.0
        self.rng = random.Random(args.seed)
        self.sites = [Site(self, f"{args.prefix}{n:05d}", n) for n in range(args.first, args.first + args.count)]
        self.busy: set[Site] = set()
        self.connected = 0
        self.created = self.pending = self.resent = 0
        self.counters: dict[str, int] = {}
        self.latencies: list[tuple[float, float]] = []
        self.last_error = ""
        self.tasks: list[asyncio.Task] = []
        self.traffic: asyncio.Task | None = None

    def count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    async def sleep_jittered(self, delay: float) -> None:
        await asyncio.sleep(delay * (0.5 + self.rng.random() / 2))     # as the edge's _sleep

    def connect(self) -> None:
        first = asyncio.Semaphore(FIRST_CONNECTS)
        self.tasks += [asyncio.create_task(site.run(first)) for site in self.sites]
        self.tasks += [asyncio.create_task(self._ticks()), asyncio.create_task(self._keepalive())]

    async def _ticks(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for site in list(self.busy):
                if not site.tick(now):
                    self.busy.discard(site)

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(MISC_EVERY)
            for site in self.sites:
                if site.up and site.client is not None:
                    site.client.loop_misc()

    async def _traffic(self) -> None:
        start = time.monotonic()
        due: list[tuple[float, int, str]] = []
        expo = self.rng.expovariate
        for i in range(len(self.sites)):
            due.append((start + self.rng.uniform(0, self.telemetry_interval), i, "telemetry"))
            if self.session_rate > 0:
                due += [(start + expo(self.session_rate), i, "start"), (start + expo(self.session_rate), i, "stop")]
        heapq.heapify(due)
        n = 0
        while due:
            at, i, kind = due[0]
            wait = at - time.monotonic()
            if wait > 0:
                await asyncio.sleep(min(wait, 0.5))
                continue
            heapq.heappop(due)
            site = self.sites[i]
            if kind == "telemetry":
                n += 1
                site.telemetry(n)
                heapq.heappush(due, (at + self.telemetry_interval, i, kind))
            else:
                site.session_start() if kind == "start" else site.session_stop()
                heapq.heappush(due, (at + expo(self.session_rate), i, kind))
            for stream in ("telemetry",) if kind == "telemetry" else STREAMS:
                site.pump(stream)

    def status(self) -> dict[str, Any]:
        oldest = min((t for t in (s.oldest_pending() for s in self.busy) if t is not None), default=None)
        return {"t": round(time.time(), 3), "sites": len(self.sites), "connected": self.connected,
                "created": self.created, "pending": self.pending, "oldest_pending": oldest,
                "stored": len(self.latencies), "resent": self.resent, **self.counters,
                "last_error": self.last_error}

    def report(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as out:
            json.dump({"status": self.status(), "latencies": self.latencies}, out, separators=(",", ":"))

    async def stop(self) -> None:
        for task in self.tasks + ([self.traffic] if self.traffic else []):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for site in self.sites:
            if site.up and site.client is not None:
                site.client.disconnect()      # a clean goodbye: no last will for each site
        await asyncio.sleep(0.5)
        for site in self.sites:
            site.drop()


def say(doc: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(doc, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def serve(args: argparse.Namespace) -> None:
    gen = Generator(args)
    loop = gen.loop

    async def statuses() -> None:
        while True:
            say({"status": gen.status()})
            await asyncio.sleep(1.0)

    reporter = asyncio.create_task(statuses())
    try:
        while True:
            line = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
            if not line or line == "quit":
                break
            if line == "connect":
                gen.connect()
            elif line == "traffic on" and gen.traffic is None:
                gen.traffic = asyncio.create_task(gen._traffic())
            elif line == "traffic off" and gen.traffic is not None:
                gen.traffic.cancel()
                gen.traffic = None
            elif line.startswith("report "):
                gen.report(line.split(" ", 1)[1])
                say({"reported": line.split(" ", 1)[1]})
            else:
                say({"error": f"unknown command {line!r}"})
    finally:
        reporter.cancel()
        await gen.stop()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet_sites", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--prefix", default="s")
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--telemetry-interval", type=float, default=EDGE.telemetry_interval)
    parser.add_argument("--sessions-per-day", type=float, default=6.0)
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    raise_fd_limit()
    asyncio.run(serve(parse_args(sys.argv[1:] if argv is None else argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
