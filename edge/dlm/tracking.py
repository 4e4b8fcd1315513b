"""What the load manager keeps of each connector, and how it becomes the
estimator's history of the car (edge.dlm.estimate). Pure but for the
dataclasses' mutation by the manager."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from edge.dlm.actuation import Held
from edge.dlm.estimate import CarHistory, Command, Sample
from edge.dlm.model import Evse

# A sample's window when there is no earlier one to bound it (s): as long as chargers are
# usually configured for, so a first sample is not read as the car's draw of this instant.
FIRST_WINDOW = 60.0
# A sample may reach the edge this long after its window ended (s).
DELIVERY_LAG = 1.0
# A car's phases are learned from the first sample showing any current: a phase counts when it
# draws at least this share of the busiest one (cars draw their phases evenly, also mid-ramp) ...
PHASE_SHARE = 0.5
# ... and the busiest draws at least this much (A): below it a meter's noise could mislead.
PHASE_NOISE = 0.3
# A car drawing this much less than its limit is taken to want no more (fair strategy): it is
# held at what it draws plus HELD_OVER (half of this), the rest goes to other cars.
DEMAND_SLACK = 2.0
HELD_OVER = DEMAND_SLACK / 2
# Once held there, it still takes no more while it draws at least this much under that limit:
# a car at its own maximum (16 A on a 32 A wallbox, held at 17 A) stays held, rather than being
# released at the next sample (16 A is not 2 A under 17 A), raised, and found out again.
DEMAND_KEEP = 0.5


@dataclass
class Track:
    """One connector as the load manager follows it."""

    transaction_id: int | None = None
    priority: bool = False
    arrived: float = 0.0
    status: str = "Available"
    measured: tuple[float, ...] = ()
    measured_at: float = -math.inf
    phases: int | None = None          # learned for the running session
    held: Held | None = None
    running_since: float | None = None
    paused_since: float | None = None
    strikes: int = 0
    over_limit: bool = False
    # For the estimator: the limits sent in this session (with their answers), the
    # latest samples, and the last report that the car stopped drawing on its own.
    commands: tuple[Command, ...] = ()
    samples: tuple[Sample, ...] = ()
    stopped_at: float | None = None
    # For the planner: the session's meterStart and its latest energy register (Wh), so what a
    # declared need still wants is the need less what was delivered.
    start_wh: float | None = None
    register_wh: float | None = None
    # What the car was found to take when it drew clearly less than its limit (`takes`); None: more.
    takes: float | None = None
    # Since when the car has said it takes nothing (SuspendedEV) without drawing since; None: it may draw.
    full_since: float | None = None
    # The most the car was estimated to draw on a phase in this session (A; planner.plan_cars' `drew`):
    # near its EVSE's maximum, the planner counts on that maximum for it in later slots, not 16 A.
    drew: float = 0.0
    # The most the car drew when it was found taking less than its limit in this session (A per phase,
    # `learn_take`; planner.plan_cars' `took`); 0: never found. `takes` forgets it once the car is
    # limited below it (it then draws its limit); the planner keeps counting on it.
    took: float = 0.0


def window(track: Track, now: float) -> float:
    """How long before `now` a sample just received may be averaged over: since the
    one before, or since the session started."""
    last = track.samples[-1].at if track.samples else track.arrived
    return min(FIRST_WINDOW, max(0.0, now - last)) + DELIVERY_LAG


def answered(commands: tuple[Command, ...], sent: Command, at: float, accepted: bool | None
             ) -> tuple[Command, ...]:
    """The commands with `sent` (the same object) given its answer."""
    return tuple(replace(c, answered_at=at, accepted=accepted) if c is sent else c for c in commands)


def history(evse: Evse, track: Track, *, initial: float, steered: bool, now: float, booted_at: float | None
            ) -> CarHistory:
    """The estimator's view of the car on `evse`.

    `initial` is the limit in force before this session's first command (the
    default profile accepted on this connection, else the EVSE's maximum);
    `steered`: the charger applies our commands (takes profiles, not caught
    over its limit). A held limit whose TxProfile ran out, or a reboot after
    the last command, leaves the charger on `initial` from then."""
    commands = track.commands
    if not steered:
        return CarHistory(phases=len(evse.phase_map), max_current=evse.max_current, initial=evse.max_current,
                          samples=track.samples, stopped_at=track.stopped_at, phases_in_use=track.phases)
    held = track.held
    if held is not None and now >= held.expires_at:
        commands += (Command(initial, held.expires_at),)
    if booted_at is not None and commands and booted_at >= commands[-1].sent_at:
        commands += (Command(initial, booted_at, booted_at, True),)
    # Before its session the car drew nothing; from its start (a charger may start the energy a moment
    # before it reports it) what the default profile allows: so the meter's rise at a start is the car
    # ramping up (estimate.attribute_rises), like the rise after an increase.
    start = track.arrived - 2 * DELIVERY_LAG
    commands = (Command(initial, start, start, True), *commands)
    return CarHistory(phases=len(evse.phase_map), max_current=evse.max_current, initial=0.0,
                      commands=commands, samples=track.samples, stopped_at=track.stopped_at,
                      phases_in_use=track.phases)


# Samples are kept this far back (s): as far as the load manager keeps the meter's readings. The rise
# credited to a car just raised is the meter's rise less what the other cars' estimates rose since the
# increase; with only the latest two samples, a car whose sample before the increase was dropped looked
# as if it had risen from 0 A to its whole draw, the raised car got no credit, its draw was taken for
# building load and it was paused again (every 9 to 10 s in the real-time `phases` scenario).
SAMPLES_KEPT = 30.0


def prune(track: Track, now: float, follow: float) -> None:
    """Keep the samples from the latest one taken SAMPLES_KEPT before `now` on (the latest two at
    least), and the commands from the last one settled (accepted and answered) before what the
    latest two samples and the meter readings kept (as far back) need: like estimate.trim, but
    keeping that command itself rather than an initial.

    The estimator reads the cars at the instant of any reading kept (the one before an increase
    or a decrease, the first since an old sample). A car whose commands from before were dropped
    looked limited to its session's first limit there (0 A on a 0 A default profile), so another
    car's hold counted it as rising by its whole draw since, and held nothing (the real-time
    `offline_charger`)."""
    samples = track.samples
    old = max((i for i, s in enumerate(samples) if s.at <= now - SAMPLES_KEPT), default=0)
    track.samples = samples[min(old, max(0, len(samples) - 2)):]
    before = min([now - SAMPLES_KEPT] + [s.at - s.interval for s in samples[-2:]]) - follow
    settled = None
    for i, c in enumerate(track.commands):
        if c.accepted and c.answered_at is not None and c.answered_at < before:
            settled = i
    if settled:
        track.commands = track.commands[settled:]


def paused_by_us(before: str, track: Track, evse: Evse) -> bool:
    """Whether a status report says only that the charger applied our pause: SuspendedEVSE
    right after Charging, while the latest limit sent (not refused) is below the car's
    minimum, so the charger stops offering current because we told it to.

    Such a stop is already in the estimator's model of that command (the car may drop to
    0 A from its sending on, and no later than the follow time after it was applied); as
    a report of its own it would make every sample before it void, even for the instants
    before the pause: the car drawing 10 A a second earlier counted as 0 A there, that
    phantom building load left no room for it on the meter's steady phases, and all
    three cars of the real-time `second_step` were paused for 5 s where one could keep
    10 A. A car that stops on its own is reported SuspendedEV (or Finishing), and that
    still counts as a stop at any earlier instant."""
    if before != "Charging" or track.status != "SuspendedEVSE":
        return False
    sent = [c for c in track.commands if c.accepted is not False]
    return bool(sent) and sent[-1].limit < evse.min_current - 1e-9


def limit_since(track: Track, limit: float) -> float:
    """Since when the connector's limit has been `limit`: renewals of the same limit do not
    count as a change (the oldest kept command counts as the change when all are renewals).
    Another limit sent after it (on its way, not answered yet) is a change too, from when it
    was sent: else a sample that came while a decrease was on its way counted as the car's
    answer to a limit it had held for ever, and a car resumed a second before, not drawing
    yet, was taken to want 1 A (real-time `step_in_ramp`: held at 6 A for 5 s)."""
    since = -math.inf
    for c in reversed(track.commands):
        if c.accepted is False:
            continue
        if abs(c.limit - limit) > 1e-6:
            return c.sent_at if since == -math.inf else since
        since = c.sent_at
    return since


def takes(track: Track, limit: float, measured: tuple[float, ...], measured_at: float, follow: float
          ) -> float | None:
    """What a car takes when it draws clearly less than its `limit` (pure): its draw plus
    half the slack; None when it may take more. A sample within `follow` of the limit's
    last change says nothing new: what was known stays while the limit is no higher than
    it. A car held at what it takes stays there while it draws DEMAND_KEEP under it, so a
    car at its own maximum is not raised and lowered again every few samples."""
    known = track.takes
    if measured_at - limit_since(track, limit) < follow:
        return known if known is not None and limit <= known + 1e-6 else None
    top = max(measured[:track.phases or len(measured)], default=0.0)
    if top < limit - DEMAND_SLACK:
        return top + HELD_OVER
    if known is not None and limit <= known + 1e-6 and top < limit - DEMAND_KEEP:
        return top + HELD_OVER
    return None


def learn_take(took: float, found: float | None, minimum: float) -> float:
    """The most a car was found to take in its session (Track.took, pure), given what `takes`
    found now: what it drew then (without HELD_OVER). A car found drawing under its `minimum`
    is not charging at a rate (a timer, conditioning the battery), which says nothing of its
    maximum."""
    if found is None or found - HELD_OVER < minimum - 1e-9:
        return took
    return max(took, found - HELD_OVER)


# A sample this high on a phase shows the car draws again (after it said it takes nothing).
DRAWING = 1.0


def resting(full_since: float | None, now: float, after: float | None, every: float) -> bool:
    """Whether a car that said it takes nothing (since `full_since`) is paused now (pure): it
    keeps its minimum for `after` s, then rests, and is offered its minimum again for `after`
    s at the end of every `every` s, so a car waiting on its own timer can start again."""
    if full_since is None or after is None or now - full_since < after:
        return False
    return (now - full_since - after) % every < max(0.0, every - after)


def learn_phases(currents: tuple[float, ...]) -> int | None:
    """How many of the charger's phases the car draws on (its first n), from one
    per-phase sample; None while it draws too little to tell."""
    top = max(currents, default=0.0)
    if top < PHASE_NOISE:
        return None
    drawing = [i for i, a in enumerate(currents) if a >= PHASE_SHARE * top]
    return max(drawing) + 1


def currents_from_samples(samples: list, phases: int) -> tuple[tuple[float, ...], bool] | None:
    """A connector's current per charger phase from one MeterValues, and whether
    it was measured per phase. Current.Import per phase; else one current
    without a phase (or power) taken as every phase's: an upper reading, good
    for what the car takes (demand) but not for which phases it uses."""
    per_phase: dict[int, float] = {}
    unphased = None
    total_power = None
    for s in samples:
        value = s.value if math.isfinite(s.value) else 0.0
        if s.measurand == "Current.Import" and s.unit in (None, "A"):
            phase = (s.phase or "").split("-")[0]
            if phase in ("L1", "L2", "L3"):
                if int(phase[1]) <= phases:
                    per_phase[int(phase[1]) - 1] = max(0.0, value)
            elif not s.phase:
                unphased = max(0.0, value)
        elif s.measurand == "Power.Active.Import" and not s.phase and s.unit in (None, "W"):
            total_power = max(0.0, value)
    if per_phase:
        return tuple(per_phase.get(p, 0.0) for p in range(phases)), True
    if unphased is not None:
        return tuple(unphased for _ in range(phases)), False
    if total_power is not None:
        return tuple(total_power / (230.0 * phases) for _ in range(phases)), False
    return None
