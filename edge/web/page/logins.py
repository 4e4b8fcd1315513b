"""Who is logged in to the web page: the installer's password, sessions and CSRF tokens.

- The password is kept only as a scrypt hash (edge.ocpp.security): `edgectl web password` writes one to
  the state directory (PASSWORD_FILE, read at each login so a new one works without a restart), else the
  config's [web] installer_password_hash.
- A login makes a session: a random id in an HttpOnly, SameSite=Strict cookie (Secure over TLS), and a
  synchroniser CSRF token the page sends back in X-CSRF-Token on every state-changing request. Sessions live
  in memory: a restart logs everyone out, which is the safe direction.
- Failed logins back off per address and for the installer account as a whole, as failed charger
  credentials do (edge.ocpp.auth_backoff): after a few failures every attempt waits, the right one too.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from edge.ocpp.auth_backoff import AuthBackoff
from edge.ocpp.security import check_password, is_password_hash

PASSWORD_FILE = "web-password"
COOKIE = "edge_session"
CSRF_HEADER = "X-CSRF-Token"
ACCOUNT = "installer"
MAX_SESSIONS = 64


@dataclass
class Login:
    csrf: str
    expires: float      # monotonic seconds


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def write_password_hash(path: Path, stored: str) -> None:
    """Keep the installer's password hash, readable by the edge's user only (replaced atomically)."""
    if not is_password_hash(stored):
        raise ValueError("not a password hash")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(stored + "\n")
    os.replace(tmp, path)


class Logins:
    def __init__(self, *, password_file: Path, config_hash: str | None, session_seconds: float,
                 read_only_without_login: bool, loopback: bool):
        self._file, self._config_hash = password_file, config_hash
        self._ttl = session_seconds
        self._sessions: dict[str, Login] = {}
        self.backoff = AuthBackoff()
        self.loopback = loopback
        self._read_only = read_only_without_login

    def password_hash(self) -> str | None:
        try:
            stored = self._file.read_text().strip()
        except (FileNotFoundError, UnicodeDecodeError):
            stored = ""
        if stored and is_password_hash(stored):
            return stored
        return self._config_hash

    @property
    def read_only(self) -> bool:
        """Viewing without a login: only when the config says so, and never off loopback without a password."""
        return self._read_only and (self.loopback or self.password_hash() is not None)

    def barred_for(self, address: str) -> float:
        return self.backoff.barred_for(ACCOUNT, address, time.monotonic())

    def check(self, password: str, address: str) -> bool:
        """The hash check (tens of ms: call it off the event loop); counted as a failure until it succeeds."""
        stored = self.password_hash()
        self.backoff.attempt(ACCOUNT, address, time.monotonic())
        if stored is None or not password or not check_password(password, stored):
            return False
        self.backoff.succeeded(ACCOUNT, address)
        return True

    def open(self) -> tuple[str, Login]:
        now = time.monotonic()
        self._sessions = {k: v for k, v in self._sessions.items() if v.expires > now}
        while len(self._sessions) >= MAX_SESSIONS:     # the oldest goes first
            self._sessions.pop(next(iter(self._sessions)))
        session_id = secrets.token_urlsafe(32)
        login = self._sessions[session_id] = Login(csrf=secrets.token_urlsafe(32), expires=now + self._ttl)
        return session_id, login

    def get(self, session_id: str | None) -> Login | None:
        login = self._sessions.get(session_id or "")
        if login is None or login.expires <= time.monotonic():
            return None
        return login

    def close(self, session_id: str | None) -> None:
        self._sessions.pop(session_id or "", None)

    @staticmethod
    def csrf_ok(login: Login, sent: str | None) -> bool:
        return bool(sent) and hmac.compare_digest(login.csrf.encode(), (sent or "").encode())


LOGINS_KEY = web.AppKey("logins", Logins)
