"""Back-off for failed HTTP Basic credentials, per charge point id and per address.

Checking a password costs tens of milliseconds of scrypt on purpose, so a
storm of wrong passwords would burn the CPU the edge needs for its chargers
and let an attacker guess as fast as we can hash. After a few failures a key
(a charger id, a remote address) is barred for a window that doubles with
each further failure up to a cap; within it every attempt is refused at once,
without the hash check, the right password too (otherwise the bar would only
cost the attacker the wrong guesses). A success resets the key.

An attempt counts as a failure from the moment its check starts and is
refunded by success: a burst of parallel attempts then bars the key after the
first few instead of all reaching the hash at once.

Addresses get more free attempts than ids: several chargers may share one
address behind a site's 4G router, and one of them with a stale password
should not bar its neighbours for long. Pure decisions over an LRU-capped
table; the clock (monotonic seconds) is passed in.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class BackoffPolicy:
    free_failures: int          # failures before the first bar
    first_bar: float = 1.0      # seconds; doubles with each further failure
    max_bar: float = 300.0
    forget_after: float = 900.0  # a key quiet this long starts afresh


PER_CHARGER = BackoffPolicy(free_failures=5)
PER_ADDRESS = BackoffPolicy(free_failures=20)
MAX_TRACKED = 4096


@dataclass
class Failures:
    count: int = 0
    last: float = 0.0
    barred_until: float = 0.0


def bar_length(failures: int, policy: BackoffPolicy) -> float:
    """Seconds a key is barred after its `failures`-th failure (0: not barred)."""
    if failures < policy.free_failures:
        return 0.0
    return min(policy.max_bar, policy.first_bar * 2.0 ** min(failures - policy.free_failures, 64))


def retry_after(entry: Failures | None, now: float) -> float:
    """Seconds until this key may try again (0: it may try now)."""
    return max(0.0, entry.barred_until - now) if entry else 0.0


def after_failure(entry: Failures | None, now: float, policy: BackoffPolicy) -> Failures:
    count = 1 if entry is None or now - entry.last > policy.forget_after else entry.count + 1
    return Failures(count=count, last=now, barred_until=now + bar_length(count, policy))


class AuthBackoff:
    """Failure counts per (kind, key), at most MAX_TRACKED, least recently failed forgotten first."""

    def __init__(self, max_tracked: int = MAX_TRACKED):
        self._max = max_tracked
        self._table: OrderedDict[tuple[str, str], Failures] = OrderedDict()

    def barred_for(self, charger_id: str, address: str, now: float) -> float:
        """Seconds an attempt must wait; 0 if it may be checked."""
        return max(retry_after(self._table.get(("charger", charger_id)), now),
                   retry_after(self._table.get(("address", address)), now))

    def attempt(self, charger_id: str, address: str, now: float) -> None:
        """A hash check starts: counted as a failure until `succeeded` refunds it."""
        for key, policy in ((("charger", charger_id), PER_CHARGER), (("address", address), PER_ADDRESS)):
            self._table[key] = after_failure(self._table.get(key), now, policy)
            self._table.move_to_end(key)
        while len(self._table) > self._max:
            self._table.popitem(last=False)

    def succeeded(self, charger_id: str, address: str) -> None:
        self._table.pop(("charger", charger_id), None)
        self._table.pop(("address", address), None)

    def failures(self, charger_id: str) -> int:
        entry = self._table.get(("charger", charger_id))
        return entry.count if entry else 0

    def __len__(self) -> int:
        return len(self._table)
