"""Over the limit: a circuit phase the meter shows over its limit for longer
than the site can need to react. Pure; time is passed in.

A step in the building's load may take a phase over its limit; that is not a
fault yet: the edge needs a meter period to see it and a moment to send lower
limits, the cars up to `follow_time` (IEC 61851-1: 5 s) to follow. That is the
*reaction window*. A phase still measured over its limit after it is a fault
someone has to know about: either nothing is left to shed (the building alone
is over the fuse, every car on it is at 0 A), or something does not follow.

Per circuit phase a small state (`Watch`) follows the meter's readings, each
looked at once, in the meter's own time:

- a stretch starts at the first reading over the limit and ends at the first
  one at or under it (as the benchmark counts A·s beyond the window);
- a reading still over the limit more than the window after the stretch began
  raises the alert;
- a raised alert clears once the phase has been at or under its limit for a
  window too, so a phase hovering at its fuse raises one alert, not one per dip;
- a missing reading (meter lost: the failsafe has its own alert) changes nothing.

`OverloadWatch` keeps the states of a site and says what was done about each
phase, from the allocation: "every car on it at 0 A; nothing left to shed" or
what is still allocated or held there. The load manager logs, publishes and
shows what it returns (edge/dlm/manager.py).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Mapping

from edge.clock import iso
from edge.dlm.model import Allocation, Resource, Topology
from edge.dlm.phases import NAMES

# s for the edge to decide and send lower limits once a reading shows the overload
# (an evaluation and one SetChargingProfile; bench dlm_reaction: p99 well under this).
EDGE_REACTION = 0.5


def reaction_window(follow_time: float, meter_period: float) -> float:
    """The longest a phase of a working site is measured over its limit after a
    step: a period for the meter to show it (a reading may be that late), the
    edge's reaction, and the cars' follow time. With the defaults 1 + 0.5 + 5 s."""
    return meter_period + EDGE_REACTION + follow_time


@dataclass(frozen=True)
class Watch:
    """One circuit phase. Times are the meter readings' (monotonic s)."""

    since: float | None = None          # first reading over the limit in this stretch
    last_over: float | None = None      # latest reading over the limit in this stretch
    peak: float = 0.0                   # highest reading in this stretch (A)
    excess_as: float = 0.0              # A·s over the limit in this stretch, between readings
    raised_at: float | None = None      # when the alert was raised (None: not raised)
    under_since: float | None = None    # a raised alert: at or under the limit since
    last_at: float = -math.inf          # the latest reading looked at
    last_excess: float = 0.0            # how far over the limit that reading was (A)


def step(watch: Watch, metered: float | None, limit: float, at: float, window: float,
         clear_after: float) -> tuple[Watch, str | None]:
    """The state after one reading, and "raised", "cleared" or None."""
    if metered is None or not math.isfinite(metered) or not at > watch.last_at:
        return watch, None                      # no reading, or one already looked at
    excess = metered - limit
    # The previous reading's excess held until this one (what the meter can tell).
    held = watch.last_excess * (at - watch.last_at) if watch.since is not None else 0.0
    if excess > 0:
        since = watch.since if watch.since is not None else at
        watch = replace(watch, since=since, last_over=at, peak=max(watch.peak, metered),
                        excess_as=watch.excess_as + held, under_since=None, last_at=at, last_excess=excess)
        if watch.raised_at is None and at - since > window:
            return replace(watch, raised_at=at), "raised"
        return watch, None
    if watch.raised_at is None:
        return Watch(last_at=at), None          # answered within the window: nothing to report
    under_since = watch.under_since if watch.under_since is not None else at
    watch = replace(watch, under_since=under_since, excess_as=watch.excess_as + held, last_at=at, last_excess=0.0)
    if at - under_since >= clear_after:
        return watch, "cleared"
    return watch, None


def what_was_done(allocated: float, reserved: float) -> str:
    """What the edge did about an overloaded phase, from the allocation on it."""
    if allocated <= 0 and reserved <= 0:
        return "every car on it at 0 A; nothing left to shed"
    held = (f"; {reserved:g} A held for chargers the edge cannot steer (offline, refusing profiles, over their "
            "limit) or cars about to start") if reserved > 0 else ""
    if allocated <= 0:
        return "every car the edge steers on it at 0 A" + held
    return f"cars reduced to {allocated:g} A on this phase" + held


@dataclass(frozen=True)
class Change:
    """An alert raised or cleared, with what the log, the API and the cloud say."""

    active: bool
    circuit: str
    phase: int
    limit: float
    window: float
    watch: Watch
    done: str
    since: str | None = None            # the wall times (ISO 8601) of watch.since ...
    ended: str | None = None            # ... and of watch.under_since once cleared

    def data(self) -> dict[str, Any]:
        """The event's body (dlm.over_fuse -> the cloud's alert.over_fuse)."""
        w = self.watch
        return {"circuit": self.circuit, "phase": NAMES[self.phase], "active": self.active, "limit": self.limit,
                "since": self.since, "ended": None if self.active else self.ended,
                "lasted_s": round((w.last_over or 0.0) - (w.since or 0.0), 2), "peak": round(w.peak, 2),
                "excess_as": round(w.excess_as, 1), "window_s": round(self.window, 2), "done": self.done}

    def message(self) -> str:
        w, where = self.watch, f"circuit={self.circuit} {NAMES[self.phase]}"
        lasted = (w.last_over or 0.0) - (w.since or 0.0)
        if self.active:
            return (f"over the limit {where}: {w.peak:.1f} A at peak on a {self.limit:g} A limit, for {lasted:.1f} s,"
                    f" beyond the {self.window:.1f} s the edge and the cars have to react; {self.done}")
        return (f"over the limit ended {where}: at or under {self.limit:g} A again after {lasted:.1f} s over it "
                f"(peak {w.peak:.1f} A, {w.excess_as:.0f} A*s over)")

    @property
    def level(self) -> int:
        return logging.ERROR if self.active else logging.WARNING


class OverloadWatch:
    """The states of one site's metered circuit phases. `windows`: circuit id ->
    its reaction window (s); a raised alert clears after as long at or under."""

    def __init__(self, windows: Mapping[str, float]):
        self.windows = dict(windows)
        self.watches: dict[Resource, Watch] = {}
        self.done: dict[Resource, str] = {}
        # The wall times of each stretch's start and of its return under the limit, taken once.
        self.walls: dict[tuple[Resource, float], str] = {}

    def observe(self, topology: Topology, readings: Mapping[str, Any], allocation: Allocation, now: float,
                wall: datetime) -> list[Change]:
        """Look at each circuit's latest reading (an object with .current per
        site phase, .at and maybe .wall, or None). `topology` carries the limits
        in force; `now` (monotonic s) and `wall` are the same instant."""
        changes = []
        for circuit_id, window in self.windows.items():
            circuit = topology.by_id.get(circuit_id)
            reading = readings.get(circuit_id)
            if circuit is None or reading is None:
                continue
            load = allocation.circuits.get(circuit_id)
            for p in range(3):
                key = (circuit_id, p)
                watch, change = step(self.watches.get(key, Watch()), reading.current[p], circuit.limit, reading.at,
                                     window, window)
                if watch.since is not None and load is not None:
                    self.done[key] = what_was_done(load.phases[p].allocated, load.phases[p].reserved)
                for at in (watch.since, watch.under_since):
                    if at is not None and (key, at) not in self.walls:
                        moment = getattr(reading, "wall", None) if at == reading.at else None
                        self.walls[(key, at)] = iso(moment) if isinstance(moment, datetime) else _wall(at, now, wall)
                if change is not None:
                    changes.append(Change(change == "raised", circuit_id, p, circuit.limit, window, watch,
                                          self.done.get(key, ""), self.walls.get((key, watch.since)),
                                          self.walls.get((key, watch.under_since))))
                if change == "cleared":
                    watch = Watch(last_at=watch.last_at)
                # Only the times this stretch still shows are kept.
                self.walls = {k: v for k, v in self.walls.items()
                              if k[0] != key or k[1] in (watch.since, watch.under_since)}
                self.watches[key] = watch
        return changes

    def status(self, key: Resource) -> dict[str, Any] | None:
        """The API's view of one circuit phase: None while it is at or under its
        limit (and no alert is open), else since when, how far, what was done."""
        w = self.watches.get(key)
        if w is None or w.since is None:
            return None
        return {"since": self.walls.get((key, w.since)), "lasted_s": round((w.last_over or 0.0) - w.since, 2),
                "peak": round(w.peak, 2), "excess_as": round(w.excess_as, 1), "alert": w.raised_at is not None,
                "under_since": self.walls.get((key, w.under_since)) if w.under_since is not None else None,
                "window_s": round(self.windows[key[0]], 2), "done": self.done.get(key, "")}


def _wall(at: float, now: float, wall: datetime) -> str:
    """A reading's wall time from its monotonic one (a reading without its own)."""
    return iso(wall - timedelta(seconds=max(0.0, now - at)))
