"""API tokens: random, shown once, stored only as a hash.

A token has 256 bits from `secrets`, so a plain SHA-256 is enough to store it
(a slow password hash guards guessable secrets; nothing here is guessable)
and lets a request be checked with one indexed lookup.
"""

from __future__ import annotations

import hashlib
import secrets

PREFIX = "sct_"
SHOWN = 12          # characters kept in clear to tell tokens apart in listings


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_prefix(token: str) -> str:
    return token[:SHOWN]
