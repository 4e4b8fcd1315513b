"""The journal's charger keys (charger_keys, edge/ocpp/credentials.py): the scrypt hashes of the
AuthorizationKeys the edge set, a charger's `current` key (its last login) and the `new` ones sent
and not used yet. Key is a row of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.journal.base import StoreBase

_COLUMNS = "key_hash, role, origin, at, answer, action_id, used_at"


@dataclass(frozen=True)
class Key:
    hash: str                   # scrypt; '' = no password (a charger on profile 0 before its first rotation)
    role: str                   # current | new
    origin: str                 # config | rotated
    at: str
    answer: str | None = None   # a new key: Accepted | RebootRequired | unanswered
    action_id: int | None = None
    used_at: str | None = None


class CredentialStore(StoreBase):
    def charger_keys(self, charger_id: str) -> list[Key]:
        return [Key(*row) for row in self.conn.execute(
            f"SELECT {_COLUMNS} FROM charger_keys WHERE charger_id = ? ORDER BY role, at, rowid", (charger_id,))]

    def every_charger_key(self) -> dict[str, list[Key]]:
        keys: dict[str, list[Key]] = {}
        for charger_id, *row in self.conn.execute(
                f"SELECT charger_id, {_COLUMNS} FROM charger_keys ORDER BY charger_id, role, at, rowid"):
            keys.setdefault(charger_id, []).append(Key(*row))
        return keys

    def store_new_key(self, charger_id: str, before: Key | None, new: Key, max_new: int) -> list[Key]:
        """A key the charger may hold now (its newest `max_new` new keys are kept). On the first rotation
        the key it had (the config's, or none) goes into the journal as `current` with it. -> its keys."""
        if not self.charger_keys(charger_id):
            self._insert_key(charger_id, before or Key("", "current", "config", new.at))
        self._insert_key(charger_id, new)   # ignored if the charger already logged in with it
        self.conn.execute(
            """DELETE FROM charger_keys WHERE charger_id = ? AND role = 'new' AND rowid NOT IN (
                 SELECT rowid FROM charger_keys WHERE charger_id = ? AND role = 'new' ORDER BY at DESC, rowid DESC
                 LIMIT ?)""", (charger_id, charger_id, max_new))
        return self.charger_keys(charger_id)

    def key_used(self, charger_id: str, key_hash: str, at: str) -> list[Key]:
        """The first login with a new key: it becomes current, every other key goes. -> its keys."""
        known = {k.hash: k for k in self.charger_keys(charger_id)}
        self.forget_keys(charger_id)
        old = known.get(key_hash)
        self._insert_key(charger_id, Key(key_hash, "current", "rotated", old.at if old else at,
                                         old.answer if old else "used before its answer came",
                                         old.action_id if old else None, at))
        return self.charger_keys(charger_id)

    def forget_keys(self, charger_id: str) -> int:
        """-> keys removed."""
        return self.conn.execute("DELETE FROM charger_keys WHERE charger_id = ?", (charger_id,)).rowcount

    def _insert_key(self, charger_id: str, key: Key) -> None:
        self.conn.execute(
            f"INSERT OR IGNORE INTO charger_keys (charger_id, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (charger_id, key.hash, key.role, key.origin, key.at, key.answer, key.action_id, key.used_at))
