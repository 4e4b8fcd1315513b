"""wss:// for OCPP security profiles 2 and 3 (OCPP 1.6 security whitepaper, edition 3).

Profile 2 is TLS with the edge's server certificate, and the charger's HTTP Basic password
inside it; profile 3 is mutual TLS: the charger presents a client certificate signed by the
site CA whose subject commonName is its charge point id. The edge serves both on one TLS
port ([ocpp.tls] port), next to ws:// on [ocpp] port for profiles 0 and 1: a client
certificate is asked for but not required at the TLS layer, so profile 2 chargers come in
without one and the HTTP handshake decides per charger (`admission`).

What the whitepaper asks of the server, and how:
- TLS 1.2 or 1.3 only (minimum_version; TLS 1.1 and older fail the handshake);
- the TLS 1.2 cipher suites it lists, nothing else: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 (ECDSA server key, the default of `edgectl ca`),
  TLS_RSA_WITH_AES_128_GCM_SHA256 and TLS_RSA_WITH_AES_256_GCM_SHA384 (an RSA server key,
  `--rsa`). TLS 1.3's suites are OpenSSL's (all AEAD); Python cannot narrow them;
- a client certificate checked against the site CA, its dates, and its commonName.

A failed TLS handshake never reaches HTTP, so it has no charge point id: it is reported
with the peer's address and OpenSSL's reason (`HandshakeFailure`), and the OCPP server puts
it in the network log of the charger last seen at that address.

The certificate files are read again when they change (`ServerTls.check`, every
reload_every seconds, and `edgectl ca reload`): a renewed server certificate is served to
the next connection without a restart. The context is changed in place (load_cert_chain),
which OpenSSL applies to connections made after it; CAs are only ever added this way, so
removing a CA from the file takes a restart (docs/security.md).
"""

from __future__ import annotations

import hashlib
import logging
import os
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger(__name__)

# The whitepaper's TLS 1.2 suites, in OpenSSL's names (the first two need an ECDSA server key, the last two RSA).
WHITEPAPER_CIPHERS = ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
                      "AES128-GCM-SHA256", "AES256-GCM-SHA384")


@dataclass(frozen=True)
class PeerTls:
    """What the TLS layer established for one connection."""

    version: str
    cipher: str
    certificate: bytes | None       # the client certificate (DER), verified against the site CA, or None


@dataclass(frozen=True)
class Admission:
    refusal: str | None             # why the handshake is refused, or None
    level: int                      # the security profile this connection is at (when admitted)
    check_password: bool            # HTTP Basic decides (profiles 1 and 2)


@dataclass(frozen=True)
class HandshakeFailure:
    address: str
    reason: str


# -- pure decisions ---------------------------------------------------------------

def admission(charger_id: str, profile: int, tls: PeerTls | None, *, tls_port: int | None,
              cert_common_name: str | None = None, password_set: bool = True, floor: int = 0) -> Admission:
    """Whether a charger configured at `profile` may come in over this connection, and how it authenticates.

    `cert_common_name`: the verified client certificate's commonName (None: none presented). `floor`: the
    profile the edge moved the station to and saw it connect at (OCPP 2.0.1 A05, edge/ocpp/v201/security.py):
    from then on it is admitted as if configured there, so a connection at its old, lower profile is refused
    (TC_A_19 steps 10 and 11) whatever the config still says."""
    profile = max(profile, floor)
    if tls is None:
        if profile >= 2:
            where = f"wss:// on port {tls_port}" if tls_port else "wss://, which this edge does not serve yet"
            return Admission(f"security profile {profile}: plain ws:// is refused, connect over {where}", 0, False)
        return Admission(None, 1 if password_set else 0, True)
    if tls.certificate is not None:
        if cert_common_name != charger_id:
            return Admission(f"TLS client certificate is for commonName {str(cert_common_name)[:48]!r}, "
                             f"not {charger_id!r}", 0, False)
        # A valid certificate from the site CA naming this charger authenticates it, at any profile.
        return Admission(None, 3, False)
    if profile >= 3:
        return Admission("security profile 3: no TLS client certificate presented", 0, False)
    if profile == 2 and not password_set:
        return Admission(f"security profile 2 asks for HTTP Basic and no password is set for {charger_id} "
                         f"(password_hash, or `edgectl chargers password {charger_id} --rotate`)", 0, False)
    return Admission(None, 2 if password_set else 0, True)


def failure_reason(error: ssl.SSLError) -> str:
    """OpenSSL's reason, in the words an installer looks for."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"client certificate refused: {error.verify_message}"
    reason = (error.reason or str(error)).upper()
    known = {
        "UNSUPPORTED_PROTOCOL": "the charger offered only TLS older than 1.2",
        "WRONG_VERSION_NUMBER": "not TLS (plain ws:// or HTTP sent to the wss:// port?)",
        "NO_SHARED_CIPHER": "no cipher suite in common (the edge offers the whitepaper's: see docs/security.md)",
        "TLSV1_ALERT_UNKNOWN_CA": "the charger does not trust the edge's certificate (install the site CA on it)",
        "SSLV3_ALERT_BAD_CERTIFICATE": "the charger refused the edge's certificate (its name or dates)",
        "SSLV3_ALERT_CERTIFICATE_EXPIRED": "the charger says the edge's certificate expired",
        "HTTP_REQUEST": "plain HTTP sent to the wss:// port",
    }
    return known.get(reason, f"TLS handshake failed: {(error.reason or str(error))[:120]}")


def peer_tls(ssl_object: Any) -> PeerTls | None:
    if ssl_object is None:
        return None
    cipher = ssl_object.cipher()
    return PeerTls(ssl_object.version() or "?", cipher[0] if cipher else "?",
                   ssl_object.getpeercert(binary_form=True))


# -- the context and its files ---------------------------------------------------------

def observed(report: Callable[[HandshakeFailure], None]) -> type[ssl.SSLObject]:
    class ObservedSSLObject(ssl.SSLObject):
        """Reports a handshake that fails: asyncio drops the error silently (logged only in debug mode)."""

        def do_handshake(self) -> None:
            try:
                super().do_handshake()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                raise
            except ssl.SSLError as error:
                report(HandshakeFailure(_peer_address(), failure_reason(error)))
                raise
    return ObservedSSLObject


def _peer_address() -> str:
    """The address of the connection whose handshake this is. The SSL object has no way back to its
    transport, and asyncio's SSLProtocol calls do_handshake from its own method: its `_transport` is
    the socket's. Anything unexpected gives '?' (the failure is still reported)."""
    try:
        caller = sys._getframe(2).f_locals.get("self")
        transport = getattr(caller, "_transport", None)
        peer = transport.get_extra_info("peername") if transport is not None else None
        return str(peer[0]) if peer else "?"
    except Exception:  # noqa: BLE001 - only the address is lost, never the report
        return "?"


def https_context(certificate: Path, key: Path) -> ssl.SSLContext:
    """The whitepaper's TLS with the edge's server certificate, asking nothing of the client: what chargers
    fetch and send over HTTPS (uploads, firmware), where the token in the URL is the credential."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.set_ciphers(":".join(WHITEPAPER_CIPHERS))
    ctx.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_COMPRESSION
    ctx.load_cert_chain(certificate, key)
    return ctx


def server_context(certificate: Path, key: Path, ca: Path,
                   report: Callable[[HandshakeFailure], None] | None = None) -> ssl.SSLContext:
    ctx = https_context(certificate, key)
    # Asked for, checked when given, not required here: profile 2 chargers have none (admission decides).
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.load_verify_locations(cafile=str(ca))
    if report is not None:
        ctx.sslobject_class = observed(report)
    return ctx


def _stamp(paths: tuple[Path, ...]) -> tuple:
    """What changes when a file is replaced or rewritten: its content's digest (mtimes can stand still)."""
    out = []
    for path in paths:
        try:
            out.append(hashlib.sha256(path.read_bytes()).hexdigest())
        except OSError as exc:
            out.append(f"unreadable: {exc.strerror}")
    return tuple(out)


class ServerTls:
    """The TLS context of the wss:// listener and the files it came from."""

    def __init__(self, certificate: Path, key: Path, ca: Path,
                 report: Callable[[HandshakeFailure], None] | None = None):
        self.paths = (certificate, key, ca)
        self.context = server_context(certificate, key, ca, report)
        self.https_context = https_context(certificate, key)   # chargers' uploads and downloads
        self._stamp = _stamp(self.paths)
        self.reloads = 0
        self.last_error: str | None = None

    def check(self) -> bool:
        """Reads the files again if they changed; True when the new ones are now served. A broken new file
        (half written, key and certificate not matching) is logged and the old ones are kept."""
        stamp = _stamp(self.paths)
        if stamp == self._stamp:
            return False
        certificate, key, ca = self.paths
        try:
            self.context.load_cert_chain(certificate, key)
            self.context.load_verify_locations(cafile=str(ca))
            self.https_context.load_cert_chain(certificate, key)
        except (OSError, ssl.SSLError) as exc:
            message = f"cannot load the new TLS files ({exc}); still serving the previous certificate"
            if message != self.last_error:
                log.error("%s: %s", os.fspath(certificate), message)
            self.last_error = message
            return False
        self._stamp, self.last_error = stamp, None
        self.reloads += 1
        log.info("TLS certificate reloaded from %s (%d reloads)", certificate, self.reloads)
        return True


def from_config(section: Any, resolve: Callable[[str], Path]) -> dict[str, Any]:
    """The OCPP server's TLS arguments from [ocpp.tls] (None: ws:// only). Files that cannot be used stop
    the start with one line naming them (StartupError), as a port that cannot be bound does."""
    if section is None:
        return {}
    from edge.lifecycle import StartupError

    paths = [resolve(p) for p in (section.certificate, section.key, section.ca)]
    try:
        server_tls = ServerTls(*paths)
    except (OSError, ssl.SSLError) as exc:
        raise StartupError(f"cannot use the TLS files of [ocpp.tls] ({', '.join(map(str, paths))}): {exc}; "
                           "make them with `edgectl ca init` and `edgectl ca server-cert`") from None
    return {"tls": server_tls, "tls_port": section.port, "tls_reload_every": section.reload_every}


def https_base_url(host_header: str | None, https_port: int) -> str | None:
    """Where a charger that reached the edge as `host_header` (its WebSocket request's Host) finds the HTTPS
    port: the same name, so the same server certificate matches it. None: no usable Host."""
    if not host_header:
        return None
    from urllib.parse import urlsplit

    try:
        host = urlsplit("//" + host_header.strip()).hostname
    except ValueError:
        return None
    if not host:
        return None
    return f"https://{f'[{host}]' if ':' in host else host}:{https_port}"
