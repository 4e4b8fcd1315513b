"""What one stream has sent and the cloud has not yet confirmed (pure bookkeeping).

The outbox forgets a message only on the cloud's receipt (contract v1
`Receipt`), not on the broker's PUBACK: a broker can acknowledge a message and
still lose it (a restart before its next save; a restart that loses the
cloud's session; a full queue). So each stream keeps a window of seq ranges
that went out and await their receipt. It bounds how much is unconfirmed, and
when the oldest range has waited too long the stream starts again from its
oldest message still in the outbox (the cloud drops what it already has).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The wait for a receipt doubles up to this many times the first, while nothing is confirmed
# (the cloud may be down for days: its broker queue must not fill with copies).
MAX_WAIT_FACTOR = 20


@dataclass
class Window:
    limit: int                          # messages that may await their receipt at once
    first_wait: float                   # s: how long the oldest may wait before the stream starts again
    wait: float = 0.0                   # the wait now (first_wait, doubled after each expiry)
    # After a wait ran out: one batch at a time, until the cloud confirms something.
    probing: bool = False
    # (first seq, last seq, when sent: monotonic s), in the order sent; ranges never overlap
    ranges: list[tuple[int, int, float]] = field(default_factory=list)
    # Seqs up to this go one message per batch: the cloud refused a batch, and the one message at
    # fault is found by sending them singly (the others are stored; it is refused alone).
    single_until: int = 0
    restart: bool = False               # start again from the oldest message in the outbox

    def __post_init__(self) -> None:
        self.wait = self.wait or self.first_wait

    def has_room(self) -> bool:
        return not self.ranges if self.probing else self.messages < self.limit

    def sent(self, first: int, last: int, at: float) -> None:
        self.ranges.append((first, last, at))

    def confirmed(self, first: int, last: int) -> int:
        """A receipt for first..last: that part of every range is done. -> messages it confirmed."""
        kept: list[tuple[int, int, float]] = []
        done = 0
        for lo, hi, at in self.ranges:
            if hi < first or lo > last:
                kept.append((lo, hi, at))
                continue
            done += min(hi, last) - max(lo, first) + 1
            if lo < first:
                kept.append((lo, first - 1, at))
            if hi > last:
                kept.append((last + 1, hi, at))
        self.ranges = kept
        return done

    @property
    def messages(self) -> int:
        return sum(hi - lo + 1 for lo, hi, _ in self.ranges)

    def oldest(self) -> float | None:
        """When the longest-waiting unconfirmed message was sent (None: nothing waits)."""
        return min((at for _, _, at in self.ranges), default=None)

    def refused(self, first: int, last: int) -> None:
        """The cloud refused the batch first..last: send again from the oldest, singly up to `last`."""
        self.single_until = max(self.single_until, last)
        self.ranges.clear()
        self.restart = True
        self.progress()

    def batch_size(self, after: int, full: int) -> int:
        """How many messages the next batch (seqs after `after`) may hold."""
        return 1 if after < self.single_until else full

    def take_restart(self) -> bool:
        restart, self.restart = self.restart, False
        return restart

    def progress(self) -> None:
        """The cloud confirmed something: it is there, back to the full window and the first wait."""
        self.probing = False
        self.wait = self.first_wait

    def expired(self, now: float) -> bool:
        """Has the oldest range waited too long? Then everything unconfirmed is forgotten here (the
        caller sends again from the oldest message in the outbox), one batch at a time, and the
        next wait is twice as long."""
        oldest = self.oldest()
        if oldest is None or now - oldest < self.wait:
            return False
        self.ranges.clear()
        self.probing = True
        self.wait = min(self.wait * 2, self.first_wait * MAX_WAIT_FACTOR)
        return True

    def time_left(self, now: float) -> float | None:
        oldest = self.oldest()
        return None if oldest is None else max(0.0, oldest + self.wait - now)
