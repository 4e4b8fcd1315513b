"""Strangers: charge point ids that are neither configured nor adopted.

Anyone on the LAN can open ws://edge/ocpp/ANY-ID without a password (that is
how a new charger gets to be adopted under `unknown_chargers = "pending"`), so
what a stranger may cost the edge is bounded here, in one place:

- its BootNotification leaves one `chargers` row (for the installer to adopt
  it), without `last_boot`, so the journal's outbox triggers send nothing to
  the cloud; only the newest STRANGERS_KEPT rows are kept, none older than
  STRANGER_MAX_AGE, and a forgotten stranger's logs go with it;
- its network-log notes and its first few frames, cut short, are kept for
  diagnosis: STRANGER_LOG_ROWS per id, for the STRANGERS_KEPT ids seen last;
- no presence status, no bus event, nothing in the outbox;
- at most STRANGER_CONNECTIONS of them are connected at once, and new ones
  are let in at STRANGER_CONNECTS_PER_SECOND: a flood of handshakes cannot
  take the event loop from the chargers that belong to the site.

The logs of every charger are pruned too, by count per charger and by age.
Like every store module, the SQL here runs on the journal's thread through
`Journal.write` (one commit path) and never commits itself.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from datetime import timedelta
from typing import Any

from edge.clock import iso, parse_iso
from edge.journal import Store

# Pending or rejected chargers remembered (row and logs): the newest, and none older than this.
STRANGERS_KEPT = 50
STRANGER_MAX_AGE = timedelta(days=7)
# Per stranger id: network-log rows and communication-log frames kept, and how much of a frame.
STRANGER_LOG_ROWS = 20
STRANGER_FRAME_CHARS = 512
# Unauthenticated connections open at once, and new ones per second (sustained, burst);
# more are refused at the handshake (503 with Retry-After), before any session or journal write.
STRANGER_CONNECTIONS = 100
STRANGER_CONNECTS_PER_SECOND = 10.0
STRANGER_CONNECT_BURST = 50
# Every charger: the network log keeps this many rows per charger; both logs drop rows this old.
NETWORK_ROWS_PER_CHARGER = 5000
LOG_MAX_AGE = timedelta(days=90)
# The age sweep deletes oldest-first in chunks, so it never holds the journal for long.
SWEEP_CHUNK = 5000
SWEEP_CHUNKS = 20

LOGS = ("network_log", "communication_log")
_BOOT_FIELDS = ("vendor", "model", "serial_number", "firmware_version", "iccid", "imsi",
                "meter_type", "meter_serial_number")
# Rows of `chargers` that are strangers: never adopted, never accepted, not in the directory.
_STRANGER_ROWS = ("SELECT id FROM chargers WHERE adopted_at IS NULL AND registration != 'accepted' "
                  "AND id NOT IN (SELECT value FROM json_each(:known))")


class RecentStrangers:
    """The STRANGERS_KEPT stranger ids seen last (an LRU): whose logs are kept."""

    def __init__(self, capacity: int = STRANGERS_KEPT):
        self._capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._touched: set[str] = set()
        self._evicted: set[str] = set()

    def seen(self, charger_id: str) -> None:
        self._ids[charger_id] = None
        self._ids.move_to_end(charger_id)
        self._touched.add(charger_id)
        self._evicted.discard(charger_id)
        while len(self._ids) > self._capacity:
            old, _ = self._ids.popitem(last=False)
            self._touched.discard(old)
            self._evicted.add(old)

    def take(self) -> tuple[list[str], list[str]]:
        """(ids seen since the last take, ids pushed out since): what the next tidy-up trims and drops."""
        touched, evicted = sorted(self._touched), sorted(self._evicted)
        self._touched, self._evicted = set(), set()
        return touched, evicted

    def __len__(self) -> int:
        return len(self._ids)


def remember_boot(store: Store, charger_id: str, registration: str, info: dict[str, Any], at: str,
                  known: list[str]) -> None:
    """A stranger's BootNotification: its row (newest boot in `last_seen`, no
    `last_boot`, so no outbox trigger fires), then the strangers beyond the cap are forgotten."""
    values = [info.get(f) for f in _BOOT_FIELDS]
    store.conn.execute(
        f"""INSERT INTO chargers (id, registration, first_seen, last_seen, {", ".join(_BOOT_FIELDS)})
            VALUES (?, ?, ?, ?, {", ".join("?" * len(_BOOT_FIELDS))})
            ON CONFLICT (id) DO UPDATE SET registration = excluded.registration, last_seen = excluded.last_seen,
              {", ".join(f"{f} = excluded.{f}" for f in _BOOT_FIELDS)}""",
        (charger_id, registration, at, at, *values))
    forget_strangers(store, known, at)


def forget_strangers(store: Store, known: list[str], now: str) -> list[str]:
    """Drops stranger rows beyond the newest STRANGERS_KEPT or older than
    STRANGER_MAX_AGE, with their logs. Returns the ids forgotten."""
    args = {"known": json.dumps(known), "keep": STRANGERS_KEPT, "before": _ago(now, STRANGER_MAX_AGE)}
    forgotten = [row[0] for row in store.conn.execute(
        f"""SELECT id FROM chargers WHERE id IN ({_STRANGER_ROWS}) AND (last_seen < :before OR id NOT IN (
              SELECT id FROM chargers WHERE id IN ({_STRANGER_ROWS}) ORDER BY last_seen DESC, id LIMIT :keep))""",
        args)]
    if forgotten:
        doomed = json.dumps(forgotten)
        for table in LOGS:
            store.conn.execute(f"DELETE FROM {table} WHERE charger_id IN (SELECT value FROM json_each(?))", (doomed,))
        store.conn.execute("DELETE FROM chargers WHERE id IN (SELECT value FROM json_each(?))", (doomed,))
    return forgotten


def trim_strangers(store: Store, touched: list[str], evicted: list[str]) -> None:
    """Strangers seen lately keep their newest STRANGER_LOG_ROWS per log; those
    pushed out of the recent ones lose their logs (unless their row is still kept)."""
    for charger_id in touched:
        for table in LOGS:
            _keep_newest(store, table, charger_id, STRANGER_LOG_ROWS)
    if evicted:
        gone = json.dumps(evicted)
        for table in LOGS:
            store.conn.execute(
                f"DELETE FROM {table} WHERE charger_id IN (SELECT value FROM json_each(?)) "
                "AND charger_id NOT IN (SELECT id FROM chargers)", (gone,))


def sweep(store: Store, known: list[str], now: str) -> None:
    """The slow tidy-up: forgotten strangers, then every log by age (strangers'
    after STRANGER_MAX_AGE, everyone's after LOG_MAX_AGE) and the network log by count."""
    forget_strangers(store, known, now)
    args = {"known": json.dumps(known), "old": _ago(now, LOG_MAX_AGE), "stranger_old": _ago(now, STRANGER_MAX_AGE)}
    stranger = "charger_id NOT IN (SELECT value FROM json_each(:known))"
    for table in LOGS:
        # Rows are appended in time order: the oldest are the first by id, so
        # a chunk from the start is all that an age check ever needs to scan.
        for _ in range(SWEEP_CHUNKS):
            deleted = store.conn.execute(
                f"""DELETE FROM {table} WHERE id IN (SELECT id FROM {table} ORDER BY id LIMIT :chunk)
                      AND (at < :old OR (at < :stranger_old AND {stranger}))""",
                {**args, "chunk": SWEEP_CHUNK}).rowcount
            if deleted < SWEEP_CHUNK:
                break
    for charger_id in known:
        _keep_newest(store, "network_log", charger_id, NETWORK_ROWS_PER_CHARGER)


def _keep_newest(store: Store, table: str, charger_id: str, keep: int) -> None:
    store.conn.execute(
        f"""DELETE FROM {table} WHERE charger_id = ? AND id <= (
              SELECT id FROM {table} WHERE charger_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)""",
        (charger_id, charger_id, keep))


def _ago(now: str, age: timedelta) -> str:
    moment = parse_iso(now)
    assert moment is not None, now
    return iso(moment - age)
