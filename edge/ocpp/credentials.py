"""The edge owns its chargers' keys (OCPP 1.6 security profile 1: HTTP Basic).

`edgectl chargers password CP-1 --rotate` makes a strong key, sends it with
ChangeConfiguration(AuthorizationKey), and keeps its scrypt hash in the
journal: from then on the journal's keys, not the config's password_hash,
let the charger in. Nobody, the operator included, ever sees the key.

Key format (OCPP 1.6 Security Whitepaper, A00.FR.205): the AuthorizationKey
is 16 to 20 bytes, sent in ChangeConfiguration as up to 40 hex digits; the
charger presents the bytes themselves as its HTTP Basic password. The edge
makes 20 random letters and digits (about 119 bits), so the bytes are also a
printable password, and sends their 40 hex digits. Some chargers present the
hex digits as they were given instead of the bytes; for a rotated key both
forms are the same key. A 2.0.1 station gets the key itself (20 letters and
digits: BasicAuthPassword's 16 to 40 characters) with SetVariables
SecurityCtrlr.BasicAuthPassword, and presents it as it is.

A charger may not have stored the new key (it answered Accepted and then lost
it in a reboot, or its answer never came back): the key it used last stays
accepted until the new one has been used once. So a rotated charger has a
`current` key (its last login) and `new` keys (sent, not used yet); the first
login with a new key makes it current and drops the others.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import string
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from edge.journal import Store
from edge.journal.credentials import Key
from edge.ocpp.masking import is_secret_key
from edge.ocpp.security import hash_password
from edge.ocpp.security_words import send as send_worded, words_for

if TYPE_CHECKING:
    from edge.ocpp.commands import CommandResult
    from edge.ocpp.site import Site

log = logging.getLogger(__name__)

KEY_CHARACTERS = 20             # bytes: the whitepaper's maximum; 40 hex digits in ChangeConfiguration
_ALPHABET = string.ascii_letters + string.digits
_HEX = frozenset(string.hexdigits)
# New keys kept per charger while none has been used (a retried rotation adds one each time).
MAX_NEW_KEYS = 3
# Security profiles the edge can serve: 0 (no password) and 1 (HTTP Basic over ws://). 2 and 3 need TLS.
SERVED_PROFILES = {0: "no password", 1: "HTTP Basic auth over ws://"}


class CredentialError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class KeySet:
    """The keys that let one charger in."""

    current: Key | None         # None or hash '': no password is asked for
    new: tuple[Key, ...] = ()
    from_journal: bool = False

    @property
    def open(self) -> bool:
        return self.current is None or not self.current.hash


# -- pure decisions ---------------------------------------------------------------

def new_password(choice: Callable[[str], str] = secrets.choice) -> str:
    """A random key of KEY_CHARACTERS letters and digits, never all hex digits
    (so its hex form and itself can never be taken for one another)."""
    while True:
        password = "".join(choice(_ALPHABET) for _ in range(KEY_CHARACTERS))
        if not set(password) <= _HEX:
            return password


def login_form(presented: str, origin: str) -> str:
    """The password to check against a key's hash: a rotated key presented as its
    hex digits (as some chargers do) is decoded to the bytes the whitepaper means."""
    if origin != "rotated" or len(presented) != 2 * KEY_CHARACTERS or not set(presented) <= _HEX:
        return presented
    decoded = bytes.fromhex(presented)
    return decoded.decode("ascii") if decoded.isascii() and decoded.decode("ascii").isalnum() else presented


def key_set(rows: list[Key], config_hash: str | None, offered: tuple[str, ...] = ()) -> KeySet:
    """The journal's keys win over the config's password_hash; `offered`: keys
    sent right now whose answer has not come back (a fast charger may already
    log in with one)."""
    in_flight = tuple(Key(h, "new", "rotated", "") for h in offered)
    if not rows:
        current = Key(config_hash, "current", "config", "") if config_hash else None
        return KeySet(current, in_flight)
    current = next((r for r in rows if r.role == "current"), None)
    return KeySet(current, tuple(r for r in rows if r.role == "new") + in_flight, from_journal=True)


def rotation_answer(result: "CommandResult",
                    status_of: Callable[[Any], str | None] = lambda response: response.get("status")) -> str | None:
    """Whether the charger may now hold the key: Accepted, RebootRequired, or
    'unanswered' (sent, answer lost: it may have stored it); None if it said no. `status_of` reads the
    answer's status (2.0.1: the BasicAuthPassword's attributeStatus in the SetVariables result)."""
    if result.outcome == "ok" and isinstance(result.response, dict):
        status = status_of(result.response)
        return status if status in ("Accepted", "RebootRequired") else None
    if result.outcome in ("timeout", "not-connected"):
        # not-connected after the request left: the socket closed before the answer.
        return "unanswered"
    return None


def refusal(charger_id: str, action: str, params: dict[str, Any], keys: KeySet,
            upgrade_check: Callable[[str, int], str | None] | None = None) -> str | None:
    """Why a command the operator asked for must not be sent, or None. Checked
    before anything reaches the charger."""
    if action != "ChangeConfiguration" or not isinstance(params.get("key"), str):
        return None
    key, value = params["key"], params.get("value")
    if is_secret_key(key):
        return (f"the edge sets {charger_id}'s AuthorizationKey itself, so that it knows the key and nobody else "
                f"does: run `edgectl chargers password {charger_id} --rotate` (API: POST "
                f"/api/v1/chargers/{charger_id}/password {{\"rotate\": true}}). A key sent here would lock the "
                "charger out at its next connection, and would be kept in shell history")
    if key.lower() != "securityprofile":
        return None
    try:
        profile = int(str(value).strip())
    except ValueError:
        return f"SecurityProfile must be a number 0 to 3, not {str(value)[:20]!r}"
    if upgrade_check is not None and profile in (0, 1, 2, 3):
        # With TLS served, the OCPP server decides (edge/ocpp/security_state.py: never strand a charger).
        why = upgrade_check(charger_id, profile)
        if why is not None:
            return why
    elif profile not in SERVED_PROFILES:
        return (f"SecurityProfile {profile} needs TLS (2: TLS with HTTP Basic, 3: TLS with client certificates) and "
                f"the edge has none yet: it serves 0 ({SERVED_PROFILES[0]}) and 1 ({SERVED_PROFILES[1]}). "
                f"{charger_id} would reconnect over wss:// and find no one to talk to: nothing was sent")
    if profile == 0 and not keys.open:
        return (f"SecurityProfile 0 means {charger_id} would connect without a password, but the edge asks it "
                "for one (profile 1): it would be refused at every connection. Nothing was sent")
    return None


def describe(keys: KeySet, configured_hash: str | None) -> dict[str, Any]:
    """The state of a charger's keys for the API and `edgectl chargers show`: never a key, never a hash."""
    current, new = keys.current, keys.new
    if keys.open and not new:
        state = "no password asked (security profile 0)"
    elif not keys.from_journal:
        state = "password from the site config"
    elif new:
        state = "new key sent, waiting for its first use; the key used last is still accepted"
    else:
        state = "key set by the edge, in use"
    view: dict[str, Any] = {
        "state": state,
        "source": "journal" if keys.from_journal else ("config" if configured_hash else "none"),
        "password_required": not keys.open,
        "current_key": None if current is None else {
            "origin": current.origin, "set_at": current.at or None, "first_used_at": current.used_at},
        "new_keys": [{"sent_at": k.at, "answer": k.answer, "action_id": k.action_id} for k in new if k.at],
        "config_password_hash_ignored": keys.from_journal and configured_hash is not None,
    }
    return view


# -- the shell ------------------------------------------------------------------------

class Credentials:
    """The journal's keys in memory (read at every handshake, so no journal
    read there), and the rotation itself."""

    def __init__(self, site: "Site", connected: Callable[[str], bool]):
        self.site = site
        self._connected = connected
        self._rows: dict[str, list[Key]] = {}
        self._offered: dict[str, str] = {}      # charger id -> hash of the key in flight
        self._rotating: set[str] = set()
        # Set by the OCPP server: whether a SecurityProfile change may be sent (profile_change_refusal).
        self.upgrade_check: Callable[[str, int], str | None] | None = None

    async def load(self) -> None:
        self._rows = await self.site.journal.read(Store.every_charger_key)

    def keys_for(self, charger_id: str) -> KeySet:
        offered = (self._offered[charger_id],) if charger_id in self._offered else ()
        return key_set(self._rows.get(charger_id, []), self.site.directory.password_hash(charger_id), offered)

    def describe(self, charger_id: str) -> dict[str, Any]:
        view = describe(self.keys_for(charger_id), self.site.directory.password_hash(charger_id))
        view["rotating_now"] = charger_id in self._rotating
        return view

    def refusal(self, charger_id: str, action: str, params: dict[str, Any]) -> str | None:
        """The guard Commands asks before an operator's command is sent."""
        return refusal(charger_id, action, params, self.keys_for(charger_id), self.upgrade_check)

    async def used(self, charger_id: str, key_hash: str) -> None:
        """A login with a new key: called from the handshake before it is let in."""
        at = self.site.clock.now_iso()
        self._rows[charger_id] = await self.site.journal.write(Store.key_used, charger_id, key_hash, at)
        log.info("charger=%s logged in with its new key; the old key is no longer accepted", charger_id)

    async def forget(self, charger_id: str) -> int:
        """Back to the config's password_hash (for a charger reset to its factory key, say)."""
        if charger_id in self._rotating:
            raise CredentialError(409, f"a key rotation for {charger_id} is under way")
        dropped = await self.site.journal.write(Store.forget_keys, charger_id)
        self._rows.pop(charger_id, None)
        return dropped

    async def rotate(self, charger_id: str, *, actor: str, reason: str) -> dict[str, Any]:
        if not self.site.directory.is_known(charger_id):
            raise CredentialError(404, f"no charger {charger_id!r} at this site")
        if charger_id in self._rotating:
            raise CredentialError(409, f"a key rotation for {charger_id} is under way")
        if not self._connected(charger_id):
            raise CredentialError(409, f"{charger_id} is not connected: the key is set with ChangeConfiguration "
                                       "(2.0.1: SetVariables), so the charger must be online")
        assert self.site.commands is not None
        self._rotating.add(charger_id)
        try:
            before = self.keys_for(charger_id).current
            password = new_password()
            # scrypt takes tens of milliseconds: not on the event loop.
            key_hash = await asyncio.get_running_loop().run_in_executor(None, hash_password, password)
            self._offered[charger_id] = key_hash
            # 1.6: ChangeConfiguration(AuthorizationKey), the key's bytes in hex; 2.0.1: SetVariables
            # SecurityCtrlr.BasicAuthPassword, the key itself (edge/ocpp/security_words.py).
            words = words_for(self.site, charger_id)
            request = words.password_request(password)
            result = await send_worded(self.site, charger_id, request, actor=actor, reason=reason or "key rotation",
                                       guarded=False, words=words)
            del password, request
            answer = rotation_answer(result, words.password_status)
            if answer is not None:
                key = Key(key_hash, "new", "rotated", self.site.clock.now_iso(), answer, result.action_id)
                self._rows[charger_id] = await self.site.journal.write(Store.store_new_key, charger_id, before,
                                                                       key, MAX_NEW_KEYS)
            log.info("key rotation charger=%s outcome=%s answer=%s", charger_id, result.outcome, answer)
        finally:
            self._offered.pop(charger_id, None)
            self._rotating.discard(charger_id)
        return {"charger_id": charger_id, "stored": answer is not None, "command": result.as_dict(),
                "credentials": self.describe(charger_id)}
