"""The cloud's MQTT connection (paho-mqtt 2.x, MQTT 5), on paho's network thread.

The hand-over between paho's thread and asyncio is explicit and one-way per
direction:

* in: paho's thread turns each PUBLISH into a `Received` and hands it to the
  event loop with `call_soon_threadsafe`; it touches nothing else.
* out: the event loop calls `publish` and `ack`, which paho documents as safe
  from another thread (they queue a packet and wake the network thread); the
  PUBACK for our publish is awaited on a worker thread (`wait_for_publish`).

Messages are acknowledged by hand (`manual_ack`): the ingest sends the PUBACK
only after the message is committed to the database. The session is clean by
default (session_expiry 0): the subscriptions are shared, and a broker goes on
handing an absent member of a shared group its share while its session lives.
What an instance killed between receiving and committing had been handed is
sent again by its site, which keeps each message until the cloud's receipt
(and each ack until the cloud's AckReceipt).

Every subscription is shared, the state topic's too (issue 18, observation 5:
with it unshared every instance stored every site's birth and re-read every
retained state at each reconnection). Births and wills handled by different
instances are put in order by the connection counter they carry
(cloud/store/ingest.py store_state). A shared subscription gets no retained
copies, so the states published while no instance was subscribed are read
once from the retained ones (`sweep_states`), by one instance (cloud/brokers.py).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from cloud.config import MqttSettings
from contract.v1 import CLOUD_FILTERS, shared, state_topic

log = logging.getLogger(__name__)
# While the broker stays unreachable, one reminder line this often.
UNREACHABLE_REPEAT_S = 300.0


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    mid: int
    qos: int
    retain: bool          # a retained copy replayed because we subscribed, not a fresh publish
    generation: int       # which connection it came on: a PUBACK only makes sense on that one
    broker: str = "main"  # which broker it came from (cloud/brokers.py): its PUBACK and receipt go back there


def subscriptions(group: str) -> list[str]:
    """Everything shared: each message goes to one instance of the group. Births and wills are put in
    order by their connection counter, not by which instance handles them first."""
    return [shared(f, group) for f in CLOUD_FILTERS]


STATE_FILTER = state_topic("+")
# The sweep's subscription identifier (MQTT 5): a live state that also matched it while it lasted is a
# second copy of one the shared subscription delivers, and is dropped.
SWEEP_ID = 1


class MqttLink:
    def __init__(self, settings: MqttSettings, deliver: Callable[[Received], None], *, name: str = "main",
                 on_change: Callable[["MqttLink"], None] | None = None):
        self.settings = settings
        self.name = name
        self._deliver = deliver
        self._on_change = on_change            # on the event loop, after each connect, subscribe, disconnect
        self.sweeps = 0
        self.swept = asyncio.Event()           # the broker confirmed the sweep's UNSUBSCRIBE (sweep_states)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.connected = asyncio.Event()
        self.reconnected = asyncio.Event()     # set at every CONNACK (the downlink republishes then)
        self.subscribed = asyncio.Event()      # the broker confirmed our subscriptions on this connection
        self.disconnected = asyncio.Event()    # set while there is no connection
        self.disconnected.set()
        self.connections = 0                   # successful CONNACKs so far (the republisher watches it)
        self._generation = 0                   # written on paho's thread only
        self._puback_reasons: dict[int, paho.ReasonCode] = {}
        self._reasons_lock = threading.Lock()
        self._unreachable_since: float | None = None    # paho's thread only
        self._unreachable_logged = 0.0
        self.client = self._make_client()

    def _make_client(self) -> paho.Client:
        s = self.settings
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=s.client_id, protocol=paho.MQTTv5,
                             manual_ack=True)
        if s.username:
            client.username_pw_set(s.username, s.password)
        if s.ca_file:
            client.tls_set(ca_certs=s.ca_file, certfile=s.cert_file, keyfile=s.key_file)
        # A broker back after an outage finds its sites reconnecting within a second; the cloud must not
        # lag far behind (until it resubscribes the sites are told "no matching subscribers").
        client.reconnect_delay_set(min_delay=1, max_delay=s.reconnect_max_delay)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_unsubscribe = self._on_unsubscribe
        return client

    # -- lifecycle (event loop) ----------------------------------------------------------------------

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        s = self.settings
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = s.session_expiry
        properties.ReceiveMaximum = s.receive_maximum
        # A session that outlives the connection is only resumed when the operator asked for one.
        self.client.connect_async(s.host, s.port, keepalive=s.keepalive, clean_start=s.session_expiry == 0,
                                  properties=properties)
        self.client.loop_start()
        try:
            await asyncio.Future()
        finally:
            self.client.disconnect()
            await asyncio.get_running_loop().run_in_executor(None, self.client.loop_stop)
            self._connected_changed(False)

    # -- paho's thread ---------------------------------------------------------------------------------

    def _on_connect(self, client: paho.Client, userdata: object, flags: paho.ConnectFlags,
                    reason: paho.ReasonCode, properties: Properties | None) -> None:
        if reason.is_failure:
            log.error("MQTT broker %s:%s refused the connection: %s", self.settings.host, self.settings.port, reason)
            return
        self._generation += 1
        self._unreachable_since = None
        topics = subscriptions(self.settings.share_group)
        # No retained copies at subscribe time: Mosquitto 2.0 sends them on shared subscriptions too (MQTT 5
        # says it should not), and each instance would read every site's state at each connection.
        client.subscribe([(t, SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND))
                          for t in topics])
        log.info("MQTT connected to %s %s:%s as %s (session %s); subscribed to %s", self.name, self.settings.host,
                 self.settings.port, self.settings.client_id, "resumed" if flags.session_present else "new",
                 ", ".join(topics))
        self._to_loop(self._connected_changed, True)

    def _on_connect_fail(self, client: paho.Client, userdata: object) -> None:
        # paho retries on its own and says nothing: one line when the broker is first missed, then one
        # every UNREACHABLE_REPEAT_S while it stays away (not one per retry). Reset by a connection.
        now = time.monotonic()
        if self._unreachable_since is None or now - self._unreachable_logged >= UNREACHABLE_REPEAT_S:
            since = "" if self._unreachable_since is None else \
                f" (for {now - self._unreachable_since:.0f} s)"
            self._unreachable_since = self._unreachable_since or now
            self._unreachable_logged = now
            log.warning("MQTT broker %s:%s cannot be reached%s; trying again every few seconds", self.settings.host,
                        self.settings.port, since)

    def _on_disconnect(self, client: paho.Client, userdata: object, flags: paho.DisconnectFlags,
                       reason: paho.ReasonCode, properties: Properties | None) -> None:
        log.warning("MQTT disconnected from %s:%s: %s (reconnecting)", self.settings.host, self.settings.port, reason)
        self._to_loop(self._connected_changed, False)

    def _on_subscribe(self, client: paho.Client, userdata: object, mid: int, reasons: list[paho.ReasonCode],
                      properties: Properties | None) -> None:
        refused = [str(r) for r in reasons if r.is_failure]
        if refused:
            log.error("MQTT broker %s refused subscriptions: %s (check the broker ACL for the cloud's user)",
                      self.name, refused)
        if len(reasons) == 1:
            # The sweep's (the subscriptions are one SUBSCRIBE of len(CLOUD_FILTERS) filters). The broker
            # queued every retained state for us when it took it; what it queued comes even after the
            # UNSUBSCRIBE, and no live state comes twice from then on.
            client.unsubscribe(STATE_FILTER)
            return
        self._to_loop(self._subscribed)

    def _on_unsubscribe(self, client: paho.Client, userdata: object, mid: int, reasons: list[paho.ReasonCode],
                        properties: Properties | None) -> None:
        # The only UNSUBSCRIBE is the sweep's: every retained state it queued has come before this.
        self._to_loop(self.swept.set)

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        ids = getattr(message.properties, "SubscriptionIdentifier", None) or []
        if SWEEP_ID in ids and not message.retain:
            client.ack(message.mid, message.qos)        # the shared subscription hands it to an instance
            return
        self._to_loop(self._deliver, Received(message.topic, message.payload, message.mid, message.qos,
                                              bool(message.retain), self._generation, self.name))

    def _on_publish(self, client: paho.Client, userdata: object, mid: int, reason: paho.ReasonCode,
                    properties: Properties) -> None:
        # Read right after wait_for_publish returns: paho marks the message published after this callback.
        with self._reasons_lock:
            self._puback_reasons[mid] = reason

    def _to_loop(self, fn: Callable, *args: object) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(fn, *args)

    # -- event loop ------------------------------------------------------------------------------------

    def _connected_changed(self, up: bool) -> None:
        if up:
            self.connections += 1
            self.connected.set()
            self.disconnected.clear()
            self.reconnected.set()
        else:
            self.connected.clear()
            self.subscribed.clear()
            self.disconnected.set()
        if self._on_change is not None:
            self._on_change(self)

    def _subscribed(self) -> None:
        self.subscribed.set()
        if self._on_change is not None:
            self._on_change(self)

    def sweep_states(self) -> bool:
        """Reads every site's retained state once: subscribes to the state topic unshared and drops
        that subscription as soon as the broker confirmed it (the retained copies arrive all the same,
        marked retained). For the states published while no instance was subscribed: a shared
        subscription gets no retained copies. -> False when not connected."""
        if not self.connected.is_set():
            return False
        self.swept.clear()
        properties = Properties(PacketTypes.SUBSCRIBE)
        properties.SubscriptionIdentifier = SWEEP_ID
        result, _ = self.client.subscribe(STATE_FILTER, options=SubscribeOptions(qos=1), properties=properties)
        if result != paho.MQTT_ERR_SUCCESS:
            return False
        self.sweeps += 1
        log.info("reading every site's retained state on broker %s once (no instance was there to see what "
                 "changed meanwhile)", self.name)
        return True

    def ack(self, received: Received) -> None:
        """PUBACK, on the connection the message came on (after a reconnect the broker sends it again)."""
        if received.qos > 0 and received.generation == self._generation and self.connected.is_set():
            self.client.ack(received.mid, received.qos)

    def send(self, topic: str, payload: bytes) -> None:
        """QoS 1, not retained, nobody waits (receipts: one that is lost is asked for again by the
        site sending the batch again). Not connected: dropped, for the same reason."""
        if self.connected.is_set():
            self.client.publish(topic, payload, qos=1)

    async def publish(self, topic: str, payload: bytes, *, retain: bool, expiry_s: int | None = None,
                      timeout: float = 10.0) -> bool:
        """QoS 1; True once the broker acknowledged it with success (PUBACK), False if not connected,
        refused, or no PUBACK in time. Publishing is rare (pushes), so a worker thread waits for it:
        paho calls on_publish holding its own lock, and no lock of ours is needed around publish()."""
        if not self.connected.is_set():
            return False
        properties = None
        if expiry_s is not None:
            properties = Properties(PacketTypes.PUBLISH)
            properties.MessageExpiryInterval = max(1, int(expiry_s))
        info = self.client.publish(topic, payload, qos=1, retain=retain, properties=properties)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            return False
        return await asyncio.get_running_loop().run_in_executor(None, self._wait_published, info, timeout)

    def _wait_published(self, info: paho.MQTTMessageInfo, timeout: float) -> bool:
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError) as exc:
            log.warning("MQTT publish failed: %s", exc)
            return False
        if not info.is_published():
            return False
        with self._reasons_lock:
            reason = self._puback_reasons.pop(info.mid, None)
        if reason is not None and reason.is_failure:
            log.warning("MQTT broker refused a publish: %s (check the broker ACL for the cloud's user)", reason)
            return False
        return True
