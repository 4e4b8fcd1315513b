"""One MQTT connection on paho-mqtt 2.x, handed over to asyncio.

paho runs its network loop on its own thread (`loop_start`). Every callback it
makes on that thread does one thing: `loop.call_soon_threadsafe(...)`, so all
state below is touched on the event loop only. The hand-over also orders
things: a PUBACK's callback runs on the loop after the code that published
and recorded the message id, never before.

A `Connection` is one connection, used once: when it drops, the uplink makes a
new one after a backoff and resends from the journal's outbox. paho's own
reconnect is not used (its in-memory resend would duplicate ours), so
paho's delay before reconnecting is set far beyond the life of a connection.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from typing import Any, Callable

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

log = logging.getLogger(__name__)

NO_MATCHING_SUBSCRIBERS = 0x10


class LinkDown(Exception):
    """The connection could not be made or has ended; the text says why."""


class PublishRefused(Exception):
    """The broker answered a PUBLISH with a failure reason code (MQTT 5), or
    no one subscribes to the topic (0x10) where someone must."""

    def __init__(self, reason_code: int, reason: str):
        self.reason_code = reason_code
        super().__init__(f"{reason} (reason code 0x{reason_code:02x})")


@dataclass(frozen=True)
class LinkSettings:
    host: str
    port: int
    client_id: str
    username: str | None
    password: str | None
    protocol: str                    # "5" | "3.1.1"
    keepalive: int
    session_expiry: int              # s; MQTT 5 only (3.1.1: a persistent session without expiry)
    tls: bool
    ca_file: str | None
    cert_file: str | None
    key_file: str | None
    max_inflight: int                # PUBLISH packets paho keeps unacknowledged at once (more wait in paho)
    will_topic: str
    will_payload: bytes
    connect_timeout: float = 30.0


def tls_context(s: LinkSettings) -> ssl.SSLContext:
    """The uplink's TLS: 1.2 or newer, the broker's certificate checked against ca_file (else the system's CAs)
    and its name against the host, always: there is no setting that turns verification off."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=s.ca_file or None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if s.cert_file:
        context.load_cert_chain(s.cert_file, s.key_file or None)
    return context


@dataclass(frozen=True)
class Incoming:
    topic: str
    payload: bytes
    mid: int
    qos: int
    retain: bool


class Connection:
    def __init__(self, settings: LinkSettings, on_message: Callable[[Incoming], None]):
        self.settings = settings
        self._on_message = on_message
        self._loop = asyncio.get_running_loop()
        self._connack: asyncio.Future[bool] = self._loop.create_future()
        self.closed: asyncio.Future[str] = self._loop.create_future()
        self._publishes: dict[int, tuple[asyncio.Future[None], bool]] = {}
        self._subscribes: dict[int, asyncio.Future[None]] = {}
        self.session_present = False
        # MQTT 5: how many unacknowledged PUBLISHes the broker takes (paho does not hold to it by itself).
        self.receive_maximum: int | None = None
        self._client = self._make_client()

    @property
    def v5(self) -> bool:
        return self.settings.protocol == "5"

    def _make_client(self) -> paho.Client:
        s = self.settings
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=s.client_id,
                             protocol=paho.MQTTv5 if self.v5 else paho.MQTTv311,
                             clean_session=None if self.v5 else False,
                             # A downlink message is acknowledged after it was handled, not on arrival.
                             manual_ack=True)
        if s.username:
            client.username_pw_set(s.username, s.password)
        if s.tls:
            client.tls_set_context(tls_context(s))
        client.will_set(s.will_topic, s.will_payload, qos=1, retain=True)
        client.max_inflight_messages_set(s.max_inflight)
        client.reconnect_delay_set(min_delay=86400, max_delay=86400)
        client.on_connect = self._cb_connect
        client.on_connect_fail = self._cb_connect_fail
        client.on_disconnect = self._cb_disconnect
        client.on_publish = self._cb_publish
        client.on_subscribe = self._cb_subscribe
        client.on_message = self._cb_message
        return client

    # -- paho's thread: hand everything over to the event loop --------------------------------------

    def _hand_over(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:   # the event loop is gone (shutdown): nobody is waiting any more
            pass

    def _cb_connect(self, client, userdata, flags, reason_code, properties) -> None:
        receive_maximum = getattr(properties, "ReceiveMaximum", None) if properties is not None else None
        self._hand_over(self._connected, reason_code.is_failure, str(reason_code), flags.session_present,
                        receive_maximum)

    def _cb_connect_fail(self, client, userdata) -> None:
        self._hand_over(self._ended, "could not reach the broker")

    def _cb_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._hand_over(self._ended, f"disconnected: {reason_code}")

    def _cb_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self._hand_over(self._published, mid, reason_code.value, str(reason_code))

    def _cb_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        failed = [str(rc) for rc in reason_codes if rc.is_failure]
        self._hand_over(self._subscribed, mid, "; ".join(failed) or None)

    def _cb_message(self, client, userdata, message: paho.MQTTMessage) -> None:
        self._hand_over(self._on_message, Incoming(message.topic, bytes(message.payload), message.mid, message.qos,
                                                   bool(message.retain)))

    # -- the event loop -------------------------------------------------------------------------------

    def _connected(self, failed: bool, reason: str, session_present: bool, receive_maximum: int | None) -> None:
        if self._connack.done():
            return
        if failed:
            self._connack.set_exception(LinkDown(f"the broker refused the connection: {reason}"))
        else:
            self.session_present = session_present
            self.receive_maximum = receive_maximum
            self._connack.set_result(True)

    def _ended(self, why: str) -> None:
        if not self._connack.done():
            self._connack.set_exception(LinkDown(why))
            self._connack.exception()      # retrieved: open() may have given up on it already
        if not self.closed.done():
            self.closed.set_result(why)
        for future, _ in self._publishes.values():
            if not future.done():
                future.set_exception(LinkDown(why))
        for future in self._subscribes.values():
            if not future.done():
                future.set_exception(LinkDown(why))
        self._publishes.clear()
        self._subscribes.clear()

    def _published(self, mid: int, code: int, reason: str) -> None:
        entry = self._publishes.pop(mid, None)
        if entry is None or entry[0].done():
            return
        future, need_subscriber = entry
        if code >= 0x80 or (need_subscriber and code == NO_MATCHING_SUBSCRIBERS):
            future.set_exception(PublishRefused(code, reason))
        else:
            future.set_result(None)

    def _subscribed(self, mid: int, failure: str | None) -> None:
        future = self._subscribes.pop(mid, None)
        if future is None or future.done():
            return
        if failure:
            future.set_exception(LinkDown(f"the broker refused the subscription: {failure}"))
        else:
            future.set_result(None)

    # -- what the uplink calls --------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect; raises LinkDown when the broker cannot be reached or refuses."""
        s = self.settings
        properties = None
        if self.v5:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = s.session_expiry
        kwargs: dict[str, Any] = {"clean_start": False, "properties": properties} if self.v5 else {}
        try:
            # The TCP connect and TLS handshake on a worker thread, so their errors come back as
            # they are ("certificate verify failed", "connection refused"); then paho's thread.
            await asyncio.wait_for(asyncio.to_thread(self._client.connect, s.host, s.port, s.keepalive, **kwargs),
                                   s.connect_timeout)
        except (OSError, ValueError) as exc:     # ssl.SSLError is an OSError
            await self.abort()
            raise LinkDown(str(exc) or type(exc).__name__) from None
        except asyncio.TimeoutError:
            await self.abort()
            raise LinkDown(f"no answer from {s.host}:{s.port} within {s.connect_timeout:g} s") from None
        try:
            self._client.loop_start()
            await asyncio.wait_for(asyncio.shield(self._connack), s.connect_timeout)
        except asyncio.TimeoutError:
            await self.abort()
            raise LinkDown(f"no answer from {s.host}:{s.port} within {s.connect_timeout:g} s") from None
        except LinkDown:
            await self.abort()
            raise

    def publish(self, topic: str, payload: bytes, *, retain: bool = False,
                need_subscriber: bool = False) -> asyncio.Future[None]:
        """QoS 1. The future resolves on PUBACK, or fails with PublishRefused or LinkDown.
        need_subscriber (MQTT 5): a PUBACK saying no one subscribes counts as refused,
        so the message is kept rather than handed to a broker that will drop it."""
        future: asyncio.Future[None] = self._loop.create_future()
        if self.closed.done():
            future.set_exception(LinkDown(self.closed.result()))
            return future
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
            future.set_exception(LinkDown(f"publish failed: {paho.error_string(info.rc)}"))
            return future
        self._publishes[info.mid] = (future, need_subscriber)
        return future

    async def subscribe(self, topic_filter: str) -> None:
        future: asyncio.Future[None] = self._loop.create_future()
        rc, mid = self._client.subscribe(topic_filter, qos=1)
        if rc != paho.MQTT_ERR_SUCCESS:
            raise LinkDown(f"subscribe failed: {paho.error_string(rc)}")
        self._subscribes[mid] = future
        await future

    def ack(self, message: Incoming) -> None:
        """Acknowledge a received message (PUBACK), after it was handled. On a connection that
        has dropped meanwhile this does nothing: the broker sends it again on the next one."""
        if message.qos > 0 and not self.closed.done():
            self._client.ack(message.mid, message.qos)

    async def close(self, last_words: tuple[str, bytes] | None = None, timeout: float = 3.0) -> None:
        """A clean goodbye: publish `last_words` (topic, payload; retained) and wait for its
        PUBACK, then DISCONNECT, so the broker does not send the last will."""
        if last_words is not None and not self.closed.done():
            try:
                await asyncio.wait_for(self.publish(*last_words, retain=True), timeout)
            except (LinkDown, PublishRefused, asyncio.TimeoutError) as exc:
                log.warning("uplink: the offline state was not acknowledged: %s", exc)
        await self.abort()

    async def abort(self) -> None:
        """DISCONNECT if still connected (a no-op otherwise), and stop paho's thread."""
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)
        self._ended("closed")
