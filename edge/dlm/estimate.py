"""What the cars can be drawing right now: a conservative state estimator (pure).

For every car and charger phase the estimator gives an interval [least, most]
that the car's draw is in at an instant, from what was measured (MeterValues),
what was commanded (charging profiles: limit, when sent, when and how
answered) and the time a car has to react (IEC 61851-1: 5 s to follow a lower
limit). The building's load on a circuit phase is then the meter minus the
*least* the cars under it can be drawing, so it is never underestimated;
`most` is what a car may still take (for reservations).

The model of a car, and so the assumptions (docs/load-management.md,
"Estimating what the cars draw", says the same for operators):

- Limits. A command is applied by the charger at some instant between its
  sending and its answer; a rejected one never; one without an answer (a
  timeout, a lost connection) at any time or never. A charger applies its
  commands in the order they were sent (OCPP-J: one call at a time).
- Following. A car draws at most the highest limit that was in force at any
  instant of the last `follow` seconds: after a decrease it may still draw the
  old limit for `follow` s after the charger applied it; after an increase it
  may ramp up at once.
- Reducing. A car may drop to its limit at any instant once the limit could be
  in force, and stop (0 A) at any instant: a stop is reported by the charger
  (StatusNotification SuspendedEV, Finishing...), `stopped_at`. Unreported, a
  car reduces no faster than `taper` A/s (a battery nearing full, a warm pack).
  A car pushed down by a lower limit may stay down after the limit rises again.
- Measurements. A sample may be an average over `interval` s before its time:
  it shows that at some instant of that window the car drew at least that
  much; nothing more. A sample without per-phase values (an un-phased current,
  or power) bounds only the sum over the phases.

Where this trusts evidence rather than assuming the worst, it says so:
`attribute_rises` reads the meter's rise after an increase as the raised car
ramping up (the "phantom load"), `attribute_holds` a phase the meter shows
steady after a decrease as the lowered car not fallen yet, `attribute_falls`
its fall as the car following; `bounds` alone trusts only the model above.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Mapping

from edge.dlm.allocate import unmanaged_load
from edge.dlm.model import ConnectorState, EvseKey, Topology
from edge.dlm.phases import Phases

# The highest voltage a phase may have (230 V + 10 %, EN 50160): dividing power by
# it gives a current that is never above the true one.
MAX_VOLTAGE = 253.0


@dataclass(frozen=True)
class Reaction:
    follow: float = 5.0      # s a car has to follow a lower limit, counted from when the charger applied it
    taper: float = 0.05      # A/s a car may reduce on its own without the charger reporting a status change


@dataclass(frozen=True)
class Command:
    """A limit sent to the charger for this connector (a TxProfile)."""

    limit: float                        # A per phase
    sent_at: float                      # monotonic s, taken before the request left
    answered_at: float | None = None    # monotonic s the answer came; None: none yet (or never)
    accepted: bool | None = None        # True: Accepted; False: rejected (never applied); None: unknown


@dataclass(frozen=True)
class Sample:
    """One MeterValues of the connector."""

    at: float                                   # monotonic s the value is for (the end of its window)
    currents: tuple[float, ...] | None = None   # A per charger phase, its L1 first; None: not per phase
    total: float | None = None                  # A summed over the phases, when not per phase
    interval: float = 0.0                       # s it may be averaged over, before `at` (plus any delivery lag)


@dataclass(frozen=True)
class CarHistory:
    """Everything the estimator needs of one connector during one session."""

    phases: int                         # the charger's phases (1 or 3)
    max_current: float                  # A per phase: the EVSE's maximum, never exceeded
    initial: float                      # A per phase in force before the first command (default profile)
    commands: tuple[Command, ...] = ()  # in the order they were sent
    samples: tuple[Sample, ...] = ()    # oldest first; the latest two are enough
    stopped_at: float | None = None     # the latest report that the car stopped drawing on its own
    phases_in_use: int | None = None    # the car draws on the charger's first n phases only (learned)


@dataclass(frozen=True)
class Bounds:
    least: tuple[float, ...]            # A per charger phase
    most: tuple[float, ...]


# --- which limits can be in force ----------------------------------------------------------------

def _over(car: CarHistory, a: float, b: float) -> tuple[float, float]:
    """(lowest, highest) limit that can be in force at some instant of [a, b]: every
    limit sent by b and not rejected, unless a later one was applied before a
    (it was accepted, and answered, before a). Applied in the order sent."""
    settled = None
    for i, c in enumerate(car.commands):
        if c.accepted and c.answered_at is not None and c.answered_at < a:
            settled = i
    limits = [car.initial] if settled is None else [car.commands[settled].limit]
    start = 0 if settled is None else settled + 1
    # Sent but not known applied (nor rejected): it may be in force already.
    limits += [c.limit for c in car.commands[start:] if c.sent_at <= b and c.accepted is not False]
    return min(limits), max(limits)


def _highest(car: CarHistory, a: float, b: float) -> float:
    """The highest limit that can be in force at some instant of [a, b], within the EVSE's maximum."""
    return max(0.0, min(car.max_current, _over(car, a, b)[1]))


def _drawn_on(car: CarHistory) -> int:
    """How many of the charger's phases the car draws on (its first n; all until learned)."""
    return car.phases if car.phases_in_use is None else min(car.phases, car.phases_in_use)


def _sample(car: CarHistory, at: float, follow: float = Reaction.follow) -> Sample | None:
    """The latest sample that says something about instant `at`: taken by then,
    and all of its window after the car last stopped on its own, or taken after
    that stop and showing more than the car could draw before it (no limit in
    force in its window before the stop, nor the follow time before that,
    allowed it): then it drew that after the stop. A car that starts on a 0 A
    default profile reports a stop (SuspendedEVSE) before its first limit, and
    its first sample's window reaches back over it: without this its draw would
    count as building load until its second sample."""
    for s in reversed(car.samples):
        if s.at > at:
            continue
        if car.stopped_at is not None and s.at - s.interval < car.stopped_at:
            if s.at >= car.stopped_at and _drawn_after_stop(car, s, follow):
                return s
            return None
        return s
    return None


def _drawn_after_stop(car: CarHistory, s: Sample, follow: float) -> bool:
    assert car.stopped_at is not None
    return _shows_more(car, s, _highest(car, s.at - s.interval - follow, car.stopped_at))


def _shows_more(car: CarHistory, s: Sample, amps: float) -> bool:
    """Whether the sample shows the car drawing more than `amps` per phase (by DRAW_TOLERANCE)."""
    if s.currents is not None:
        seen = max((a for a in s.currents[:car.phases] if math.isfinite(a)), default=0.0)
        return seen > amps + DRAW_TOLERANCE
    if s.total is not None and math.isfinite(s.total):
        return s.total > car.phases * (amps + DRAW_TOLERANCE)
    return False


def _disobeys(car: CarHistory, at: float, follow: float) -> bool:
    """Whether the car's latest sample by `at` shows it drawing more than any limit that could be in
    force in the sample's window, or the follow time before it, allowed: it does not follow its
    limits (a charger ignoring profiles, before the load manager catches it)."""
    s = next((x for x in reversed(car.samples) if x.at <= at), None)
    return s is not None and _shows_more(car, s, _highest(car, s.at - s.interval - follow, s.at))


def _disobeyed(topology: Topology, cars: Mapping[EvseKey, CarHistory], meter: str, at: float,
               follow: float) -> bool:
    """Whether some car under `meter` does not follow its limits (`_disobeys`). Every reading of the
    meter against what the cars' limits allow then is void (estimate_site leaves the meter out of
    the evidence passes): its changes may be that car, beyond what its limits say, and not the
    others (real-time `ignoring_profiles`: A, limited to 0 A and drawing 16 A, rose as B and C
    followed their decrease; the meter's rise said they had not fallen, and the building's load
    was taken for 13 A where there were 26)."""
    return any(e.key in cars and _disobeys(cars[e.key], at, follow) for e in topology.evses_under(meter))


# --- the interval of one car --------------------------------------------------------------------

def bounds(car: CarHistory, at: float, reaction: Reaction = Reaction()) -> Bounds:
    """The interval each charger phase's draw is in at instant `at`, under the
    model in the module's docstring; evidence from the meter is not used here."""
    n = car.phases
    # After a decrease the old limit holds until `follow` after it was applied;
    # an increase counts at once. Never above the EVSE's maximum.
    top = _highest(car, at - reaction.follow, at)
    most = tuple(top for _ in range(n))
    sample = _sample(car, at, reaction.follow)
    if sample is None:
        return Bounds(tuple(0.0 for _ in range(n)), most)
    start = sample.at - sample.interval
    if sample.currents is not None:
        seen = [max(0.0, a) if math.isfinite(a) else 0.0 for a in sample.currents[:n]]
        seen += [0.0] * (n - len(seen))
    elif sample.total is not None and math.isfinite(sample.total):
        # Only the sum is known: a phase drew at least what the others cannot have drawn
        # (at most the highest limit of the window, or of the follow time before it).
        cap = min(car.max_current, _over(car, start - reaction.follow, sample.at)[1])
        seen = [max(0.0, sample.total - (n - 1) * cap)] * n
    else:
        seen = [0.0] * n
    # The car's own wish fades no faster than `taper` from the sample's window on; the
    # limit holds it no lower than the lowest limit since (draw = min(limit, wish)).
    decay = reaction.taper * max(0.0, at - start)
    # The car may drop to any limit that could have been in force since it drew what the
    # sample shows: the sample says nothing below that. It drew it at some instant of the
    # window, but not before a limit that allowed it could be in force.
    least = tuple(max(0.0, min(v - decay, _lowest_after(car, start, v, sample.at, at, reaction.follow), top))
                  if v > 0 else 0.0 for v in seen)
    return Bounds(least, most)


# A car may draw this much over its limit as its charger measures it (meter and pilot tolerances).
DRAW_TOLERANCE = 1.0


def _lowest_after(car: CarHistory, start: float, amps: float, drawn_by: float, at: float, follow: float) -> float:
    """The lowest limit that can be in force at some instant after the car drew
    `amps` (at some instant of [start, drawn_by]) until `at`. It drew that under a
    limit allowing it, in force then or within `follow` before; limits are applied
    in the order sent, so none sent before that one can be in force again."""
    def settled_before(t: float) -> int:
        found = -1                           # the initial limit
        for i, c in enumerate(car.commands):
            if c.accepted and c.answered_at is not None and c.answered_at < t:
                found = i
        return found
    first = settled_before(start - follow)
    limit = car.initial if first < 0 else car.commands[first].limit
    if limit < amps - DRAW_TOLERANCE:
        # With no limit allowing it, the car does not follow the model: trust only the window.
        first = next((i for i in range(first + 1, len(car.commands))
                      if car.commands[i].accepted is not False and car.commands[i].sent_at <= drawn_by
                      and car.commands[i].limit >= amps - DRAW_TOLERANCE), first)
    first = max(first, settled_before(start))
    limits = [car.initial if first < 0 else car.commands[first].limit]
    limits += [c.limit for c in car.commands[first + 1:] if c.sent_at <= at and c.accepted is not False]
    return min(limits)


def allowed_over(car: CarHistory, start: float, end: float, reaction: Reaction = Reaction()) -> float:
    """The most a car following its limits may draw at any instant of [start, end] (A per
    phase): a sample over that window above it shows the car does not follow."""
    return _highest(car, start - reaction.follow, end)


def trim(car: CarHistory, now: float, reaction: Reaction = Reaction()) -> CarHistory:
    """The same history without what cannot matter for `bounds` at `now` or later:
    commands superseded by one settled (accepted and answered) long enough
    before become its `initial`, and only the latest two samples are kept. The
    shell keeps a car's history short with it, after every change."""
    samples = car.samples[-2:]
    # What the kept samples' windows need (a car pushed down then may have stayed
    # down), and the follow time before them and before now.
    before = min([now] + [s.at - s.interval for s in samples]) - reaction.follow
    settled = None
    for i, c in enumerate(car.commands):
        if c.accepted and c.answered_at is not None and c.answered_at < before:
            settled = i
    if settled is None:
        return replace(car, samples=samples)
    return replace(car, initial=car.commands[settled].limit, commands=car.commands[settled + 1:], samples=samples)


# --- the meter's rise after an increase (trusting evidence) ---------------------------------------

@dataclass(frozen=True)
class MeterReading:
    at: float                 # monotonic s
    currents: Phases          # A per site phase


def _reading_at(readings: tuple[MeterReading, ...], t: float) -> MeterReading | None:
    """The latest reading taken by `t` (readings are kept oldest first; most asked for are recent)."""
    for r in reversed(readings):
        if r.at <= t:
            return r
    return None


def _ramp(car: CarHistory, sample_start: float, at: float = math.inf, follow: float = Reaction.follow
          ) -> tuple[Command, Command] | None:
    """The increases the car may be ramping up after, that its samples do not show yet
    (sent by `at`: a later one says nothing of that instant; sent after the latest sample's
    window began, or that window began while the car could still be ramping after it, within
    `follow` of its answer: a car takes up to that to start, and a sample just after the
    increase may show it before it did): the latest, and the first
    of the run of increases each sent while the car may still have been ramping after
    the one before (within `follow` of its answer). A car raised twice before a sample
    shows it ramps from before the first: counted from the latest alone, its rise after
    the first was in the reading before the latest, and it was credited with none of it
    (a phantom load of its whole draw: the real-time `second_step`)."""
    previous = car.initial
    first = last = None
    for c in car.commands:
        if c.sent_at > at:
            continue
        if c.accepted is not False:
            if c.limit > previous + 1e-9 and (c.sent_at >= sample_start or sample_start < (
                    c.answered_at if c.answered_at is not None else math.inf) + follow):
                ramping = last is not None and c.sent_at <= (
                    last.answered_at if last.answered_at is not None else c.sent_at) + follow
                first = first if ramping else c
                last = c
            previous = c.limit
    return None if first is None or last is None else (first, last)


def attribute_rises(topology: Topology, cars: Mapping[EvseKey, CarHistory], estimated: Mapping[EvseKey, Bounds],
                    readings: Mapping[str, tuple[MeterReading, ...]], at: float,
                    reaction: Reaction = Reaction(), depth: int = 1) -> dict[EvseKey, Bounds]:
    """Raise `least` of cars that were just allowed more by what their meter rose
    since the increase was sent, up to what they may draw: so a car ramping up
    before its MeterValues show it is not taken for building load.

    Trusted evidence: the building did not rise on the same phase while the
    car ramped (within `follow` of the increase being answered). If it did, the
    building is underestimated by at most the increase, until the car's next
    sample (or the window's end). A rise after that window is not attributed; a
    later fall takes the attribution back. A car lowered within the window keeps
    the credit the meter shows (a fall would show), unless a phase on its way to
    the grid is over its fuse: that may be the trust broken, so then, and after
    the window, the credit is no higher than the lowest limit sent since. A
    sample whose window began before the car could have ramped (within `follow`
    of the answer) does not end the credit: what it shows is taken off the
    rise, as any car's estimate change since the increase is. A car known to
    draw on several phases draws them evenly, so a one-phase building step is
    not taken for a 3-phase car. The meters are
    read deepest first, and a parent meter attributes only what its sub-meters
    did not, nor what other cars' estimates since show they rose (less what
    they show they fell): no rise is counted twice, and the building is taken
    to be what it was at the increase. Knowing a car's phases (`phases_in_use`) only ever narrows
    what is attributed. What the cars' samples show they rose is counted from
    their estimate at the increase *with* what was attributed then (`depth`
    levels of it): a car already drawing at that reading, credited then from an
    earlier rise, did not rise again when its first sample came in (else its
    whole draw was taken off the rise, and the raised car got no credit)."""
    out = dict(estimated)
    gained: dict[str, list[float]] = {c.id: [0.0, 0.0, 0.0] for c in topology.circuits}
    metered = sorted((c for c in topology.circuits if c.meter is not None and readings.get(c.id)),
                     key=lambda c: -len(topology.paths[c.id]))
    for circuit in metered:
        history = readings[circuit.id]
        now_reading = _reading_at(history, at)
        if now_reading is None:
            continue
        overloaded = _over_fuse(topology, readings, circuit.id, at)
        ramps = []
        for evse in topology.evses:
            car, est = cars.get(evse.key), estimated.get(evse.key)
            if car is None or est is None or _nearest_meter(topology, evse.circuit, readings) != circuit.id:
                continue
            sample = _sample(car, at, reaction.follow)
            found = _ramp(car, -math.inf if sample is None else sample.at - sample.interval, at, reaction.follow)
            if found is not None:
                ramps.append((found[0].sent_at, evse, car, est, found[1]))
        left: dict[float, list[float]] = {}
        for sent_at, evse, car, est, command in sorted(ramps, key=lambda r: (r[0], r[1].key)):
            base = _reading_at(history, sent_at)
            if base is None:
                continue
            end = (command.answered_at if command.answered_at is not None else at) + reaction.follow
            then = _reading_at(history, min(at, end)) or now_reading
            if base.at not in left:
                # The lowest reading since the window's end: a fall takes the credit back, and a
                # rise after such a fall (another car stopping, then the building) is not the car.
                since = [r for r in history if then.at <= r.at <= now_reading.at] or [then, now_reading]
                low = [min(r.currents[p] for r in since) for p in range(3)]
                # What rose since a reading from the increase on, less what sub-meters and cars raised
                # earlier already took, and less what other cars' estimates since show they changed: no
                # rise is counted twice. Any reading of the window will do, as the building did not rise
                # since (trusted); besides the one at the increase, the lowest on each phase: a car
                # lowered just before, still falling at the increase, would hide the ramp behind its
                # fall (its estimate was at its new limit already).
                window = [r for r in history if base.at <= r.at <= then.at]
                candidates = {base.at: base}
                candidates.update({r.at: r for r in (min(window, key=lambda r, p=p: r.currents[p])
                                                      for p in range(3))} if window else {})
                best = [-math.inf] * 3
                for reading in candidates.values():
                    shown = _least_rise(topology, circuit.id, cars, estimated, reading.at, reaction, readings, depth)
                    best = [max(best[p], low[p] - reading.currents[p] - gained[circuit.id][p] - shown[p])
                            for p in range(3)]
                left[base.at] = best
            rise = left[base.at]
            n = _drawn_on(car)
            # No higher than a limit sent since the increase lets it be now: a car lowered after its
            # ramp may have followed already, and a building rise since may hide its fall. Within the
            # window, and with no phase over its fuse, the reading shows any fall (the building did
            # not rise: trusted), so a car lowered while it ramps (to make room for another) is what
            # the meter rose, not its new limit: else the ramp it still draws is building load, and
            # every car is lowered for it. A phase over its fuse may be the trust broken (a building
            # step during the ramp): then each decrease counts at once, and the next one is not short.
            lowest = command.limit if now_reading.at <= end and not overloaded else min(
                [command.limit] + [c.limit for c in car.commands if c.sent_at > command.sent_at
                                   and c.sent_at <= at and c.accepted is not False])
            room = [max(0.0, min(rise[evse.phase_map[i]], est.most[i] - est.least[i], lowest - est.least[i]))
                    for i in range(n)]
            if car.phases_in_use is not None and n > 1:
                room = [min(room)] * n
            least = list(est.least)
            for i in range(n):
                least[i] += room[i]
                rise[evse.phase_map[i]] -= room[i]
                for c in topology.paths[evse.circuit]:
                    gained[c][evse.phase_map[i]] += room[i]
            out[evse.key] = replace(est, least=tuple(least))
    return out


def _over_fuse(topology: Topology, readings: Mapping[str, tuple[MeterReading, ...]], circuit_id: str,
               at: float) -> bool:
    """Whether a phase of this circuit, or of one above it, is over its fuse by its meter's latest reading."""
    for c in topology.paths[circuit_id]:
        reading = _reading_at(readings.get(c, ()), at)
        if reading is not None and any(a > topology.by_id[c].limit for a in reading.currents):
            return True
    return False


def _least_rise(topology: Topology, circuit_id: str, cars: Mapping[EvseKey, CarHistory],
                estimated: Mapping[EvseKey, Bounds], since: float, reaction: Reaction,
                readings: Mapping[str, tuple[MeterReading, ...]] | None = None, depth: int = 0) -> list[float]:
    """Per site phase: how much the least of the cars under a circuit changed since an instant
    (their least then with what the meters' rises credited them then, `depth` levels deep).
    Falls count too: a car lowered (or whose sample aged) since is estimated lower, and what
    the meter rose on top of that is the raised car as much as the rest is; taken off the rise,
    the building stays what it was at the increase, which is what the credit trusts. (Counting
    only rises, a car raised as another was lowered to make room for it got no credit once the
    lowered car followed: the meter's sum did not rise, and the ramp was building load.)"""
    out = [0.0, 0.0, 0.0]
    earlier = (estimate_site(topology, cars, {c: tuple(r for r in rs if r.at <= since)
                                              for c, rs in readings.items()}, since, reaction, depth - 1)
               if depth > 0 and readings else None)
    for evse in topology.evses_under(circuit_id):
        car, est = cars.get(evse.key), estimated.get(evse.key)
        if car is None or est is None:
            continue
        then = earlier[evse.key] if earlier is not None and evse.key in earlier else bounds(car, since, reaction)
        for i, site_phase in enumerate(evse.phase_map[:car.phases]):
            out[site_phase] += est.least[i] - then.least[i]
    return out


# --- the meter's fall after a decrease (trusting evidence) ----------------------------------------

# A per phase the building may fall between two readings without counting as a fall (its flicker,
# the meter's resolution): a fall within it is never taken for a car following its lower limit.
FALL_TOLERANCE = 0.5


def _pending_since(car: CarHistory, most: float) -> float | None:
    """When the run of limits below `most` began that the car may still be following down
    (the send of its first): before it, a limit of `most` or more could be in force."""
    start = None
    for c in car.commands:
        if c.accepted is False:
            continue
        if c.limit >= most - 1e-9:
            start = None
        elif start is None:
            start = c.sent_at
    return start


def attribute_falls(topology: Topology, cars: Mapping[EvseKey, CarHistory], estimated: Mapping[EvseKey, Bounds],
                    readings: Mapping[str, tuple[MeterReading, ...]], at: float,
                    reaction: Reaction = Reaction(), plain: Mapping[EvseKey, Bounds] | None = None,
                    credited: dict[float, dict[EvseKey, Bounds]] | None = None) -> dict[EvseKey, Bounds]:
    """Lower `most` of cars lowered within their follow time whose meter shows they followed.

    `bounds` keeps a lowered car at its old limit for the whole follow time, and an
    increase elsewhere must fit with it there (actuation.fit): a car that followed in
    1 s held every other car back 4 s more. Per phase of the nearest meter, from any
    reading since the one before the decrease was sent (`base`) to the latest: the cars
    there draw now at most the meter's change since that reading plus the most they
    could draw at it, so car i draws at most that less the least each other car draws
    now (the lowest such bound over those readings). Each other car's least is its
    own (`bounds`), not the meter's credit to it (attribute_rises): that credit holds
    for the cars' sum, not for each car.

    Trusted evidence: the building did not fall by more than FALL_TOLERANCE since
    `base`; a car known to draw evenly on two or three phases draws on each within
    DRAW_TOLERANCE of the others, so the phase that bounds it best bounds them all.
    A car is credited only when that bound shows it draws less than it
    drew at `base` or at a reading since (its `least` then, with the meter's rise
    credited to it then: a car lowered while it ramps up has no sample yet, and
    ramps on before it follows), by more than
    DRAW_TOLERANCE: it came down, which a car does only for a lower limit (or a
    reported stop), and then draws no more than the higher of that bound and the
    limits that can be in force from now. If the building fell as the car was
    lowered and the car did not follow, the room is overestimated by at most the
    decrease, and only until the follow time ends (when `bounds` says the same):
    inside the reaction window. A building that rose hides the fall: no credit, as
    `bounds` alone."""
    out = dict(estimated)
    # Per (meter, reading instant) and site phase: the most every car under the meter could draw then.
    most_then: dict[tuple[str, float], list[float]] = {}
    least_now: dict[str, list[float]] = {}
    # Each car's least by `bounds` alone (`plain`: those bounds, when the caller has them).
    own: dict[EvseKey, tuple[float, ...]] = {k: b.least for k, b in (plain or {}).items()}
    under_meter: dict[str, list] = {}
    credited = {} if credited is None else credited

    for evse in topology.evses:
        car, est = cars.get(evse.key), estimated.get(evse.key)
        lowered = _lowered(topology, evse, car, est, readings, at, reaction.follow)
        if lowered is None:
            continue
        assert car is not None and est is not None
        meter, base, now_reading = lowered
        high = _highest(car, at, at)
        history = readings[meter]
        if meter not in under_meter:
            under_meter[meter] = [e for e in topology.evses_under(meter) if e.key in cars and e.key in estimated]
        under = under_meter[meter]
        if meter not in least_now:
            for other in under:
                if other.key not in own:
                    own[other.key] = bounds(cars[other.key], at, reaction).least
            least_now[meter] = _on_site_phases(under, cars, lambda e, i: own[e.key][i])
        bound = [math.inf] * car.phases
        for r in history:
            if not base.at <= r.at < now_reading.at:
                continue
            if (meter, r.at) not in most_then:
                highest = {e.key: _highest(cars[e.key], r.at - reaction.follow, r.at) for e in under}
                most_then[(meter, r.at)] = _on_site_phases(under, cars, lambda e, i: highest[e.key])
            for i in range(car.phases):
                p = evse.phase_map[i]
                others = least_now[meter][p] - (own[evse.key][i] if i < _drawn_on(car) else 0.0)
                bound[i] = min(bound[i], now_reading.currents[p] - r.currents[p] + FALL_TOLERANCE
                               + most_then[(meter, r.at)][p] - others)
        n = _drawn_on(car)
        if car.phases_in_use is not None and n >= 2:
            # A car known to draw evenly on its phases falls on all of them at once: a building step on
            # one phase hides its fall there, not on the others (the real-time `second_step`: a paused
            # car, at 0 A on L1 and L3, counted 7 A on L2, where the building had stepped up).
            even = min(bound[:n]) + DRAW_TOLERANCE
            bound = [min(b, even) for b in bound[:n]] + bound[n:]
        # It drew at least this at `base`, or at a reading since (with what the meter's rise credited it
        # then: a car lowered while ramping up has no sample yet, and may ramp on after the decrease
        # left, before it follows): more than the bound now by DRAW_TOLERANCE shows it came down.
        # The meter's credit at a reading is worked out only for a car that may be ramping then, and
        # only at the readings where it can be highest: besides `base`, the highest on each phase.
        window = [r for r in history if base.at <= r.at < now_reading.at]
        tried = {base.at: base}
        tried.update({r.at: r for r in (max(window, key=lambda r, p=p: r.currents[p]) for p in range(3))})
        came_down = False
        for r in tried.values():
            sample = _sample(car, r.at, reaction.follow)
            if r is base or _ramp(car, -math.inf if sample is None else sample.at - sample.interval, r.at,
                                  reaction.follow) is not None:
                drew = _credited(topology, cars, readings, r.at, reaction, credited)[evse.key].least
            else:
                drew = bounds(car, r.at, reaction).least
            if any(b < v - DRAW_TOLERANCE for b, v in zip(bound, drew)):
                came_down = True
                break
        if not came_down:
            continue
        most = tuple(max(lo, min(hi, max(high, b))) for lo, hi, b in zip(est.least, est.most, bound))
        out[evse.key] = replace(est, most=most)
    return out


def _lowered(topology: Topology, evse: Any, car: CarHistory | None, est: Bounds | None,
             readings: Mapping[str, tuple[MeterReading, ...]], at: float, follow: float = Reaction.follow
             ) -> tuple[str, MeterReading, MeterReading] | None:
    """For a car lowered within its follow time (it may still draw more than the limits that can
    be in force now): its nearest meter, that meter's reading before the first of those decreases
    was sent (strictly before: a reading at that instant may show it in force already), and its
    latest reading, when it is later.

    A decrease sent while the car may still have been following an earlier one counts from the
    earlier one: at the reading before the later one the car may still have drawn the earlier,
    higher limit, while `bounds` has it at the limit in force then. Counted from there, cars
    lowered from 11.7 A to 8.5 A and a second later to 8.4 A (then paused) drew 8.5 A at `base`
    by `bounds`, their fall from 11.7 A was taken from what the meter showed, and nothing was
    left to hold (real-time `second_step`: all three cars paused for 5 s)."""
    if car is None or est is None or not est.most:
        return None
    top = max(est.most)
    if top <= _highest(car, at, at) + 1e-9:
        return None
    since = _pending_since(car, top)
    while since is not None:
        earlier = _highest(car, since - follow, since)
        if earlier <= top + 1e-9:
            break
        top, since = earlier, _pending_since(car, earlier)
    if since is None:
        return None
    return _since_reading(topology, evse, readings, at, lambda rs: _reading_at(rs, since - 1e-6))


def _since_reading(topology: Topology, evse: Any, readings: Mapping[str, tuple[MeterReading, ...]], at: float,
                   pick: Callable[[tuple[MeterReading, ...]], MeterReading | None]
                   ) -> tuple[str, MeterReading, MeterReading] | None:
    """The car's nearest meter, the reading `pick` chooses among its readings, and its latest
    reading by `at`, when that is later."""
    meter = _nearest_meter(topology, evse.circuit, readings)
    if meter is None:
        return None
    base, now_reading = pick(readings[meter]), _reading_at(readings[meter], at)
    if base is None or now_reading is None or now_reading.at <= base.at:
        return None
    return meter, base, now_reading


# A car's least fades by the taper from its latest sample on; once it has faded this much (A), the
# meter's steady phases may say more (attribute_holds): 10 s after the sample at 0.05 A/s. Fresher,
# the meter's own noise over the same time says no more than the taper.
FADE_HOLD = 0.5


def _fading(topology: Topology, evse: Any, car: CarHistory, est: Bounds | None,
            readings: Mapping[str, tuple[MeterReading, ...]], at: float, reaction: Reaction
            ) -> tuple[str, MeterReading, MeterReading] | None:
    """For a car whose latest sample is old enough that its least has faded by FADE_HOLD (a
    charger offline, or one sending MeterValues seldom): its nearest meter, the first reading
    kept from that sample on, and the latest reading, when it is later."""
    sample = _sample(car, at, reaction.follow)
    if est is None or sample is None or reaction.taper * (at - sample.at) < FADE_HOLD:
        return None
    return _since_reading(topology, evse, readings, at, lambda rs: next((r for r in rs if r.at >= sample.at), None))


def _credited(topology: Topology, cars: Mapping[EvseKey, CarHistory], readings: Mapping[str, tuple[MeterReading, ...]],
              t: float, reaction: Reaction, cache: dict[float, dict[EvseKey, Bounds]]) -> dict[EvseKey, Bounds]:
    """Every car's interval at instant `t` with the meters' rises credited then (once per instant)."""
    if t not in cache:
        upto = {c: tuple(x for x in rs if x.at <= t) for c, rs in readings.items()}
        cache[t] = attribute_rises(topology, cars, {k: bounds(c, t, reaction) for k, c in cars.items()}, upto, t,
                                   reaction, depth=0)
    return cache[t]


def attribute_holds(topology: Topology, cars: Mapping[EvseKey, CarHistory], estimated: Mapping[EvseKey, Bounds],
                    readings: Mapping[str, tuple[MeterReading, ...]], at: float,
                    reaction: Reaction = Reaction(), credited: dict[float, dict[EvseKey, Bounds]] | None = None
                    ) -> dict[EvseKey, Bounds]:
    """Raise `least` of cars lowered within their follow time that their meter shows have not followed,
    and of cars whose least faded since an old sample that their meter shows have not fallen.

    `bounds` has a lowered car at its new limit at once (it may have followed), so until its
    next sample what it still draws above that is building load: a building step while the
    cars react lowered them again for it, and then paused them (the real-time `step_in_ramp`:
    both cars paused for 7 s for a 16 A step on L2 that left room for both at 6.5 A). A car
    known to draw evenly on its two or three phases falls on all of them at once, so a phase
    the building did not rise on shows how far it fell: no more than the meter fell there
    since the reading before the decrease (`base`; its lowest reading since), plus what the
    other cars there may have risen since (their most now less their least then). The
    building may have risen on some of its phases, so the highest of those bounds is taken.

    Cars drawing on all three phases of the same meter are taken together (`base`: the reading
    before the first of their decreases): what one of them gave up shows on every phase, and
    cannot be told from another's. Their sum falls no more than that bound; it is shared out
    over them in proportion to how far each could still fall (down to its least by `bounds`,
    up to what it drew at `base` with the meter's credit then), so the building's load, the
    meter less their sum, is never underestimated; each car's own least may then be above what
    that car draws, never their sum. A 2-phase car is bounded alone on its two phases.

    A car whose latest sample is old (a charger offline keeps its car charging on its profile and
    sends nothing; one sending MeterValues seldom) counts at that sample less the taper since,
    by `bounds`: 3 A less after a minute, taken for building load (the real-time
    `offline_charger`: the car left charging lowered by as much). From the first reading kept
    since that sample (`_fading`), it is bounded the same way, and joins the cars of its meter.

    Trusted evidence: the building did not rise since `base` on every phase at once, as much as
    the cars fell. A step on one or two phases is never hidden: on the other phases the meter
    shows whether they fell. If a step on every phase matched their fall, the building is
    underestimated by at most the decreases, and only until the follow time ends, when
    `bounds` alone has the cars at their new limits: inside the reaction window. A faded car
    held so is still reserved at its limit: the building's load is underestimated by no more
    than that car's slack under it, so nothing is over its fuse until the car rises again, and
    that rise is on the meter like any building step."""
    out = dict(estimated)
    credited = {} if credited is None else credited     # the meters' credit per instant, shared with attribute_falls
    groups: dict[tuple[str, ...], list[tuple[Any, MeterReading, MeterReading]]] = {}
    for evse in topology.evses:
        car, est = cars.get(evse.key), estimated.get(evse.key)
        if car is None or car.phases_in_use is None or _drawn_on(car) < 2:
            continue
        lowered = (_lowered(topology, evse, car, est, readings, at, reaction.follow)
                   or _fading(topology, evse, car, est, readings, at, reaction))
        if lowered is None:
            continue
        meter, base, now_reading = lowered
        sites = tuple(sorted(set(evse.phase_map[:_drawn_on(car)])))
        # On all three site phases: one group per meter; otherwise the car alone.
        groups.setdefault((meter,) if len(sites) == 3 else (meter, *evse.key), []).append((evse, base, now_reading))
    for key, members in groups.items():
        meter = key[0]
        base = min((b for _, b, _ in members), key=lambda r: r.at)
        now_reading = members[0][2]
        then = _credited(topology, cars, readings, base.at, reaction, credited)
        inside = {e.key for e, _, _ in members}
        phases = sorted({e.phase_map[i] for e, _, _ in members for i in range(_drawn_on(cars[e.key]))})
        since = [r for r in readings[meter] if base.at <= r.at <= now_reading.at]
        # Per site phase: what the other cars under the meter may have risen since `base`.
        others = _on_site_phases(
            [e for e in topology.evses_under(meter) if e.key not in inside and e.key in cars and e.key in estimated],
            cars, lambda e, j: max(0.0, estimated[e.key].most[j] - then[e.key].least[j])
            if j < len(then[e.key].least) else 0.0)
        fell = max([0.0] + [base.currents[q] - min(r.currents[q] for r in since) + others[q] for q in phases])
        # Together they draw at least what they drew at `base` less `fell`; each at least its least
        # by `bounds` (`floors`), which may be above that, and no more than it drew at `base` nor
        # than it may draw now (`tops`). What they drew at `base` is not capped by what they may
        # draw now: cars lowered from 11.7 A to 8.5 A and then paused, drawing 11.7 A at `base`,
        # counted 8.5 A there, their 3.2 A of fall each was taken from what the meter showed, and
        # nothing was left to hold: all three cars of the real-time `second_step` were paused.
        floors = {e.key: min(estimated[e.key].least[:_drawn_on(cars[e.key])]) for e, _, _ in members}
        drew = {e.key: min(then[e.key].least[:_drawn_on(cars[e.key])]) for e, _, _ in members}
        tops = {k: min(drew[k], min(estimated[k].most[:_drawn_on(cars[k])])) for k in inside}
        extra = sum(drew.values()) - fell - sum(floors.values())
        room = sum(max(0.0, tops[k] - floors[k]) for k in inside)
        if extra <= 1e-9 or room <= 1e-9:
            continue
        share = min(1.0, extra / room)
        for evse, _, _ in members:
            est = estimated[evse.key]
            n = _drawn_on(cars[evse.key])
            raised = floors[evse.key] + share * max(0.0, tops[evse.key] - floors[evse.key])
            least = tuple(max(lo, raised) if i < n else lo for i, lo in enumerate(est.least))
            if least != est.least:
                out[evse.key] = replace(est, least=least)
    return out


def _on_site_phases(evses: Iterable[Any], cars: Mapping[EvseKey, CarHistory],
                    amps: Callable[[Any, int], float]) -> list[float]:
    """Per site phase, the sum of `amps(evse, i)` over the charger phases i each car draws on."""
    sums = [0.0, 0.0, 0.0]
    for evse in evses:
        for i, p in enumerate(evse.phase_map[:_drawn_on(cars[evse.key])]):
            sums[p] += amps(evse, i)
    return sums


def _nearest_meter(topology: Topology, circuit_id: str, readings: Mapping[str, Any]) -> str | None:
    for c in topology.paths[circuit_id]:
        if topology.by_id[c].meter is not None and readings.get(c):
            return c
    return None


def estimate_site(topology: Topology, cars: Mapping[EvseKey, CarHistory],
                  readings: Mapping[str, tuple[MeterReading, ...]], at: float,
                  reaction: Reaction = Reaction(), depth: int = 1) -> dict[EvseKey, Bounds]:
    """Every car's interval at `at`: `bounds`, narrowed by the meters' rises
    (`attribute_rises`) and falls (`attribute_falls`). A connector without a car
    is not in `cars`: it draws nothing."""
    estimated = {key: bounds(car, at, reaction) for key, car in cars.items()}
    # A meter with a car under it that does not follow its limits says nothing of the others.
    untrusted = {c for c in readings if _disobeyed(topology, cars, c, at, reaction.follow)}
    if untrusted:
        readings = {c: rs for c, rs in readings.items() if c not in untrusted}
    risen = attribute_rises(topology, cars, estimated, readings, at, reaction, depth)
    credited: dict[float, dict[EvseKey, Bounds]] = {}
    held = attribute_holds(topology, cars, risen, readings, at, reaction, credited)
    return attribute_falls(topology, cars, held, readings, at, reaction, estimated, credited)


# --- the building's load --------------------------------------------------------------------------

def building_load(topology: Topology, meters: Mapping[str, Phases | None], estimated: Mapping[EvseKey, Bounds]
                  ) -> dict[str, tuple[list[float], bool]]:
    """Circuit -> (building load per site phase, failsafe?): the meter minus the
    least the cars under it can be drawing. It is `allocate.unmanaged_load` with
    each car's `least` as what it measured, as the manager hands it over."""
    states = {e.key: ConnectorState(key=e.key, measured=estimated[e.key].least if e.key in estimated else ())
              for e in topology.evses}
    return unmanaged_load(topology, meters, states)


# --- from OCPP samples --------------------------------------------------------------------------

def sample_from_meter_values(samples: Iterable[Any], phases: int, at: float, interval: float) -> Sample | None:
    """A `Sample` from one MeterValues' sampled values (objects with measurand,
    phase, unit, value). Per-phase Current.Import counts per phase; an
    un-phased current or the power bounds only the sum (an un-phased current
    may be one phase's, the mean or the sum: the sum is at least it)."""
    per_phase: dict[int, float] = {}
    total = None
    for s in samples:
        value = s.value if math.isfinite(s.value) else 0.0
        if s.measurand == "Current.Import" and s.unit in (None, "A"):
            phase = (s.phase or "").split("-")[0]
            if phase in ("L1", "L2", "L3") and int(phase[1]) <= phases:
                per_phase[int(phase[1]) - 1] = max(0.0, value)
            elif not s.phase:
                total = max(total or 0.0, value)
        elif s.measurand == "Power.Active.Import" and not s.phase and s.unit in (None, "W"):
            total = max(total or 0.0, value / MAX_VOLTAGE)
    if per_phase:
        return Sample(at, tuple(per_phase.get(p, 0.0) for p in range(phases)), None, interval)
    if total is not None:
        return Sample(at, None, max(0.0, total), interval)
    return None
