"""A light simulated site at the contract level: what an edge's uplink does, without the edge.

For fleet tests and benchmarks (thousands of sites in one process): a paho-mqtt
client per site that publishes up-batches of consecutive seqs, keeps each batch
until the cloud's receipt and sends it again after `receipt_timeout`, answers
every push with an ack and sends that ack again until the cloud's AckReceipt,
as edge/uplink does. Receipt latency (publish to receipt) is recorded per batch.
Thread-safe: paho's thread runs the callbacks, the caller's loop calls
`send_batch` and `resend_due`.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.subscribeoptions import SubscribeOptions

from contract.v1 import (Ack, Message, SiteState, UpBatch, ack_topic, acked_topic, down_filter, encode, receipt_topic,
                         state_topic, up_topic)


def telemetry_body(n: int) -> dict[str, Any]:
    """About the size of a 3-circuit site's telemetry sample."""
    return {"grid": {"l1": 12.5 + n % 7, "l2": 11.0, "l3": 9.75}, "circuits": {
        c: {"limit": 32, "allocated": [16, 16, 16], "measured": [15.2, 15.9, 14.8]} for c in ("main", "garage", "pv")}}


@dataclass
class Pending:
    payload: bytes
    ids: list[str]
    first_sent: float
    sent: float
    sends: int = 1


@dataclass
class LightSite:
    host: str
    port: int
    site: str
    password: str | None = None
    receipt_timeout: float = 5.0
    ack_resend: float = 2.0
    sent_ids: set[str] = field(default_factory=set)
    latencies: list[float] = field(default_factory=list)
    resends: int = 0
    acks_sent: int = 0
    downs: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self.unconfirmed: dict[tuple[str, int], Pending] = {}       # (stream, first seq) -> batch
        self.unconfirmed_acks: dict[str, tuple[bytes, float]] = {}  # push id -> (ack, last sent)
        self.connected = threading.Event()
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=self.site, protocol=paho.MQTTv5)
        if self.password is not None:
            client.username_pw_set(self.site, self.password)
        client.will_set(state_topic(self.site), self._state(False), qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.reconnect_delay_set(0.2, 2)
        self.client = client

    def _state(self, online: bool) -> bytes:
        return encode(SiteState(site=self.site, online=online, at=_now()))

    def start(self) -> "LightSite":
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            return
        client.subscribe([(down_filter(self.site), SubscribeOptions(qos=1))])
        client.publish(state_topic(self.site), self._state(True), qos=1, retain=True)
        self.connected.set()

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        try:
            doc = json.loads(message.payload)
        except ValueError:
            return
        now = time.monotonic()
        with self._lock:
            if message.topic == receipt_topic(self.site):
                pending = self.unconfirmed.pop((doc["stream"], doc["first_seq"]), None)
                if pending is not None and doc.get("status", "stored") == "stored":
                    self.latencies.append(now - pending.first_sent)
                return
            if message.topic == acked_topic(self.site):
                self.unconfirmed_acks.pop(doc["id"], None)
                return
            if not message.payload or "kind" not in doc:
                return
            self.downs.append(doc)
            status = "done" if doc["kind"] == "command" else "applied"
            ack = encode(Ack(site=self.site, kind=doc["kind"], id=doc["id"], version=doc.get("version"),
                             status=status, applied_version=doc.get("version")))
            self.unconfirmed_acks[doc["id"]] = (ack, now)
            self.acks_sent += 1
        client.publish(ack_topic(self.site), ack, qos=1)

    def send_batch(self, stream: str = "telemetry", count: int = 1) -> None:
        messages = []
        for _ in range(count):
            seq = next(self._seq)
            messages.append(Message(id=uuid.uuid4().hex, seq=seq, at=_now(), type="telemetry",
                                    body=telemetry_body(seq)))
        payload = encode(UpBatch(site=self.site, stream=stream, messages=messages))
        now = time.monotonic()
        with self._lock:
            self.unconfirmed[(stream, messages[0].seq)] = Pending(payload, [m.id for m in messages], now, now)
            self.sent_ids.update(m.id for m in messages)
        self.client.publish(up_topic(self.site, stream), payload, qos=1)

    def resend_due(self) -> int:
        """Sends again each batch without a receipt for receipt_timeout and each unconfirmed ack; -> how many."""
        now = time.monotonic()
        out = []
        with self._lock:
            for (stream, _), pending in self.unconfirmed.items():
                if now - pending.sent >= self.receipt_timeout:
                    pending.sent, pending.sends = now, pending.sends + 1
                    out.append((up_topic(self.site, stream), pending.payload))
            for push_id, (ack, sent) in list(self.unconfirmed_acks.items()):
                if now - sent >= self.ack_resend:
                    self.unconfirmed_acks[push_id] = (ack, now)
                    out.append((ack_topic(self.site), ack))
            self.resends += len(out)
        for topic, payload in out:
            self.client.publish(topic, payload, qos=1)
        return len(out)

    @property
    def settled(self) -> bool:
        with self._lock:
            return not self.unconfirmed and not self.unconfirmed_acks


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}Z"
