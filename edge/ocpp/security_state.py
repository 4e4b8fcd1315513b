"""How each charger was seen to connect, and whether its SecurityProfile may be changed.

The whitepaper's migration (use case A05) is a ChangeConfiguration(SecurityProfile) after which
the charger reconnects at the new profile. A charger that cannot (no wss:// URL, the site CA
not installed, no client certificate) is stranded unless it falls back, and many do not. So
the edge sends SecurityProfile N only once it has seen the charger connect at level N with the
right material: over wss:// with its password for 2, with a valid client certificate from the
site CA naming it for 3 (chargers pick TLS from the URL scheme, so an installer points the
charger at wss:// first, or installs its certificate first, and the edge then locks it in). The
level each charger reached is kept in the journal (charger_security), with its TLS and certificate.

Nothing here ever refuses a level the config allows: a charger keeps getting in at its old level
until the installer raises its security_profile in the config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge.journal import Store

LEVEL_WORDS = {0: "ws:// without a password", 1: "ws:// with HTTP Basic", 2: "wss:// with HTTP Basic",
               3: "wss:// with a client certificate"}


@dataclass(frozen=True)
class Seen:
    level: int                  # the highest level seen
    level_at: str
    last_level: int
    last_at: str
    tls_version: str | None = None
    cipher: str | None = None
    cert_subject: str | None = None
    cert_serial: str | None = None
    cert_not_after: str | None = None
    cert_sha256: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "level_means": LEVEL_WORDS.get(self.level)}


def profile_change_refusal(charger_id: str, target: int, seen: Seen | None, *, tls_served: bool,
                           configured: int) -> str | None:
    """Why ChangeConfiguration(SecurityProfile=target) must not be sent now, or None."""
    if max(target, 1) < configured:   # 1 covers 0 (no password): credentials.py checks that one
        return (f"{charger_id} is configured at security profile {configured}: at {target} it would connect "
                f"with {LEVEL_WORDS[target]} and be refused. Lower security_profile in the config first. "
                "Nothing was sent")
    if target < 2:
        return None
    if not tls_served:
        return (f"SecurityProfile {target} needs TLS ({LEVEL_WORDS[target]}) and this edge serves no wss:// "
                "(set [ocpp.tls], see docs/security.md): the charger would reconnect and find no one to talk to. "
                "Nothing was sent")
    if seen is None or seen.level < target:
        got = "has not connected since the edge keeps track" if seen is None else (
            f"was seen at most at level {seen.level} ({LEVEL_WORDS.get(seen.level)})")
        how = ("point it at the edge's wss:// URL with the site CA installed (InstallCertificate, "
               "CentralSystemRootCertificate)" if target == 2 else
               "give it a client certificate from the site CA (SignCertificate, or `edgectl ca charger-cert`) and "
               "let it connect with it")
        return (f"{charger_id} {got}; before it is told SecurityProfile {target} the edge must see it connect with "
                f"{LEVEL_WORDS[target]}, or it could be stranded: {how}. Nothing was sent")
    return None


# -- journal (on the journal's thread: the rows are edge/journal/security.py's) ----------

def record_connection(store: Store, charger_id: str, level: int, at: str, tls: dict[str, Any] | None) -> Seen:
    return Seen(**store.record_security_level(charger_id, level, at, tls))


def load_seen(store: Store) -> dict[str, Seen]:
    return {charger_id: Seen(**row) for charger_id, row in store.security_levels().items()}
