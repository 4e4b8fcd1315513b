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
The bounds are set here; the statements that keep them are the journal's
(edge/journal/chargers.py, logs.py), run on its thread through `Journal.write`
(one commit path) by the functions at the end of this module.
"""

from __future__ import annotations

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


# -- on the journal's thread: the policy above over the journal's rows (chargers.py, logs.py) ----------

def remember_boot(store: Store, charger_id: str, registration: str, info: dict[str, Any], at: str,
                  known: list[str]) -> None:
    """A stranger's BootNotification: its row (no outbox trigger fires for it), then the strangers
    beyond the newest STRANGERS_KEPT or older than STRANGER_MAX_AGE are forgotten with their logs."""
    store.remember_stranger(charger_id, registration, info, at, known, STRANGERS_KEPT, _ago(at, STRANGER_MAX_AGE))


def trim_strangers(store: Store, touched: list[str], evicted: list[str]) -> None:
    """Strangers seen lately keep their newest STRANGER_LOG_ROWS per log; those
    pushed out of the recent ones lose their logs (unless their row is still kept)."""
    store.trim_stranger_logs(touched, evicted, STRANGER_LOG_ROWS)


def sweep(store: Store, known: list[str], now: str) -> None:
    """The slow tidy-up: forgotten strangers, then every log by age (strangers'
    after STRANGER_MAX_AGE, everyone's after LOG_MAX_AGE) and the network log by count."""
    store.forget_strangers(known, STRANGERS_KEPT, _ago(now, STRANGER_MAX_AGE))
    store.sweep_logs(known, _ago(now, LOG_MAX_AGE), _ago(now, STRANGER_MAX_AGE), SWEEP_CHUNK, SWEEP_CHUNKS,
                     NETWORK_ROWS_PER_CHARGER)


def _ago(now: str, age: timedelta) -> str:
    moment = parse_iso(now)
    assert moment is not None, now
    return iso(moment - age)
