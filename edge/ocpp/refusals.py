"""Refused handshakes leave a trace: a `refused` entry in the charger's
network log with the reason ("offers only ocpp2.0.1"), a log line, and the
last one per charger for `edgectl chargers`.

A charger that keeps trying with the same fault would write a row every few
seconds and push its history out of the network log, so repeats are
coalesced: a new reason is noted at once, the same reason again at most once
a minute, with how many refusals it stands for. Strangers (ids the site does
not know) cost what strangers.py allows: their notes are rate-limited site
wide, and their ids go to the recent strangers whose logs are trimmed to a
few rows and dropped when pushed out.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from edge.clock import Clock
from edge.ocpp.rate import TokenBucket

if TYPE_CHECKING:
    from edge.ocpp.presence import PresenceMonitor
    from edge.ocpp.strangers import RecentStrangers

log = logging.getLogger(__name__)

EVENT = "refused"
REPEAT_EVERY = 60.0             # seconds between two notes of the same reason for one charger
STRANGER_NOTES_PER_SECOND = 1.0
STRANGER_NOTE_BURST = 20
MAX_TRACKED = 4096              # ids remembered for coalescing (least recently refused forgotten first)


@dataclass
class Seen:
    reason: str
    noted_at: float             # monotonic time of the last note
    unnoted: int = 0            # refusals since that note


def to_note(previous: Seen | None, reason: str, now: float) -> bool:
    """Whether this refusal gets its own network-log entry."""
    return previous is None or previous.reason != reason or now - previous.noted_at >= REPEAT_EVERY


def subprotocol_refusal(offered: list[str], served: Sequence[str]) -> str | None:
    """Why a handshake offering these subprotocols cannot be served (the central system speaks `served`), or None."""
    if any(p in served for p in offered):
        return None
    speaks = " and ".join(served)
    if not offered:
        return f"offers no subprotocol (the subprotocols this central system speaks are {speaks})"
    if any(p.lower() in served for p in offered):
        return (f"offers only {', '.join(offered)} (subprotocol names are case-sensitive: "
                f"the subprotocols this central system speaks are {speaks})")
    return f"offers only {', '.join(offered)} (the subprotocols this central system speaks are {speaks})"


class Refusals:
    def __init__(self, presence: "PresenceMonitor", clock: Clock, recent_strangers: "RecentStrangers"):
        self._presence = presence
        self._clock = clock
        self._recent_strangers = recent_strangers
        self._seen: OrderedDict[str, Seen] = OrderedDict()
        self._stranger_notes = TokenBucket(STRANGER_NOTES_PER_SECOND, STRANGER_NOTE_BURST, clock.monotonic())
        self.count = 0

    def refused(self, charger_id: str, reason: str, *, known: bool) -> None:
        self.count += 1
        now = self._clock.monotonic()
        previous = self._seen.get(charger_id)
        if not to_note(previous, reason, now) or (not known and not self._stranger_notes.allow(now)):
            if previous is not None:
                previous.unnoted += 1
                self._seen.move_to_end(charger_id)
            return
        repeats = previous.unnoted if previous is not None and previous.reason == reason else 0
        detail = reason + (f" ({repeats} more refused for this since the last entry)" if repeats else "")
        self._seen[charger_id] = Seen(reason, now)
        self._seen.move_to_end(charger_id)
        while len(self._seen) > MAX_TRACKED:
            self._seen.popitem(last=False)
        if not known:
            self._recent_strangers.seen(charger_id)   # its logs stay few and go when it is pushed out
        self._presence.note(charger_id, EVENT, detail)
        log.log(logging.WARNING if known else logging.INFO, "handshake refused charger=%s%s: %s", charger_id,
                "" if known else " (unknown)", detail)
