"""A token bucket: how often something may happen, sustained and at once."""

from __future__ import annotations


class TokenBucket:
    """`rate` per second sustained, `burst` at once; the clock (monotonic seconds) is passed in."""

    def __init__(self, rate: float, burst: int, now: float):
        self.rate, self.burst = rate, float(burst)
        self.tokens, self.stamp = float(burst), now

    def allow(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False
