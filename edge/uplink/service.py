"""The uplink: the edge's link to the cloud over MQTT (contract v1).

One connection at a time; when it drops or cannot be made, a new one after a
backoff that doubles up to `reconnect_max_delay`, with jitter. On each
connection:

- subscribe to the site's `down/+` (a persistent session: commands sent while
  the site was offline are queued by the broker);
- birth: the retained SiteState online=true with the backlog per stream (the
  last will, set at connect, is the retained online=false);
- one sender per stream sends the outbox from its oldest undelivered message,
  in order, up to `max_inflight` batches awaiting their PUBACK and a window
  awaiting the cloud's receipt; a batch leaves the outbox on the cloud's
  receipt only (down/receipt: the cloud has it in its database), so whatever
  was unconfirmed when a connection dropped, or when the receipt is overdue,
  goes again (the cloud keeps one copy per message id);
- downlink messages are handled one by one (commands in the background) and
  acknowledged to the broker only after their ack went out; each ack is sent
  again, with back-off, until the cloud's AckReceipt (down/acked) says it is
  stored: the broker hands an ack to one cloud instance, which may die first.

Charging never waits for any of this: an error here is logged and the link is
made again; it never stops the edge.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections import deque
from typing import Any, Callable

from contract.v1 import (STREAMS, Ack, AckReceipt, ContractError, Down, Receipt, SiteState, ack_topic, acked_topic,
                         down_filter, encode, parse, receipt_topic, state_topic, up_topic)
from edge.clock import Clock
from edge.events import EventBus
from edge.journal import Journal, Store
from edge.uplink.config import UplinkSection
from edge.uplink.downlink import Downlink
from edge.uplink.mqtt import Connection, Incoming, LinkDown, LinkSettings, PublishRefused
from edge.uplink.outbox import ALERT_TYPES, MAX_BATCH_MESSAGES, Outbox
from edge.uplink.telemetry import TelemetrySampler
from edge.uplink.window import Window

log = logging.getLogger(__name__)

POLL = 2.0                 # s: senders look at the outbox at least this often (triggers tell no one)
LINGER = 0.02              # s: after a wake-up, let a burst gather into one batch
REFUSED_RETRY = (0.5, 30.0)  # s: a stream the broker refused waits this long (doubling) before it tries again
STATE_EVERY = 30.0         # s: the retained state is refreshed this often while the backlog changes
STABLE_AFTER = 60.0        # s: a connection that lasted this long resets the backoff
BUDGET_EVERY = 10.0        # s: the disk budget is checked this often
DEFAULT_RECEIVE_MAXIMUM = 20   # PUBLISHes in flight until a broker says what it takes (mosquitto's default)
RELEASE_EVERY = 3600.0     # s: messages the cloud refused are offered again this often
UNCONFIRMED_BATCHES = 2    # x max_inflight: full batches a stream may have awaiting the cloud's receipt
# An ack the cloud has not confirmed goes again after ACK_RESEND[0] s, doubling up to ACK_RESEND[1], at most
# ACK_ATTEMPTS times: a cloud from before AckReceipts never confirms, and sends its push again anyway
# (on the site's birth, and every 5 minutes to an hour until acked), so nothing rests on the last try.
ACK_RESEND = (5.0, 300.0)
ACK_ATTEMPTS = 12
MAX_UNCONFIRMED_ACKS = 1000   # beyond: the oldest is forgotten (the cloud's resend of its push covers it)


class PendingAck:
    """An ack sent and not yet confirmed by the cloud."""
    __slots__ = ("ack", "attempts", "due")

    def __init__(self, ack: Ack, due: float):
        self.ack, self.attempts, self.due = ack, 1, due


def _consume(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()   # abandoned after an earlier batch failed: nobody else looks at it


class Uplink:
    def __init__(self, settings: UplinkSection, *, site_id: str, software_version: str, journal: Journal,
                 bus: EventBus, clock: Clock, outbox: Outbox, downlink: Downlink,
                 telemetry: TelemetrySampler | None, resolve_path: Callable[[str], Any],
                 rng: random.Random | None = None):
        self.settings = settings
        self.site_id = site_id
        self.software_version = software_version
        self._journal = journal
        self._bus = bus
        self._clock = clock
        self.outbox = outbox
        self.downlink = downlink
        self.telemetry = telemetry
        self._resolve = resolve_path
        self._rng = rng or random.Random()
        self.connection: Connection | None = None
        self.connected_since: str | None = None
        self.last_error: str | None = None
        self.connections = 0
        self.refused: dict[str, str] = {}
        self.windows: dict[str, Window] = {}      # per stream, on the current connection
        self.receipts = 0
        self._receipt_topic = receipt_topic(site_id)
        self._acked_topic = acked_topic(site_id)
        self.unconfirmed_acks: dict[tuple[str, str], PendingAck] = {}    # (push id, status) -> ack
        self._acks_changed = asyncio.Event()
        self.acks_resent = 0
        self._published_backlog: dict[str, int] | None = None
        self._commands: dict[str, list[tuple[Connection, Incoming]]] = {}
        self._tasks: set[asyncio.Task] = set()
        self._receive_maximum = DEFAULT_RECEIVE_MAXIMUM
        self.stopping = False
        self.connection_number: int | None = None     # the counter in this connection's birth and will

    # -- the whole life --------------------------------------------------------------------------------------

    async def run(self) -> None:
        await self.outbox.start()
        parts: dict[str, Callable[[], Any]] = {"bus": self._follow_bus, "budget": self._budget, "link": self._link,
                                               "release": self._release_now_and_then}
        if self.telemetry is not None:
            parts["telemetry"] = self.telemetry.run
        tasks = [asyncio.create_task(self._guarded(name, part), name=f"uplink-{name}") for name, part in parts.items()]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in [*tasks, *self._tasks]:
                task.cancel()
            await asyncio.gather(*tasks, *self._tasks, return_exceptions=True)

    @staticmethod
    async def _guarded(name: str, part: Callable[[], Any]) -> None:
        """Run `part` again after an error: the uplink must never take the edge down with it."""
        while True:
            try:
                await part()
                return
            except Exception:  # noqa: BLE001 - logged loudly; charging goes on, the uplink restarts the part
                log.exception("uplink: %s failed; starting it again in 5 s", name)
                await asyncio.sleep(5)

    async def _follow_bus(self) -> None:
        """Alerts from the load manager into the outbox; any event may mean a trigger wrote a message."""
        events = self._bus.subscribe()
        try:
            while True:
                event = await events.get()
                if event.kind in ALERT_TYPES:
                    try:
                        await self.outbox.alert_from_event(event.kind, event.charger_id, event.at, event.data)
                    except Exception:  # noqa: BLE001 - this alert is lost, loudly; the ones after it are not
                        log.exception("uplink: the %s alert of %s could not be put in the outbox", event.kind,
                                      event.charger_id or "the site")
                elif event.kind == "cdr.created":
                    self.outbox.wake("cdr")
                elif event.kind.startswith(("transaction.", "connector.", "charger.")):
                    self.outbox.wake()
        finally:
            self._bus.unsubscribe(events)

    async def _budget(self) -> None:
        while True:
            await self.outbox.enforce_budget()
            await asyncio.sleep(BUDGET_EVERY)

    def _link_settings(self) -> LinkSettings:
        s = self.settings

        def path(name: str) -> str | None:
            return str(self._resolve(name)) if name else None
        return LinkSettings(
            host=s.host, port=s.port, client_id=s.client_username(self.site_id),
            username=s.client_username(self.site_id), password=s.read_password(self._resolve),
            protocol=s.protocol, keepalive=s.keepalive, session_expiry=s.session_expiry, tls=s.use_tls,
            ca_file=path(s.ca_file), cert_file=path(s.cert_file), key_file=path(s.key_file),
            # Within the broker's receive maximum (mosquitto's default: 20), or it disconnects us.
            max_inflight=min(s.max_inflight * len(STREAMS) + 2, self._receive_maximum),
            will_topic=state_topic(self.site_id), will_payload=self._state(online=False))

    def _state(self, *, online: bool, backlog: dict[str, int] | None = None) -> bytes:
        return encode(SiteState(site=self.site_id, online=online, at=self._clock.now_iso(),
                                software_version=self.software_version, backlog=backlog or {},
                                connection=self.connection_number))

    async def _link(self) -> None:
        delay = self.settings.reconnect_min_delay
        while True:
            incoming: asyncio.Queue[Incoming] = asyncio.Queue()
            try:
                # Committed before the CONNECT that carries it in the will: no two connections share one.
                self.connection_number = await self._journal.write(Store.next_uplink_connection,
                                                                      int(self._clock.now().timestamp()))
                conn = Connection(self._link_settings(), incoming.put_nowait)
                await conn.open()
            except (LinkDown, OSError, ssl.SSLError, ValueError) as exc:
                self._failed(f"cannot connect to {self.settings.host}:{self.settings.port}: {exc}")
                await self._sleep(delay)
                delay = min(delay * 2, self.settings.reconnect_max_delay)
                continue
            started = self._clock.monotonic()
            try:
                await self._serve(conn, incoming)
            except LinkDown as exc:
                self._failed(f"link lost: {exc}")
            except asyncio.CancelledError:
                # Stopping: say goodbye (retained offline state, then DISCONNECT: no last will).
                self.stopping = True
                try:
                    await asyncio.wait_for(conn.close(last_words=(state_topic(self.site_id),
                                                                  self._state(online=False))), 5)
                    log.info("uplink: offline state sent, disconnected")
                except asyncio.TimeoutError:
                    log.warning("uplink: no clean goodbye within 5 s; the broker sends the last will")
                raise
            except Exception:  # noqa: BLE001 - a bug here must not stop charging: log it loudly, connect again
                log.exception("uplink: unexpected error; the link is made again")
                self._failed("unexpected error (see the log)")
            finally:
                self.connection, self.connected_since = None, None
                if not self.stopping:
                    await conn.abort()
            if self._clock.monotonic() - started >= STABLE_AFTER:
                delay = self.settings.reconnect_min_delay
            await self._sleep(delay)
            delay = min(delay * 2, self.settings.reconnect_max_delay)

    def _failed(self, why: str) -> None:
        if why != self.last_error:
            log.warning("uplink: %s", why)
        self.last_error = why

    async def _sleep(self, delay: float) -> None:
        await asyncio.sleep(delay * (0.5 + self._rng.random() / 2))

    # -- one connection --------------------------------------------------------------------------------------

    async def _serve(self, conn: Connection, incoming: asyncio.Queue[Incoming]) -> None:
        if conn.receive_maximum and conn.receive_maximum < conn.settings.max_inflight:
            # paho cannot change its window on an open connection: the next one uses the broker's.
            self._receive_maximum = conn.receive_maximum
            log.warning("uplink: the broker takes %d messages in flight; reconnecting with that window",
                        conn.receive_maximum)
            raise LinkDown("window above the broker's receive maximum")
        await conn.subscribe(down_filter(self.site_id))
        backlog = await self.outbox.backlog()
        await conn.publish(state_topic(self.site_id), self._state(online=True, backlog=backlog), retain=True)
        self._published_backlog = backlog
        self.last_error = None
        self.connection, self.connected_since = conn, self._clock.now_iso()
        self.connections += 1
        log.info("uplink: connected to %s:%d (MQTT %s, session %s), backlog %s", self.settings.host,
                 self.settings.port, self.settings.protocol, "resumed" if conn.session_present else "new",
                 {k: v for k, v in backlog.items() if v} or "empty")
        tasks = [asyncio.create_task(self._send_stream(conn, stream), name=f"uplink-send-{stream}")
                 for stream in STREAMS]
        tasks.append(asyncio.create_task(self._receive(conn, incoming), name="uplink-receive"))
        tasks.append(asyncio.create_task(self._refresh_state(conn), name="uplink-state"))
        tasks.append(asyncio.create_task(self._resend_acks(conn), name="uplink-acks"))
        try:
            done, _ = await asyncio.wait([*tasks, conn.closed], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not conn.closed:
                    task.result()      # raises what ended it
            raise LinkDown(conn.closed.result() if conn.closed.done() else "a sender stopped")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _send_stream(self, conn: Connection, stream: str) -> None:
        retry = REFUSED_RETRY[0]
        while True:
            try:
                await self._send(conn, stream)
            except PublishRefused as exc:
                self.refused[stream] = str(exc)
                log.warning("uplink: the broker refused a %s batch: %s; trying again in %.0f s", stream, exc, retry)
                await asyncio.sleep(retry)
                retry = min(retry * 2, REFUSED_RETRY[1])

    async def _send(self, conn: Connection, stream: str) -> None:
        """From the oldest message still in the outbox on; returns only by raising.
        A batch goes when fewer than max_inflight await their PUBACK and the window of what
        awaits the cloud's receipt has room; it leaves the outbox on its receipt (_receipt)."""
        topic = up_topic(self.site_id, stream)
        window = self.windows[stream] = Window(
            limit=self.settings.max_inflight * UNCONFIRMED_BATCHES * MAX_BATCH_MESSAGES,
            first_wait=self.settings.receipt_timeout)
        after = 0
        inflight: deque[asyncio.Future[None]] = deque()
        while True:
            if window.take_restart():
                after = 0
            while len(inflight) < self.settings.max_inflight and window.has_room():
                batch = await self.outbox.next_batch(stream, after, window.batch_size(after, MAX_BATCH_MESSAGES))
                if batch is None:
                    break
                payload, first, after = batch
                future = conn.publish(topic, payload, need_subscriber=conn.v5)
                future.add_done_callback(_consume)
                future.add_done_callback(lambda _: self.outbox.wake(stream))
                inflight.append(future)
                window.sent(first, after, self._clock.monotonic())
            while inflight and inflight[0].done():
                inflight.popleft().result()          # PublishRefused or LinkDown end this round
                self.refused.pop(stream, None)
            now = self._clock.monotonic()
            if window.expired(now):
                log.warning("uplink: the cloud has not confirmed %s messages for %.0f s; sending again from the "
                            "oldest, one batch at a time until it answers", stream, window.wait / 2)
                after = 0
                continue
            left = window.time_left(now)
            await self.outbox.wait(stream, POLL if left is None else min(POLL, left + 0.01))
            await asyncio.sleep(LINGER)

    async def _receipt(self, payload: bytes, topic: str) -> None:
        """The cloud has stored a range of a stream: it leaves the outbox."""
        try:
            receipt = parse(topic, payload)
            if not isinstance(receipt, Receipt) or receipt.site != self.site_id:
                raise ContractError(f"{topic}: not a receipt for site {self.site_id!r}", "site_mismatch")
        except ContractError as exc:
            self.downlink.rejections[exc.reason] += 1
            log.warning("uplink: receipt rejected (%s): %s", exc.reason, exc)
            return
        if receipt.status == "rejected":
            await self._refused(receipt)
            return
        removed = await self.outbox.delivered(receipt.stream, receipt.first_seq, receipt.last_seq, receipt.last_id)
        if removed < 0:
            log.warning("uplink: a receipt for %s %d..%d names message %s, which is not ours at that seq; ignored",
                        receipt.stream, receipt.first_seq, receipt.last_seq, receipt.last_id)
            return
        self.receipts += 1
        window = self.windows.get(receipt.stream)
        if window is not None and (window.confirmed(receipt.first_seq, receipt.last_seq) or removed):
            window.progress()
        self.outbox.wake(receipt.stream)

    async def _refused(self, receipt: Receipt) -> None:
        """The cloud refused a batch. Several messages: they go again one by one, so the others are
        stored and the one at fault is refused alone. One message: it is set aside (kept, reported,
        not sent until released), and the stream goes on without it."""
        stream, first, last = receipt.stream, receipt.first_seq, receipt.last_seq
        why = receipt.error or "refused by the cloud"
        window = self.windows.get(stream)
        if first < last:
            log.warning("uplink: the cloud refused %s %d..%d (%s); sending them one by one", stream, first, last, why)
            if window is not None:
                window.refused(first, last)
            self.outbox.wake(stream)
            return
        held = await self.outbox.hold(stream, first, receipt.last_id, why)
        if held is None:
            return          # not ours, gone, or already set aside
        log.error("uplink: the cloud refused %s message %s (seq %d, %s) on its own: %s; it is kept and set aside "
                  "(edgectl uplink release sends it again)", stream, held["id"], first, held["type"], why)
        if stream != "alert":       # an alert about a refused alert could be refused in turn, and so on
            await self.outbox.add("alert", "alert.outbox_held", {**held, "stream": stream, "error": why})
        if window is not None:
            window.confirmed(first, last)
            window.progress()
        self.outbox.wake(stream)

    async def release(self, stream: str | None = None) -> int:
        """Messages set aside go again (e.g. after the cloud was fixed)."""
        released = await self.outbox.release(stream)
        for name, window in self.windows.items():
            if stream in (None, name):
                window.restart = True
        if released:
            log.info("uplink: %d message(s) set aside go again", released)
        return released

    async def _release_now_and_then(self) -> None:
        """A refusal may have been the cloud's passing fault: what is set aside goes again every hour."""
        while True:
            await asyncio.sleep(RELEASE_EVERY)
            await self.release()

    async def _refresh_state(self, conn: Connection) -> None:
        """The retained state carries the backlog; refresh it while it changes (e.g. while draining)."""
        while True:
            await asyncio.sleep(STATE_EVERY)
            backlog = await self.outbox.backlog()
            if backlog != self._published_backlog:
                await conn.publish(state_topic(self.site_id), self._state(online=True, backlog=backlog), retain=True)
                self._published_backlog = backlog

    # -- downlink -------------------------------------------------------------------------------------------

    async def _receive(self, conn: Connection, incoming: asyncio.Queue[Incoming]) -> None:
        while True:
            message = await incoming.get()
            try:
                await self._take(conn, message)
            except LinkDown:
                raise
            except Exception:  # noqa: BLE001 - one message that cannot be handled must not come back forever
                # Unacknowledged, the broker would send it again on every new connection, and it would
                # fail again: it is acknowledged and logged instead (a receipt is sent again by the
                # cloud when its batch goes again; a document or command the cloud sends again).
                log.exception("uplink: a message on %s could not be handled; acknowledged and left", message.topic)
                conn.ack(message)

    async def _take(self, conn: Connection, message: Incoming) -> None:
        """One message from the broker: a receipt, a command (in the background) or a document."""
        if message.topic == self._receipt_topic:
            await self._receipt(message.payload, message.topic)
            conn.ack(message)
            return
        if message.topic == self._acked_topic:
            self._ack_confirmed(message.payload, message.topic)
            conn.ack(message)
            return
        checked = await self.downlink.check(message.topic, message.payload)
        if isinstance(checked, Down) and checked.kind == "command":
            waiting = self._commands.setdefault(checked.id, [])
            waiting.append((conn, message))
            if len(waiting) == 1:       # a redelivery while it runs waits for the same answer
                task = asyncio.create_task(self._command(checked), name=f"uplink-command {checked.id}")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            return
        if isinstance(checked, Down):
            try:
                ack = await self.downlink.apply(checked)
            except Exception as exc:  # noqa: BLE001 - one bad message must not come back forever
                log.exception("uplink: %s %s could not be handled", checked.kind, checked.id)
                ack = await self._failed_ack(checked, exc)
        else:
            ack = checked
        await self._answer(conn, ack, [message])

    async def _command(self, down: Down) -> None:
        try:
            ack = await self.downlink.run_command(down)
        except Exception as exc:  # noqa: BLE001 - answered as failed rather than lost
            log.exception("uplink: command %s could not be handled", down.id)
            ack = await self._failed_ack(down, exc)
        finally:
            waiting = self._commands.pop(down.id, [])
        conn = self.connection
        if conn is None:
            return      # not acknowledged: the broker sends the command again, and gets the stored answer
        await self._answer(conn, ack, [m for c, m in waiting if c is conn])

    async def _failed_ack(self, down: Down, exc: Exception) -> Ack | None:
        """The 'failed' answer to a message that could not be handled; None (acknowledged without an
        answer) when even that cannot be recorded: it must not come back forever either."""
        try:
            return await self.downlink.failed(down, exc)
        except Exception:  # noqa: BLE001 - logged loudly; the message is acknowledged and left
            log.exception("uplink: %s %s: its failure could not be recorded either; acknowledged without an answer",
                          down.kind, down.id)
            return None

    async def _answer(self, conn: Connection, ack: Ack | None, messages: list[Incoming]) -> None:
        """Publish the ack, then acknowledge the downlink message(s) to the broker. An ack that does
        not get through leaves them unacknowledged, so they come again with the next connection."""
        if ack is not None:
            try:
                await conn.publish(ack_topic(self.site_id), encode(ack), need_subscriber=conn.v5)
            except (PublishRefused, LinkDown) as exc:
                log.warning("uplink: ack %s %s did not get through (%s); the broker sends the message again",
                            ack.kind, ack.id, exc)
                return
            self._await_confirmation(ack)
        for message in messages:
            conn.ack(message)

    # -- acks until the cloud has them ---------------------------------------------------------------------

    def _await_confirmation(self, ack: Ack) -> None:
        if not ack.id:
            return          # an answer to a message that could not be read: nothing for the cloud to confirm
        key = (ack.id, ack.status)
        self.unconfirmed_acks.pop(key, None)
        self.unconfirmed_acks[key] = PendingAck(ack, self._clock.monotonic() + ACK_RESEND[0])
        while len(self.unconfirmed_acks) > MAX_UNCONFIRMED_ACKS:
            oldest = next(iter(self.unconfirmed_acks))
            log.warning("uplink: more than %d acks unconfirmed; no longer sending ack %s again (the cloud sends "
                        "its push again until it has an answer)", MAX_UNCONFIRMED_ACKS, oldest[0])
            del self.unconfirmed_acks[oldest]
        self._acks_changed.set()

    def _ack_confirmed(self, payload: bytes, topic: str) -> None:
        try:
            receipt = parse(topic, payload)
            if not isinstance(receipt, AckReceipt) or receipt.site != self.site_id:
                raise ContractError(f"{topic}: not an ack receipt for site {self.site_id!r}", "site_mismatch")
        except ContractError as exc:
            self.downlink.rejections[exc.reason] += 1
            log.warning("uplink: ack receipt rejected (%s): %s", exc.reason, exc)
            return
        if self.unconfirmed_acks.pop((receipt.id, receipt.status), None) is not None and not receipt.known:
            log.info("uplink: the cloud does not know push %s (%s); its ack is not sent again", receipt.id,
                     receipt.kind)

    async def _resend_acks(self, conn: Connection) -> None:
        """Acks due (sent, and not confirmed within their back-off) go again, oldest first."""
        while True:
            now = self._clock.monotonic()
            due = [(key, p) for key, p in self.unconfirmed_acks.items() if p.due <= now]
            for key, pending in due:
                if self.unconfirmed_acks.get(key) is not pending:
                    continue        # confirmed meanwhile
                if pending.attempts >= ACK_ATTEMPTS:
                    del self.unconfirmed_acks[key]
                    log.warning("uplink: ack %s %s unconfirmed after %d sends; left to the cloud's resend of its push",
                                pending.ack.kind, pending.ack.id, pending.attempts)
                    continue
                try:
                    await conn.publish(ack_topic(self.site_id), encode(pending.ack), need_subscriber=conn.v5)
                except PublishRefused as exc:       # no cloud instance subscribed right now: the next try
                    log.info("uplink: ack %s %s not taken by the broker (%s)", pending.ack.kind, pending.ack.id, exc)
                pending.attempts += 1
                pending.due = self._clock.monotonic() + min(ACK_RESEND[0] * 2 ** (pending.attempts - 1), ACK_RESEND[1])
                self.acks_resent += 1
                log.info("uplink: ack %s %s sent again (send %d; not confirmed by the cloud yet)", pending.ack.kind,
                         pending.ack.id, pending.attempts)
            self._acks_changed.clear()
            left = [p.due for p in self.unconfirmed_acks.values()]
            wait = max(0.05, min(left) - self._clock.monotonic()) if left else None
            try:
                await asyncio.wait_for(self._acks_changed.wait(), wait)
            except asyncio.TimeoutError:
                pass

    # -- for the local API -----------------------------------------------------------------------------

    def _unconfirmed(self, stream: str) -> int:
        """Messages sent on this connection that await the cloud's receipt."""
        window = self.windows.get(stream)
        return window.messages if window is not None and self.connection is not None else 0

    async def status(self) -> dict[str, Any]:
        streams = await self._journal.read(Store.outbox_streams)
        recent = await self._journal.read(Store.downlink_log, 20)
        s = self.settings
        return {
            "enabled": True, "connected": self.connection is not None, "connected_since": self.connected_since,
            "broker": f"{s.host}:{s.port}", "protocol": s.protocol, "tls": s.use_tls,
            "client_id": s.client_username(self.site_id), "connections": self.connections,
            "last_error": self.last_error, "over_budget": self.outbox.over_budget,
            "disk_budget_bytes": self.outbox.budget_bytes,
            "streams": {row["stream"]: {**{k: row[k] for k in ("backlog", "backlog_bytes", "oldest_at", "last_seq",
                                                                 "delivered", "last_delivered_at", "dropped")},
                                        "refused": self.refused.get(row["stream"]),
                                        "unconfirmed": self._unconfirmed(row["stream"]), "held": row["held"]}
                        for row in streams},
            "held": await self._journal.read(Store.outbox_held),
            "receipts": self.receipts,
            "downlink": {"versions": self.downlink.versions(), "outcomes": dict(self.downlink.outcomes),
                         "rejected_by_reason": dict(self.downlink.rejections), "recent": recent},
        }

