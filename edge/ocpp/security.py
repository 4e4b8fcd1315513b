"""OCPP 1.6 security profile 1: HTTP Basic auth with a per-charger password.

Passwords are kept as scrypt hashes (stdlib hashlib, no extra dependency):
`scrypt$<log2 n>$<r>$<p>$<salt b64>$<hash b64>`. Checking a hash costs tens of
milliseconds on purpose; the verifier remembers passwords it has already
accepted (as a keyed digest, never the plain text) so 500 chargers reconnecting
after a network blip do not stall the edge.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import os
import secrets
from concurrent.futures import ThreadPoolExecutor

# OCPP 1.6 security whitepaper: the AuthorizationKey is at most 40 characters
# (20 bytes hex-encoded); chargers often have a field of exactly that size.
MAX_PASSWORD_LENGTH = 40
_LOG2_N, _R, _P = 14, 8, 1


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    if not password:
        raise ValueError("the password is empty")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValueError(f"OCPP allows at most {MAX_PASSWORD_LENGTH} characters, got {len(password)}")
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**_LOG2_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_LOG2_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def _parse(stored: str) -> tuple[int, int, int, bytes, bytes] | None:
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return None
    try:
        log2_n, r, p = (int(x) for x in parts[1:4])
        salt, digest = base64.b64decode(parts[4], validate=True), base64.b64decode(parts[5], validate=True)
    except (ValueError, binascii.Error):
        return None
    if not (1 <= log2_n <= 20 and 1 <= r <= 32 and 1 <= p <= 16 and salt and digest):
        return None
    return log2_n, r, p, salt, digest


def is_password_hash(value: str) -> bool:
    return _parse(value) is not None


def check_password(password: str, stored: str) -> bool:
    parsed = _parse(stored)
    if parsed is None or len(password) > MAX_PASSWORD_LENGTH:
        return False
    log2_n, r, p, salt, digest = parsed
    candidate = hashlib.scrypt(
        password.encode(), salt=salt, n=2**log2_n, r=r, p=p, dklen=len(digest), maxmem=2**26
    )
    return hmac.compare_digest(candidate, digest)


class PasswordVerifier:
    """check_password with a memory of recent successes, keyed per process.

    The scrypt check itself runs on a small worker pool (hashlib releases the
    GIL): on the event loop, 500 chargers reconnecting after a restart would
    stall every other charger for 50 ms each. One worker per core bounds the
    memory too (16 MiB per check)."""

    def __init__(self, workers: int | None = None) -> None:
        self._key = secrets.token_bytes(32)
        self._accepted: dict[tuple[str, str], bytes] = {}
        self._pool = ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1,
                                        thread_name_prefix="password-check")

    async def verify(self, charger_id: str, password: str, stored: str) -> bool:
        token = hmac.new(self._key, f"{stored}\0{password}".encode(), hashlib.sha256).digest()
        if hmac.compare_digest(self._accepted.get((charger_id, stored), b""), token):
            return True
        loop = asyncio.get_running_loop()
        if await loop.run_in_executor(self._pool, check_password, password, stored):
            self._accepted[(charger_id, stored)] = token
            return True
        return False

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def parse_basic_auth(header: str | None) -> tuple[str, str] | None:
    """'Basic base64(user:password)' -> (user, password); None if absent or malformed."""
    if not header:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None
