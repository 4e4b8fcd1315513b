"""Fixtures for the uplink: a real Mosquitto per test module, a plain paho
subscriber standing in for the cloud, and edges configured to use the broker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from contract.v1 import ContractError, Down, Receipt, encode, parse, receipt_topic
from edge.app import Edge
from edge.config import parse_config
from tests.edge.conftest import running_edge, site_toml, wait_for
from tests.mqtt_broker import MosquittoBroker

SITE = "test-site"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory):
    with MosquittoBroker(tmp_path_factory.mktemp("broker")) as b:
        yield b


@pytest.fixture
def live_broker(broker: MosquittoBroker) -> MosquittoBroker:
    """The module's broker, running (a test before may have stopped it)."""
    broker.start()
    return broker


class Cloud:
    """A plain paho client in the cloud's place: records everything under sc/v1/#
    (its own thread; read the lists from the test), answers each up batch with a
    receipt as the cloud does after storing it (unless `receipts` is off), and
    publishes downlink messages."""

    def __init__(self, broker: MosquittoBroker, client_id: str = "test-cloud", filters: tuple[str, ...] = ("sc/v1/#",),
                 username: str | None = None, password: str | None = None, persistent: bool = True,
                 port: int | None = None, receipts: bool = True):
        self.broker = broker
        self.receipts = receipts
        # A message for which this says True makes its batch refused (a rejected receipt), as the cloud
        # does with a message it cannot take.
        self.refuse: Callable[[dict], bool] | None = None
        self.stored: list[str] = []         # ids confirmed with a stored receipt (redeliveries too)
        self.port = port or broker.port
        self.persistent = persistent
        self.filters = filters
        self.lock = threading.Lock()
        self.messages: list[tuple[str, dict | bytes, bool]] = []
        self.connected = threading.Event()
        self.subscribed = threading.Event()     # the broker confirmed every filter (they are in its session)
        self._pending_subscriptions: set[int] = set()
        self.sessions_present: list[bool] = []  # each CONNACK's session-present flag, in order
        self.client_id, self.username, self.password = client_id, username, password
        self.client = self._make_client()
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    def _make_client(self) -> paho.Client:
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=paho.MQTTv5)
        if self.username:
            client.username_pw_set(self.username, self.password)
        return client

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self.subscribed.clear()
        with self.lock:
            self.sessions_present.append(bool(flags.session_present))
            self._pending_subscriptions = {client.subscribe(f, qos=1)[1] for f in self.filters}
        self.connected.set()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        with self.lock:
            self._pending_subscriptions.discard(mid)
            if not self._pending_subscriptions:
                self.subscribed.set()

    def _on_message(self, client, userdata, message) -> None:
        try:
            payload: dict | bytes = json.loads(message.payload)
        except (ValueError, RecursionError):
            payload = bytes(message.payload)
        with self.lock:
            self.messages.append((message.topic, payload, bool(message.retain)))
        if self.receipts and "/up/" in message.topic and isinstance(payload, dict):
            try:
                batch = parse(message.topic, bytes(message.payload))
            except ContractError:
                return          # a test's bad input: the cloud would reject it, with no receipt
            last = batch.messages[-1]
            refuse = self.refuse
            refused = refuse is not None and any(refuse(m.model_dump()) for m in batch.messages)
            receipt = Receipt(site=batch.site, stream=batch.stream, first_seq=batch.messages[0].seq,
                              last_seq=last.seq, last_id=last.id, status="rejected" if refused else "stored",
                              error="schema: a message the test cloud refuses" if refused else None)
            if not refused:
                with self.lock:
                    self.stored += [m.id for m in batch.messages]
            client.publish(receipt_topic(batch.site), encode(receipt), qos=1)

    def start(self) -> "Cloud":
        props = Properties(PacketTypes.CONNECT)
        # Persistent: the broker queues for us while we are away, as it does for the real cloud, and keeps the
        # session over its own restart. The module's broker may still hold what an earlier test's edge sent to
        # this client id, and that must not arrive in this test's lists: a first connection with clean start
        # ends that session. Ours then connects without clean start, every time: Mosquitto saves to its
        # persistence only the sessions of clients whose current connection did not ask for a clean start,
        # so a session begun with clean start is gone after a restart even with a session expiry interval.
        props.SessionExpiryInterval = 3600 if self.persistent else 0
        if self.persistent:
            self._discard_session()
        self.client.connect(self.broker.host, self.port, keepalive=5, properties=props,
                            clean_start=not self.persistent)
        self.client.loop_start()
        assert self.connected.wait(5), "test cloud did not connect"
        # Until the SUBACK: a test that stops the broker right away must find the subscription in the
        # session the broker saved, or what the edge sends after the restart has no subscriber.
        assert self.subscribed.wait(5), "the broker did not confirm the test cloud's subscriptions"
        return self

    def _discard_session(self) -> None:
        """Connect once with clean start (and no session expiry) under our client id, and leave."""
        wiper = self._make_client()
        connack = threading.Event()
        wiper.on_connect = lambda *args: connack.set()
        wiper.connect(self.broker.host, self.port, keepalive=5, clean_start=True)
        wiper.loop_start()
        try:
            assert connack.wait(5), "the broker did not answer the test cloud's clean start"
        finally:
            wiper.disconnect()
            wiper.loop_stop()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def received(self, topic_part: str = "") -> list[tuple[str, Any, bool]]:
        with self.lock:
            return [m for m in self.messages if topic_part in m[0]]

    def up_messages(self, stream: str) -> list[dict]:
        """Every message (not batch) received on a stream, in arrival order, duplicates included."""
        return [msg for _, batch, _ in self.received(f"/up/{stream}") for msg in batch["messages"]]

    def acks(self) -> list[dict]:
        return [payload for _, payload, _ in self.received("/ack")]

    def states(self) -> list[tuple[dict, bool]]:
        return [(payload, retained) for _, payload, retained in self.received("/state")]

    def send(self, down: Down, retain: bool | None = None) -> None:
        info = self.client.publish(f"sc/v1/sites/{down.site}/down/{down.kind}", encode(down), qos=1,
                                   retain=down.kind != "command" if retain is None else retain)
        info.wait_for_publish(5)

    def send_raw(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def clear_retained(self, site: str = SITE) -> None:
        for kind in ("auth", "tariffs", "limits"):
            self.client.publish(f"sc/v1/sites/{site}/down/{kind}", b"", qos=1, retain=True).wait_for_publish(5)


@pytest.fixture
def cloud(live_broker: MosquittoBroker) -> Any:
    c = Cloud(live_broker).start()
    yield c
    if live_broker.running and c.client.is_connected():
        c.clear_retained()
    c.stop()


def uplink_toml(broker: MosquittoBroker, **keys: Any) -> str:
    settings = {"enabled": True, "host": broker.host, "port": broker.port, "keepalive": 5,
                "reconnect_min_delay": 0.1, "reconnect_max_delay": 0.5, **keys}
    return "[uplink]\n" + "\n".join(f"{k} = {json.dumps(v)}" for k, v in settings.items()) + "\n"


@pytest.fixture
def make_uplinked_edge(tmp_path: Path, broker: MosquittoBroker) -> Callable[..., Any]:
    """An edge with [uplink] on the module's broker; `extra` adds config tables."""
    @contextlib.asynccontextmanager
    async def _make(clock: Any = None, extra: str = "", state_dir: Path | None = None,
                    **uplink: Any) -> AsyncIterator[Edge]:
        config = parse_config(site_toml(tmp_path, extra=extra + uplink_toml(broker, **uplink)), "test.toml",
                              state_dir=str(state_dir or tmp_path))
        async with running_edge(config, clock) as edge:
            yield edge
    return _make


async def eventually(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll a predicate that may read other threads' results (the test cloud's lists)."""
    return await wait_for(predicate, timeout, what)


async def drained(edge: Edge, timeout: float = 10.0) -> None:
    """Until the edge's outbox is empty (everything acknowledged by the broker)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while any((backlog := await edge.uplink.outbox.backlog()).values()):
        if loop.time() > deadline:
            raise AssertionError(f"outbox not drained: {backlog}")
        await asyncio.sleep(0.05)
