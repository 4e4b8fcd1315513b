"""How often the edge asks a charger again when configuring it failed on the
charger's side (no answer, a CALLERROR): soon at first, then less and less
often, and a bounded number of times per connection. A charger that still
fails is tried again from the start when it next connects (and is ready)."""

from __future__ import annotations

# Seconds before retry 1, 2, ...: about nine minutes in all.
RETRY_DELAYS: tuple[float, ...] = (5.0, 15.0, 45.0, 135.0, 300.0)


def next_delay(attempts_so_far: int, delays: tuple[float, ...] = RETRY_DELAYS) -> float | None:
    """The wait before the next retry, or None when the retries are used up."""
    return delays[attempts_so_far] if 0 <= attempts_so_far < len(delays) else None
