"""Caps: limits on circuits that come from outside the site config, e.g. the
cloud's "site max 20 A until 18:00" for demand response. Pure.

A cap only ever lowers a circuit's limit (the fuse still binds when the cap is
higher), and a temporary cap ends by itself at its `until`. The allocator is
not told about caps: it gets the topology with the capped limits.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Mapping

from edge.dlm.model import Topology


@dataclass(frozen=True)
class Cap:
    circuit: str
    max_current: float               # A per phase
    until: datetime | None = None    # timezone-aware; None: until replaced
    reason: str = ""

    def active(self, now: datetime) -> bool:
        return self.until is None or now < self.until


def capped(topology: Topology, caps: Mapping[str, Cap], now: datetime) -> Topology:
    """`topology` with every circuit's limit lowered to its active cap; the same
    object when no cap lowers anything (so its cached lookups are kept)."""
    lower = {c.id: min(c.limit, caps[c.id].max_current) for c in topology.circuits
             if c.id in caps and caps[c.id].active(now) and caps[c.id].max_current < c.limit}
    if not lower:
        return topology
    return replace(topology, circuits=tuple(replace(c, limit=lower[c.id]) if c.id in lower else c
                                            for c in topology.circuits))
