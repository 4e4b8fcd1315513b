"""The edge's OCPP-J endpoint: ws://HOST:PORT/ocpp/{chargePointId}, whatever the OCPP version.

The handshake does the checks that must happen before a socket opens: a
charge point id in the path, a subprotocol the edge serves (edge/ocpp/protocols.py:
`ocpp1.6` so far; 400 with the reason when the client offers none or only others), the charger's security profile
(wss:// for 2 and 3 on [ocpp.tls] port, a client certificate naming it for 3:
see tls.py; 403 with the reason), and profiles 1 and 2 (HTTP
Basic, 401 on a wrong or missing password, with a growing back-off per id and
address: see auth_backoff.py; the keys the edge set itself win over the
config's: see credentials.py). Every refusal is in the charger's network log
with its reason (refusals.py). After that each charger gets the session of the
version it chose (edge/ocpp/v16/session.py for 1.6), kept in `sessions`, the one
registry of connected stations;
a broken or flooding charger loses its own connection and no one else notices.
A stranger (an id neither configured nor adopted) costs a small, bounded
footprint: see strangers.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections import OrderedDict, deque
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from edge.config import CHARGER_ID
from edge.events import Event
from edge.journal import Store
from edge.ocpp import strangers, tls as tls_layer
from edge.ocpp.auth_backoff import AuthBackoff
from edge.ocpp.communication_log import CommunicationLog
from edge.ocpp.credentials import Credentials, Key, KeySet, login_form
from edge.ocpp.presence import PresenceMonitor
from edge.ocpp.protocols import OCPP16, OCPP201, SESSIONS
from edge.ocpp.rate import TokenBucket
from edge.ocpp.refusals import Refusals, subprotocol_refusal
from edge.ocpp.security import PasswordVerifier, parse_basic_auth
from edge.ocpp.security_state import Seen, load_seen, profile_change_refusal, record_connection
from edge.ocpp.site import Site

log = logging.getLogger(__name__)

# How often strangers' logs are trimmed (when strangers came by), and all logs swept by age.
TIDY_EVERY = 10.0
SWEEP_EVERY = 3600.0


def charger_id_from_path(path: str) -> str | None:
    """'/ocpp/CP-1' or '/CP-1' -> 'CP-1'; anything else -> None."""
    parts = [unquote(p) for p in urlsplit(path).path.split("/") if p]
    if len(parts) == 2 and parts[0] == "ocpp":
        candidate = parts[1]
    elif len(parts) == 1 and parts[0] != "ocpp":
        candidate = parts[0]
    else:
        return None
    return candidate if CHARGER_ID.match(candidate) else None


class Flooding(Exception):
    pass


class _LoggedConnection:
    """What the ocpp library reads from and writes to: the WebSocket, with
    every frame logged, presence tracked and the flood guard applied."""

    def __init__(self, ws: ServerConnection, charger_id: str, server: "OcppServer"):
        self._ws = ws
        self._id = charger_id
        self._server = server
        self._bucket = TokenBucket(server.max_rate, server.burst, server.site.clock.monotonic())
        self._stranger_frames = 0
        self._rejection_noted = False

    async def recv(self) -> str:
        frame = await self._ws.recv()
        known = self._server.site.directory.is_known(self._id)
        self._log(known, "in", frame)
        if known:
            # Strangers have no presence: no status, no event, nothing for the cloud.
            self._server.presence.frame(self._id)
        if not self._bucket.allow(self._server.site.clock.monotonic()):
            raise Flooding(f"more than {self._server.max_rate:g} frames/s (burst {self._server.burst})")
        return frame

    async def send(self, frame: str) -> None:
        known = self._server.site.directory.is_known(self._id)
        self._log(known, "out", frame)
        await self._ws.send(frame)
        if not known and not self._rejection_noted:
            session = self._server.sessions.get(self._id)
            if session is not None and session.registration == "Rejected":
                # The answer just sent refused its BootNotification: an id this site does not know.
                self._rejection_noted = True
                self._server.refusals.refused(self._id, "unknown charge point id: BootNotification answered "
                                                        'Rejected (unknown_chargers = "reject")', known=False)

    def _log(self, known: bool, direction: str, frame: str | bytes) -> None:
        if known:
            self._server.communication_log.record(self._id, direction, frame)
            return
        # A stranger's first few frames, cut short, are enough to see what it is.
        self._stranger_frames += 1
        if self._stranger_frames <= strangers.STRANGER_LOG_ROWS:
            self._server.communication_log.record(self._id, direction, frame,
                                                  max_chars=strangers.STRANGER_FRAME_CHARS)


class OcppServer:
    def __init__(self, site: Site, *, host: str, port: int, communication_log: CommunicationLog,
                 presence: PresenceMonitor, max_frame_bytes: int, max_messages_per_second: float,
                 message_burst: int, response_timeout: float, tls: "tls_layer.ServerTls | None" = None,
                 tls_port: int = 0, tls_reload_every: float = 30.0):
        self.site = site
        self.host, self.port = host, port
        self.communication_log = communication_log
        self.presence = presence
        self.max_frame_bytes = max_frame_bytes
        self.max_rate, self.burst = max_messages_per_second, message_burst
        self.response_timeout = response_timeout
        self.sessions: dict[str, Any] = {}     # charger id -> its live session, of whichever version
        self._sockets: dict[str, ServerConnection] = {}
        self._verifier = PasswordVerifier()
        self.backoff = AuthBackoff()
        self.auth_refused = 0   # attempts refused by the back-off, without a hash check
        self.recent_strangers = strangers.RecentStrangers()
        self.refusals = Refusals(presence, site.clock, self.recent_strangers)
        self.credentials = Credentials(site, connected=lambda charger_id: charger_id in self.sessions)
        self._strangers_open = 0
        self.strangers_refused = 0
        self._stranger_arrivals = TokenBucket(strangers.STRANGER_CONNECTS_PER_SECOND,
                                              strangers.STRANGER_CONNECT_BURST, site.clock.monotonic())
        self._server: Server | None = None
        self._tls_server: Server | None = None
        self.tls, self.tls_port, self.tls_reload_every = tls, tls_port, tls_reload_every
        if tls is not None:
            tls.context.sslobject_class = tls_layer.observed(self._tls_failed)
        # What the handshake established for a connection, until the charger is served (level, TLS details).
        self._admitted: weakref.WeakKeyDictionary[ServerConnection, tuple[int, dict | None]] = \
            weakref.WeakKeyDictionary()
        self.seen: dict[str, Seen] = {}
        # Which charger came from an address last: a failed TLS handshake has no charge point id.
        self._address_ids: OrderedDict[str, str] = OrderedDict()
        self.tls_failures: deque[dict] = deque(maxlen=100)
        self.credentials.upgrade_check = self.profile_change_refusal
        self.ready = asyncio.Event()

    @property
    def bound_port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    @property
    def bound_tls_port(self) -> int | None:
        return self._tls_server.sockets[0].getsockname()[1] if self._tls_server is not None else None

    def reached_as(self, charger_id: str) -> tuple[str | None, bool] | None:
        """How a connected charger reached the edge: its request's Host header and whether over TLS (the
        HTTPS URLs it is handed use that name: edge/web/api/security_files.py). None: not connected."""
        ws = self._sockets.get(charger_id)
        if ws is None or ws.request is None:
            return None
        return ws.request.headers.get("Host"), ws.transport.get_extra_info("ssl_object") is not None

    def profile_change_refusal(self, charger_id: str, target: int) -> str | None:
        """The guard before ChangeConfiguration(SecurityProfile) (security_state.py)."""
        configured = self.site.directory.configured(charger_id)
        return profile_change_refusal(charger_id, target, self.seen.get(charger_id), tls_served=self.tls is not None,
                                      configured=configured.security_profile if configured else 1)

    def _serve(self, port: int, ssl: object | None) -> "contextlib.AbstractAsyncContextManager[Server]":
        return serve(
            self._serve_charger, self.host, port, ssl=ssl,
            subprotocols=list(SESSIONS),
            process_request=self._check_request,
            max_size=self.max_frame_bytes,
            # No permessage-deflate: on a LAN it saves little, and its zlib state
            # per connection was most of what a stranger's connection cost.
            compression=None,
            # websockets' own keepalive finds dead TCP connections (a charger
            # that lost power) long before OCPP's heartbeat would.
            ping_interval=30, ping_timeout=30,
            server_header="sitecontroller-edge",
        )

    async def run(self) -> None:
        await self.credentials.load()
        self.seen = await self.site.journal.read(load_seen)
        async with contextlib.AsyncExitStack() as stack:
            self._server = await stack.enter_async_context(self._serve(self.port, None))
            if self.tls is not None:
                self._tls_server = await stack.enter_async_context(self._serve(self.tls_port, self.tls.context))
            log.info("ocpp listening host=%s port=%s tls_port=%s", self.host, self.bound_port, self.bound_tls_port)
            self.ready.set()
            tidying = asyncio.create_task(self._tidy_forever())
            reloading = asyncio.create_task(self._reload_forever()) if self.tls is not None else None
            try:
                await tidying
            finally:
                tidying.cancel()
                if reloading is not None:
                    reloading.cancel()
                for ws in list(self._sockets.values()):
                    await ws.close(1001, "central system shutting down")
                self._verifier.close()

    async def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        charger_id = charger_id_from_path(request.path)
        if charger_id is None:
            return connection.respond(HTTPStatus.NOT_FOUND,
                                      "expected ws://host:port/ocpp/{chargePointId} (or /{chargePointId})\n")
        known = self.site.directory.is_known(charger_id)
        if not known:
            busy = self._strangers_busy()
            if busy:
                self.strangers_refused += 1
                level = logging.WARNING if self.strangers_refused % 1000 == 1 else logging.DEBUG
                log.log(level, "refused unknown charger=%s: %s (%d refused so far)", charger_id, busy,
                        self.strangers_refused)
                self.refusals.refused(charger_id, f"unknown charger turned away: {busy}", known=False)
                response = connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, f"{busy}; retry later\n")
                response.headers["Retry-After"] = "60"
                return response
        # Checked here rather than left to websockets, whose own 400 says nothing and leaves no trace.
        offered = offered_subprotocols(request)
        why = subprotocol_refusal(offered, list(SESSIONS))
        if why is not None:
            self.refusals.refused(charger_id, why, known=known)
            return connection.respond(HTTPStatus.BAD_REQUEST, f"{why}\n")
        keys = self.credentials.keys_for(charger_id)
        configured = self.site.directory.configured(charger_id)
        peer = tls_layer.peer_tls(connection.transport.get_extra_info("ssl_object"))
        cert = _certificate_facts(peer.certificate) if peer is not None and peer.certificate else None
        admitted = tls_layer.admission(charger_id, configured.security_profile if configured else 1, peer,
                                       tls_port=self.bound_tls_port,
                                       cert_common_name=cert["common_name"] if cert else None,
                                       password_set=not keys.open or bool(keys.new),
                                       floor=_no_lower_than(self.seen.get(charger_id), offered))
        if admitted.refusal is not None:
            self.refusals.refused(charger_id, admitted.refusal, known=known)
            return connection.respond(HTTPStatus.FORBIDDEN, f"{admitted.refusal}\n")
        details = None if peer is None else {"version": peer.version, "cipher": peer.cipher, **(cert or {})}
        if admitted.check_password and not (keys.open and not keys.new):
            refused = await self._check_password(connection, request, charger_id, keys)
            if refused is not None:
                return refused
        self._admitted[connection] = (admitted.level, details)
        return None

    def _strangers_busy(self) -> str | None:
        """Why one more unknown charger cannot come in now, if it cannot."""
        if self._strangers_open >= strangers.STRANGER_CONNECTIONS:
            return f"{self._strangers_open} unknown chargers connected already"
        if not self._stranger_arrivals.allow(self.site.clock.monotonic()):
            return f"more than {strangers.STRANGER_CONNECTS_PER_SECOND:g} unknown chargers a second"
        return None

    async def _check_password(self, connection: ServerConnection, request: Request, charger_id: str,
                              keys: KeySet) -> Response | None:
        address = connection.remote_address[0] if connection.remote_address else "?"
        clock = self.site.clock
        wait = self.backoff.barred_for(charger_id, address, clock.monotonic())
        credentials = parse_basic_auth(request.headers.get("Authorization"))
        if keys.open:
            # No password asked for yet, but a new key is on its way: the first login with it makes it the
            # charger's key. Anything else still gets in, as before the rotation.
            if credentials is not None and credentials[0] == charger_id and wait <= 0:
                self.backoff.attempt(charger_id, address, clock.monotonic())
                matched = await self._match(charger_id, credentials[1], keys.new)
                if matched is not None:
                    self.backoff.succeeded(charger_id, address)
                    await self.credentials.used(charger_id, matched.hash)
            return None
        if wait > 0:
            # Refused before the hash check, the right password too: that is the point.
            self.auth_refused += 1
            log.debug("auth barred charger=%s remote=%s for %.1f s", charger_id, address, wait)
            self.refusals.refused(charger_id, "auth: barred after too many failed attempts", known=True)
            return _unauthorized(connection, f"too many failed attempts; retry in {wait:.0f} s\n", wait)
        self.backoff.attempt(charger_id, address, clock.monotonic())
        if credentials is not None and credentials[0] == charger_id:
            matched = await self._match(charger_id, credentials[1], (keys.current, *keys.new))
            if matched is not None:
                self.backoff.succeeded(charger_id, address)
                if matched.role == "new":
                    await self.credentials.used(charger_id, matched.hash)
                return None
        why = "missing" if credentials is None else "wrong"
        wait = self.backoff.barred_for(charger_id, address, clock.monotonic())
        barred = f"; barred for {wait:.0f} s" if wait > 0 else ""
        log.warning("auth rejected charger=%s credentials=%s remote=%s failures=%d%s", charger_id, why,
                    address, self.backoff.failures(charger_id), barred)
        self.presence.note(charger_id, "auth-rejected", f"{why} HTTP Basic credentials from {address}{barred}")
        return _unauthorized(connection, "charge point id or password is wrong\n", wait)

    async def _match(self, charger_id: str, password: str, keys: tuple[Key | None, ...]) -> Key | None:
        """The key these credentials are, if any (the current one is tried first: the common case)."""
        for key in keys:
            if key is not None and key.hash and await self._verifier.verify(
                    charger_id, login_form(password, key.origin), key.hash):
                return key
        return None

    async def _serve_charger(self, ws: ServerConnection) -> None:
        charger_id = charger_id_from_path(ws.request.path)
        assert charger_id is not None  # _check_request let it through
        previous = self._sockets.get(charger_id)
        if previous is not None:
            # A charger that reconnects before its old socket timed out: the new
            # connection is the real one.
            await previous.close(1000, "replaced by a new connection")
        session = SESSIONS[ws.subprotocol](charger_id, _LoggedConnection(ws, charger_id, self), self.site,
                                           self.response_timeout)
        self.sessions[charger_id] = session
        self._sockets[charger_id] = ws
        at = self.site.clock.now_iso()
        known = self.site.directory.is_known(charger_id)
        level, tls_details = self._admitted.pop(ws, (0, None))
        address = ws.remote_address[0] if ws.remote_address else "?"
        if known:
            await self.site.journal.write(Store.ensure_charger, charger_id, at)
            self.seen[charger_id] = await self.site.journal.write(record_connection, charger_id, level, at,
                                                                  tls_details)
            self._address_ids[address] = charger_id
            self._address_ids.move_to_end(address)
            while len(self._address_ids) > 4096:
                self._address_ids.popitem(last=False)
            self.presence.frame(charger_id)
            self.site.bus.publish(Event("charger.connected", charger_id, at))
        else:
            self._strangers_open += 1
            self.recent_strangers.seen(charger_id)
        over = f" over {tls_details['version']} (security profile {level})" if tls_details else ""
        self.presence.note(charger_id, "connected", f"from {address}{over}" + ("" if known else " (unknown charger)"))
        log.info("connected charger=%s remote=%s%s", charger_id, ws.remote_address, "" if known else " unknown")
        reason = "closed"
        try:
            await session.start()
        except ConnectionClosed as closed:
            reason = f"closed code={closed.rcvd.code if closed.rcvd else 'none'}"
            if closed.sent and closed.sent.code == 1009:
                reason = f"frame larger than {self.max_frame_bytes} bytes"
        except Flooding as flood:
            reason = f"flooding: {flood}"
            log.warning("closing charger=%s: %s", charger_id, flood)
            closing = asyncio.create_task(ws.close(1008, "too many messages"))
            # Keep reading (and discarding) what the flood left queued: the
            # client's close frame sits behind it, and websockets stops reading
            # the socket while its queue is full.
            with contextlib.suppress(ConnectionClosed):
                async for _ in ws:
                    pass
            await closing
        finally:
            if self.sessions.get(charger_id) is session:
                del self.sessions[charger_id]
                del self._sockets[charger_id]
            if not known:
                self._strangers_open -= 1
            self.presence.note(charger_id, "disconnected", reason)
            if known or self.site.directory.is_known(charger_id):   # adopted while connected
                self.site.bus.publish(Event("charger.disconnected", charger_id, self.site.clock.now_iso(),
                                            {"reason": reason}))
            log.info("disconnected charger=%s reason=%s", charger_id, reason)

    # -- housekeeping ---------------------------------------------------------

    async def tidy(self, *, sweep: bool = False) -> None:
        """Trims the logs of strangers seen lately, drops those of strangers
        pushed out; with `sweep`, also forgets old strangers and prunes every log by age and count."""
        touched, evicted = self.recent_strangers.take()
        if touched or evicted:
            await self.site.journal.write(strangers.trim_strangers, touched, evicted)
        if sweep:
            await self.site.journal.write(strangers.sweep, self.site.directory.ids(), self.site.clock.now_iso())

    def _tls_failed(self, failure: "tls_layer.HandshakeFailure") -> None:
        """A TLS handshake failed (wrong or expired certificate, TLS 1.1, plain ws:// on the wss:// port...):
        noted in the network log of the charger last seen at that address, and kept for `edgectl`."""
        charger_id = self._address_ids.get(failure.address)
        self.tls_failures.append({"at": self.site.clock.now_iso(), "address": failure.address,
                                  "reason": failure.reason, "charger_id": charger_id})
        if charger_id is not None:
            self.refusals.refused(charger_id, f"TLS from {failure.address}: {failure.reason}", known=True)
        else:
            log.warning("TLS handshake refused remote=%s: %s", failure.address, failure.reason)

    async def _reload_forever(self) -> None:
        assert self.tls is not None
        while True:
            await asyncio.sleep(self.tls_reload_every)
            self.tls.check()

    async def _tidy_forever(self) -> None:
        since_sweep = SWEEP_EVERY   # sweep once at start: what an earlier run left
        while True:
            sweep = since_sweep >= SWEEP_EVERY
            try:
                # Notes and frames reach the journal within a second or five; trim after they did.
                await self.communication_log.flush()
                await self.presence.flush()
                await self.tidy(sweep=sweep)
            except Exception:  # noqa: BLE001 - housekeeping is its own failure domain: logged, retried
                log.exception("pruning the charger logs failed; the OCPP server carries on, next try in %g s",
                              TIDY_EVERY)
            if sweep:
                since_sweep = 0.0
            await asyncio.sleep(TIDY_EVERY)
            since_sweep += TIDY_EVERY


def _no_lower_than(seen: Seen | None, offered: list[str]) -> int:
    """The lowest security profile a station may come in at whatever the config says: a 2.0.1 station once
    seen over TLS (profile 2 or 3) is never let in below it again (A05: a security profile only goes up; TC_A_19
    steps 10-11 refuse the old way in without the operator raising the config). A station that may be served
    in 1.6 (it offers 1.6) keeps the config's profile: 1.6 has no such rule."""
    if seen is None or OCPP16 in offered or OCPP201 not in offered or seen.level < 2:
        return 0
    return seen.level


def offered_subprotocols(request: Request) -> list[str]:
    """The Sec-WebSocket-Protocol values a client offers, in its order (the header may repeat)."""
    return [p.strip() for header in request.headers.get_all("Sec-WebSocket-Protocol")
            for p in header.split(",") if p.strip()]


def _certificate_facts(der: bytes) -> dict:
    """A verified client certificate, for the admission and the journal."""
    from cryptography import x509

    from edge.ocpp.certificates import common_name, fingerprint

    cert = x509.load_der_x509_certificate(der)
    return {"common_name": common_name(cert), "subject": cert.subject.rfc4514_string()[:200],
            "serial": format(cert.serial_number, "x"), "not_after": cert.not_valid_after_utc.isoformat(),
            "sha256": fingerprint(cert)}


def _unauthorized(connection: ServerConnection, text: str, retry_after: float) -> Response:
    response = connection.respond(HTTPStatus.UNAUTHORIZED, text)
    response.headers["WWW-Authenticate"] = 'Basic realm="ocpp", charset="UTF-8"'
    if retry_after > 0:
        response.headers["Retry-After"] = str(max(1, round(retry_after)))
    return response
