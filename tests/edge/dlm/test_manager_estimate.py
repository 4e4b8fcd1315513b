"""The load manager's bookkeeping for the estimator, without sockets (issue 15,
observations 3 and 5): phases from the first sample, offline chargers reserved
at what their profile allows, a returning car's place, the MeterValues asked."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from edge.clock import ManualClock
from edge.dlm.actuation import Held
from edge.dlm.allocate import allocate
from edge.dlm.config import LoadManagementSection
from edge.dlm.estimate import Command
from edge.dlm.manager import LoadManager
from edge.dlm.model import Circuit, Evse, Inputs, Topology
from edge.dlm.phases import phase_map
from edge.dlm.sampling import sampled_data
from edge.events import Event, EventBus
from edge.journal import Sample

SITE = Topology((Circuit("grid", 40.0, meter=None),),
                (Evse("A", 1, "grid", (0, 1, 2)), Evse("B", 1, "grid", (1, 2, 0))), margin=0.0)


def manager(site: Topology = SITE) -> tuple[LoadManager, ManualClock]:
    clock = ManualClock()
    lm = LoadManager(site, LoadManagementSection(), bus=EventBus(), clock=clock,
                     control=None, journal=None,  # type: ignore[arg-type]
                     meters={}, prioritised=lambda _: False, is_known=lambda _: True)
    for cid in ("A", "B"):
        lm.chargers[cid].online, lm.chargers[cid].default_sent = True, 20.0
    return lm, clock


def event(lm: LoadManager, kind: str, charger: str, **data) -> None:
    lm.on_event(Event(kind, charger, "", data))


def values(tx: int, *currents: float, phased: bool = True) -> list[Sample]:
    return [Sample(1, tx, "", "Current.Import", f"L{i + 1}" if phased else None, a, "A", "Sample.Periodic", "Outlet")
            for i, a in enumerate(currents)]


def test_a_2_phase_car_is_learned_from_its_first_mid_ramp_sample():
    lm, clock = manager()
    event(lm, "transaction.started", "A", connector_id=1, transaction_id=1, id_tag="T")
    clock.advance(1)
    event(lm, "meter.values", "A", connector_id=1, transaction_id=1, samples=values(1, 0.67, 0.67, 0.0))
    assert lm.tracks[("A", 1)].phases == 2
    assert lm._state(("A", 1), clock.monotonic()).phases_in_use == 2


def test_a_current_without_a_phase_teaches_no_phases():
    lm, clock = manager()
    event(lm, "transaction.started", "A", connector_id=1, transaction_id=1, id_tag="T")
    clock.advance(1)
    event(lm, "meter.values", "A", connector_id=1, transaction_id=1, samples=values(1, 16.0, phased=False))
    assert lm.tracks[("A", 1)].phases is None
    # Only the sum is known: a 3-phase charger's phases are each at least 0 A, not 16 A.
    assert lm._state(("A", 1), clock.monotonic()).measured == (0.0, 0.0, 0.0)


def test_an_offline_charger_is_reserved_at_its_profile_until_it_runs_out_and_keeps_its_place():
    lm, clock = manager()
    event(lm, "transaction.started", "A", connector_id=1, transaction_id=1, id_tag="T")
    now = clock.monotonic()
    lm.tracks[("A", 1)].held = Held(7.2, 3, 1, now, now + 120.0)
    lm.tracks[("A", 1)].running_since = now
    clock.advance(10)
    lm._control = type("Gone", (), {"is_connected": staticmethod(lambda _: False)})()  # type: ignore[assignment]
    event(lm, "charger.disconnected", "A")
    state = lm._state(("A", 1), clock.monotonic())
    assert not state.controllable and state.reserve == 7.2
    allocation = allocate(Inputs(SITE, {}, (state, lm._state(("B", 1), clock.monotonic())), clock.monotonic()))
    lm._note_turns(allocation, clock.monotonic())
    # Not paused by us: it keeps running_since, so it is not a newcomer when it is back.
    assert lm.tracks[("A", 1)].running_since == now and lm.tracks[("A", 1)].paused_since is None
    clock.advance(111)                      # its TxProfile ran out: it may draw anything now
    assert lm._state(("A", 1), clock.monotonic()).reserve == 32.0


def test_the_measurands_asked_keep_what_the_charger_sends_within_its_maximum():
    assert sampled_data(["Energy.Active.Import.Register", "SoC", "Voltage"], 8) == (
        "Current.Import,Current.Offered,Power.Active.Import,Energy.Active.Import.Register,SoC,Voltage")
    assert sampled_data(["SoC", "Voltage"], 5) == (
        "Current.Import,Current.Offered,Power.Active.Import,Energy.Active.Import.Register,SoC")


def sender(track, clock):
    """What the manager records when a charger accepted `limit` now (a command and the held limit)."""
    def send(limit: float) -> None:
        now = clock.monotonic()
        track.commands += (Command(limit, now, now, True),)
        track.held = Held(limit, 3, 1, now, now + 120.0)
    return send


def started_car():
    """manager() with a session running on A, and what records a limit its charger accepted."""
    lm, clock = manager()
    event(lm, "transaction.started", "A", connector_id=1, transaction_id=1, id_tag="T")
    track = lm.tracks[("A", 1)]
    return lm, clock, track, sender(track, clock)


def test_a_car_at_its_own_maximum_stays_held_at_what_it_takes():
    """A 16 A car on a 32 A wallbox: found to take about 17 A, held there, and kept there by its
    next samples (16 A is not 2 A under 17 A), rather than raised to its share and found out again;
    renewing the same limit is no change. Once it draws up to its limit, it may take more."""
    lm, clock, track, send = started_car()

    send(20.0)
    clock.advance(10)
    event(lm, "meter.values", "A", connector_id=1, transaction_id=1, samples=values(1, 16.0, 16.0, 16.0))
    assert lm._state(("A", 1), clock.monotonic()).demand == 17.0
    send(17.0)
    for _ in range(4):
        clock.advance(10)
        event(lm, "meter.values", "A", connector_id=1, transaction_id=1, samples=values(1, 16.0, 16.0, 16.0))
        assert lm._state(("A", 1), clock.monotonic()).demand == 17.0
        send(17.0)                                  # a renewal: the same limit
    clock.advance(10)
    event(lm, "meter.values", "A", connector_id=1, transaction_id=1, samples=values(1, 16.9, 16.9, 16.9))
    assert lm._state(("A", 1), clock.monotonic()).demand is None


class _Meter:
    def __init__(self, current, at):
        self.latest = type("Reading", (), {"current": current, "at": at})()
        self.config = type("Config", (), {"period": 1.0})()


def metered_manager() -> tuple[LoadManager, ManualClock, _Meter]:
    """SITE's two chargers under a metered grid circuit (40 A, no margin), the meter reading 26 A."""
    site = Topology((Circuit("grid", 40.0, meter="m"),), SITE.evses, margin=0.0)
    clock = ManualClock()
    meter = _Meter((26.0, 26.0, 26.0), 0.0)
    lm = LoadManager(site, LoadManagementSection(), bus=EventBus(), clock=clock, control=None,  # type: ignore[arg-type]
                     journal=None, meters={"grid": meter},  # type: ignore[arg-type]
                     prioritised=lambda _: False, is_known=lambda _: True)
    return lm, clock, meter


def one_car_charging(amps: float):
    """metered_manager with car A charging at `amps` (its limit since 0 s), its sample at 5 s saying so."""
    lm, clock, meter = metered_manager()
    lm.chargers["A"].online, lm.chargers["A"].default_sent = True, 20.0
    event(lm, "transaction.started", "A", connector_id=1, transaction_id=1, id_tag="T")
    track = lm.tracks[("A", 1)]
    track.commands = (Command(amps, clock.monotonic(), clock.monotonic(), True),)
    clock.advance(5)
    event(lm, "meter.values", "A", connector_id=1, transaction_id=1, samples=values(1, amps, amps, amps))
    return lm, clock, meter, track


def test_the_building_is_the_reading_less_what_the_cars_drew_at_that_reading():
    """A limit lowered after the meter's reading does not count until a reading after it: else the lowered
    car's drop counted as building load before any reading could show it, the next evaluation lowered it
    again, and so on (60 decreases of 0.1 A in 0.3 s, or every car paused one after another)."""
    lm, clock, meter, track = one_car_charging(16.0)
    clock.advance(0.5)
    meter.latest.at = clock.monotonic()                     # 10 A of building + the car's 16 A
    lm.record_reading("grid", meter.latest.at, meter.latest.current)
    clock.advance(0.3)
    track.commands += (Command(8.0, clock.monotonic()),)    # lowered after that reading, no reading since
    lm._changes += 1
    now = clock.monotonic()
    assert lm.estimates(now)[("A", 1)].least[0] > 15.0
    assert lm.estimates(now)[("A", 1)].most == (16.0, 16.0, 16.0)
    clock.advance(0.7)
    meter.latest.at = clock.monotonic()                     # a reading after the decrease: it may have followed
    lm.record_reading("grid", meter.latest.at, meter.latest.current)
    assert lm.estimates(clock.monotonic())[("A", 1)].least == (8.0, 8.0, 8.0)


def test_a_car_that_takes_nothing_is_paused_after_a_while_and_offered_its_minimum_again():
    """A full car (SuspendedEV) keeps its minimum for `full_pause_after`, then its 6 A go to the
    other cars; its minimum is offered again at the end of every `rotate_after`, and a car that
    draws again is a car like any other (issue 15: on the working day the full cars' minimums were
    the largest share of what `fair` left unused)."""
    lm, clock = manager()
    assert (lm.settings.full_pause_after, lm.settings.rotate_after) == (60.0, 900.0)
    event(lm, "transaction.started", "A", connector_id=1, transaction_id=1, id_tag="T")
    event(lm, "connector.status", "A", connector_id=1, status="SuspendedEV")
    start = clock.monotonic()

    def decision_at(t: float):
        clock.advance(start + t - clock.monotonic())
        now = clock.monotonic()
        states = tuple(lm._state(k, now) for k in (("A", 1), ("B", 1)))
        return allocate(Inputs(SITE, {}, states, now, "fair", lm.settings.rotate_after)).decisions[("A", 1)]

    assert decision_at(30.0).limit == 6.0                       # it may only be pausing: its minimum
    paused = decision_at(61.0)
    assert paused.limit == 0.0 and paused.reason.startswith("paused: the car takes nothing")
    # Paused by us, the charger reports SuspendedEVSE: still a car that said it takes nothing.
    event(lm, "connector.status", "A", connector_id=1, status="SuspendedEVSE")
    assert decision_at(600.0).limit == 0.0
    assert decision_at(60.0 + 840.0 + 1.0).limit == 6.0        # offered again for 60 s ...
    assert decision_at(60.0 + 900.0 + 1.0).limit == 0.0        # ... and paused again
    # Offered again, it draws: it takes what it is given, like any car.
    decision_at(60.0 + 1800.0 - 30.0)
    event(lm, "meter.values", "A", connector_id=1, transaction_id=1, samples=values(1, 6.0, 6.0, 6.0))
    assert lm.tracks[("A", 1)].full_since is None
    assert decision_at(60.0 + 1800.0 + 30.0).limit > 6.0


def test_the_full_car_pause_can_be_turned_off():
    lm, clock = manager()
    lm.settings = LoadManagementSection(full_pause_after=None)
    event(lm, "transaction.started", "A", connector_id=1, transaction_id=1, id_tag="T")
    event(lm, "connector.status", "A", connector_id=1, status="SuspendedEV")
    clock.advance(3600)
    state = lm._state(("A", 1), clock.monotonic())
    assert state.demand == 0.0 and not state.resting


@contextmanager
def planner_told(name: str):
    """What the load manager hands the planner as keyword `name` (plan_cars' drew or said), one dict per plan."""
    import edge.dlm.manager as manager_module

    told: list[dict] = []
    real = manager_module.targets_now

    def spy(*args, **kwargs):
        told.append(dict(kwargs.get(name) or {}))
        return real(*args, **kwargs)
    manager_module.targets_now = spy
    try:
        yield told
    finally:
        manager_module.targets_now = real


def test_the_most_a_car_drew_in_its_session_reaches_the_planner_and_a_new_session_starts_from_nothing():
    """`scheduled`: what the planner is told a car drew (plan_cars' `drew`, for knowing a 32 A car) is the most
    of the car's estimated draw over its session, kept by the load manager, not only its draw at the plan."""
    lm, clock = manager()
    lm.settings = LoadManagementSection(strategy="scheduled")
    event(lm, "transaction.started", "A", connector_id=1, transaction_id=1, id_tag="T")
    lm.set_needs(1, None, 10_000.0, "api")
    with planner_told("drew") as told:
        clock.advance(1)
        event(lm, "meter.values", "A", connector_id=1, transaction_id=1, samples=values(1, 19.0, 19.0, 19.0))
        now = clock.monotonic()
        lm._plan(tuple(lm._state(k, now) for k in (("A", 1), ("B", 1))), {}, now)
        assert told[-1][("A", 1)] > 18.0          # (its limit is the 20 A default profile)
        clock.advance(6)
        event(lm, "meter.values", "A", connector_id=1, transaction_id=1, samples=values(1, 12.0, 12.0, 12.0))
        lm._needs_version += 1                      # re-plan now
        now = clock.monotonic()
        lm._plan(tuple(lm._state(k, now) for k in (("A", 1), ("B", 1))), {}, now)
        assert told[-1][("A", 1)] > 18.0            # the session's most, not the 12 A of now
        event(lm, "transaction.started", "A", connector_id=1, transaction_id=2, id_tag="T")
        assert lm.tracks[("A", 1)].drew == 0.0


def test_the_maximum_a_car_said_reaches_the_planner_until_its_transaction_stops():
    lm, clock = manager()
    lm.settings = LoadManagementSection(strategy="scheduled")
    lm.set_car_max(("A", 1), 16.0)                  # ISO 15118 speaks before the transaction starts
    event(lm, "transaction.started", "A", connector_id=1, transaction_id=1, id_tag="T")
    lm.set_needs(1, None, 10_000.0, "api")
    with planner_told("said") as told:
        now = clock.monotonic()
        lm._plan(tuple(lm._state(k, now) for k in (("A", 1), ("B", 1))), {}, now)
        assert told[-1] == {("A", 1): 16.0}
    event(lm, "transaction.stopped", "A", connector_id=1, transaction_id=1)
    assert ("A", 1) not in lm.car_max
    lm.set_car_max(("A", 1), float("nan"))          # nothing usable said: nothing kept
    assert ("A", 1) not in lm.car_max


def test_a_resumed_car_ramping_up_is_credited_while_another_car_draws_steadily():
    """The meter's rise after a car is resumed is credited to it (estimate.attribute_rises) less what the
    other cars' estimates rose since; a car drawing a steady 16 A had risen by nothing, also when its
    sample before the resume is older than the latest two (it was dropped, and the car looked as if it had
    risen from 0 A to 16 A: the resumed car got no credit, its draw was taken for building load, and it
    was paused again, every 9 to 10 s in the real-time `phases` scenario)."""
    lm, clock, meter = metered_manager()
    for cid, tx in (("A", 1), ("B", 2)):
        lm.chargers[cid].online, lm.chargers[cid].default_sent = True, 20.0
        event(lm, "transaction.started", cid, connector_id=1, transaction_id=tx, id_tag="T")
    lm.tracks[("A", 1)].commands = (Command(16.0, 0.0, 0.0, True),)
    lm.tracks[("B", 1)].commands = (Command(8.0, 0.0, 0.0, True),)

    def until(t: float, building_and_cars: float) -> None:
        while clock.monotonic() < t - 1e-9:
            clock.advance(0.5)
            meter.latest.current, meter.latest.at = (building_and_cars,) * 3, clock.monotonic()
            lm.record_reading("grid", meter.latest.at, meter.latest.current)
            if clock.monotonic() % 5 == 0:
                event(lm, "meter.values", "A", connector_id=1, transaction_id=1, samples=values(1, 16.0, 16.0, 16.0))
                if clock.monotonic() <= 15:                # B's next sample comes after 20.5 s
                    b = 8.0 if clock.monotonic() <= 10 else 0.0
                    event(lm, "meter.values", "B", connector_id=1, transaction_id=2, samples=values(2, b, b, b))

    until(10.5, 34.0)                                 # 10 A of building, A 16 A, B 8 A
    lm.tracks[("B", 1)].commands += (Command(0.0, 10.5, 10.5, True),)   # B paused ...
    until(11.0, 34.0)
    event(lm, "connector.status", "B", connector_id=1, status="SuspendedEVSE")
    until(14.5, 26.0)                                 # ... and stopped
    lm.tracks[("B", 1)].commands += (Command(8.0, 14.5, 14.5, True),)   # resumed: it ramps up from 16.5 s
    event(lm, "connector.status", "B", connector_id=1, status="Charging")
    until(16.5, 26.0)
    until(20.5, 34.0)
    lm._changes += 1
    estimated = lm.estimates(clock.monotonic())
    assert estimated[("A", 1)].least[0] > 15.0
    # B's sample since its stop shows nothing (at 15 s, before its ramp), but the meter
    # rose 8 A since it was resumed while A's draw did not: B draws about 8 A, not building load.
    assert estimated[("B", 1)].least[0] > 7.0


def test_what_a_car_was_found_to_take_is_kept_for_the_planner_once_it_is_limited_below_it():
    """A 16 A car found drawing 16 A under a 20 A limit took 16 A; limited to 12 A it draws 12 A and the
    demand is forgotten (`takes`), but Track.took, what the planner counts on for it, stays 16 A."""
    lm, clock, track, send = started_car()

    send(20.0)
    clock.advance(10)
    event(lm, "meter.values", "A", connector_id=1, transaction_id=1, samples=values(1, 16.0, 16.0, 16.0))
    assert (track.takes, track.took) == (17.0, 16.0)
    send(12.0)
    clock.advance(10)
    event(lm, "meter.values", "A", connector_id=1, transaction_id=1, samples=values(1, 12.0, 12.0, 12.0))
    assert (lm._state(("A", 1), clock.monotonic()).demand, track.took) == (None, 16.0)


def test_a_session_starts_with_what_its_tokens_car_drew_before():
    """history.TokenHistory.drew_of: the token's car drew 31.4 A in its last sessions, so its session
    starts with Track.drew 31.4 and the planner counts on its EVSE's 32 A from the start."""
    site = Topology((Circuit("grid", 63.0),), (Evse("A", 1, "grid", phase_map(3), max_current=32.0),), 1.0)
    lm = LoadManager(site, LoadManagementSection(strategy="scheduled"), bus=EventBus(), clock=ManualClock(),
                     control=None, journal=None, meters={}, prioritised=lambda _: False,  # type: ignore[arg-type]
                     is_known=lambda _: True, drew_of=lambda tag: {"REGULAR": 31.4}.get(tag, 0.0))
    event(lm, "transaction.started", "A", connector_id=1, transaction_id=1, id_tag="REGULAR")
    assert lm.tracks[("A", 1)].drew == 31.4
    event(lm, "transaction.started", "A", connector_id=1, transaction_id=2, id_tag="NEWCOMER")
    assert lm.tracks[("A", 1)].drew == 0.0


def test_the_plan_is_made_again_as_soon_as_a_car_shows_what_it_takes():
    """`scheduled`: a car found to take 16 A under a 20 A limit is planned again at once (planner.known_maxima
    changed), with what it took, not at the next period 300 s on."""
    lm, clock = manager()
    lm.settings = LoadManagementSection(strategy="scheduled")
    event(lm, "transaction.started", "A", connector_id=1, transaction_id=1, id_tag="T")
    lm.set_needs(1, None, 10_000.0, "api")
    track = lm.tracks[("A", 1)]
    with planner_told("took") as told:
        now = clock.monotonic()
        lm._plan(tuple(lm._state(k, now) for k in (("A", 1), ("B", 1))), {}, now)
        track.commands += (Command(20.0, now, now, True),)
        track.held = Held(20.0, 3, 1, now, now + 120.0)
        clock.advance(10)
        now = clock.monotonic()
        lm._plan(tuple(lm._state(k, now) for k in (("A", 1), ("B", 1))), {}, now)
        assert len(told) == 1                       # nothing new: the plan holds
        event(lm, "meter.values", "A", connector_id=1, transaction_id=1, samples=values(1, 16.0, 16.0, 16.0))
        clock.advance(1)
        now = clock.monotonic()
        lm._plan(tuple(lm._state(k, now) for k in (("A", 1), ("B", 1))), {}, now)
        assert len(told) == 2 and told[-1] == {("A", 1): 16.0}


def _decide(lm: LoadManager, now: float):
    meters = lm._meter_currents(now)
    states = tuple(lm._state(e.key, now, lm.estimates(now)) for e in lm.topology.evses)
    allocation = allocate(Inputs(lm.capped_topology(), meters, states, now, lm.settings.strategy,
                                 lm.settings.rotate_after, None))
    return allocation, states, meters


def test_an_increase_aims_below_its_decision_only_by_what_the_estimate_fades_before_the_next_sample():
    """Two cars held at 12 A and drawing it, MeterValues every 5 s, 10 A of building: there is room
    for more. The increase sent just after their samples goes as high as the decision less what
    each car's least may still fade (the taper) until its next sample is in, the delivery lag late;
    and until then the decision never falls below it, so the estimate's drift alone undoes nothing.
    (Increases once aimed at the taper over two whole intervals from any instant: about 0.25 A per
    car lower here, and a limit held by hysteresis further down at every later owed increase.)"""
    lm, clock, meter = metered_manager()
    for cid, tx in (("A", 1), ("B", 2)):
        lm.chargers[cid].online, lm.chargers[cid].default_sent = True, 20.0
        event(lm, "transaction.started", cid, connector_id=1, transaction_id=tx, id_tag="T")
        lm.tracks[(cid, 1)].commands = (Command(12.0, 0.0, 0.0, True),)
        lm.tracks[(cid, 1)].held = Held(12.0, 3, tx, 0.0, 120.0)

    def until(t: float) -> None:
        while clock.monotonic() < t - 1e-9:
            clock.advance(0.5)
            meter.latest.current, meter.latest.at = (34.0,) * 3, clock.monotonic()   # 10 A + 2 x 12 A
            lm.record_reading("grid", meter.latest.at, meter.latest.current)
            if clock.monotonic() % 5 == 0 and clock.monotonic() <= 15:
                for cid, tx in (("A", 1), ("B", 2)):
                    event(lm, "meter.values", cid, connector_id=1, transaction_id=tx, samples=values(tx, 12, 12, 12))

    until(15.5)
    now = clock.monotonic()
    allocation, states, meters = _decide(lm, now)
    orders = {o.key: o for o in lm.orders(allocation, states, meters, None, now, -float("inf"))}
    fade_to_next = lm.reaction.taper * (5.0 + 1.0 - 0.5)        # per car, both on every phase
    sent = {}
    for key in (("A", 1), ("B", 1)):
        assert orders[key].kind == "increase"
        assert orders[key].limit >= allocation.decisions[key].limit - fade_to_next - 0.1 - 1e-6  # in tenths
        sent[key] = orders[key].limit
    # Until the next samples are due (the lag late), the decisions stay at or above what was sent.
    while clock.monotonic() < 15.0 + 5.0 + 1.0 - 1e-9:
        until(clock.monotonic() + 0.5)
        lm._changes += 1
        decisions = _decide(lm, clock.monotonic())[0].decisions
        assert all(decisions[key].limit >= sent[key] - 1e-6 for key in sent)


def test_a_car_that_took_nothing_from_its_start_keeps_its_place_once_it_draws():
    """A car that says SuspendedEV from its start (preconditioning, slow to ask) is offered its minimum; when it
    starts to draw it is a car charging, not a newcomer that waits for fair's start margin (it was paused then,
    on a site with room for both cars' minimums but not for the margin)."""
    site = Topology((Circuit("grid", 16.0),), SITE.evses, margin=0.0)
    lm, clock = manager(site)

    def decide():
        now = clock.monotonic()
        states = tuple(lm._state(k, now) for k in (("A", 1), ("B", 1)))
        allocation = allocate(Inputs(site, {}, states, now, "fair", lm.settings.rotate_after))
        lm._note_turns(allocation, now)
        return {k[0]: d.limit for k, d in allocation.decisions.items()}

    event(lm, "transaction.started", "B", connector_id=1, transaction_id=2, id_tag="T")
    assert decide()["B"] == 16.0
    clock.advance(5)
    event(lm, "transaction.started", "A", connector_id=1, transaction_id=1, id_tag="T")
    event(lm, "connector.status", "A", connector_id=1, status="SuspendedEV")
    clock.advance(1)
    assert decide()["A"] == 6.0                     # it may only be pausing: its minimum, and its turn
    clock.advance(20)
    event(lm, "connector.status", "A", connector_id=1, status="Charging")
    event(lm, "meter.values", "A", connector_id=1, transaction_id=1, samples=values(1, 6.0, 6.0, 6.0))
    clock.advance(1)
    assert decide() == {"A": 8.0, "B": 8.0}


def test_a_lowered_car_the_meter_shows_followed_leaves_its_room_before_its_follow_time_ends():
    """The room an increase must fit in counts a lowered car at its old limit until its follow time ends
    (5 s), unless the meter shows it followed (estimate.attribute_falls): then a newcomer starts at
    once (real-time `phases`: car B waited 5 s for car A, which followed in 2)."""
    lm, clock, meter, track = one_car_charging(24.0)

    def reading(amps: float) -> None:
        meter.latest.current, meter.latest.at = (amps,) * 3, clock.monotonic()
        lm.record_reading("grid", meter.latest.at, meter.latest.current)
        lm._changes += 1

    reading(34.0)                                         # 10 A of building and A's 24 A
    clock.advance(0.5)
    track.commands += (Command(12.0, clock.monotonic(), clock.monotonic() + 0.1, True),)    # A lowered
    lm._changes += 1
    clock.advance(0.5)
    reading(34.0)                                         # it has not followed yet
    assert lm.estimates(clock.monotonic())[("A", 1)].most == (24.0, 24.0, 24.0)
    clock.advance(1.0)
    reading(22.0)                                         # it followed: the meter fell 12 A
    assert lm.estimates(clock.monotonic())[("A", 1)].most[0] < 13.0
    # The meter back up as much (the building rose, or A's fall was not A): no credit while it shows no fall.
    reading(34.0)
    clock.advance(0.5)
    reading(34.0)
    assert lm.estimates(clock.monotonic())[("A", 1)].most == (24.0, 24.0, 24.0)


def test_a_decrease_that_only_shares_out_a_phantom_waits_for_the_lowered_car_to_show_its_fall():
    """Car A draws 24 A over 10 A of building on a 40 A grid; B arrives, and A is lowered to its
    share, 15 A. Until the meter shows A's fall, the estimate counts what A draws above 15 A as
    building load (A may have fallen at once while the building rose as much), and sharing what is
    left would lower A again, to 10.5 A: a cascade that gives B nothing sooner, since B's start must
    fit with A at its old 24 A anyway (issue 15, the real-time `offline_charger` and `second_step`).
    Holding A at 15 A fits the room that estimate leaves, so that decrease waits. If the building did
    rise (the meter says so) or A's follow time has passed, the decrease goes as decided. (Once A is
    known to draw on its three phases, the meter's steadiness on them shows it has not fallen, and the
    estimate has no phantom to share out: estimate.attribute_holds.)"""
    def lowered(reading: float, after: float, phases_known: bool = False):
        lm, clock, meter, track = one_car_charging(24.0)
        if not phases_known:
            track.phases = None
        meter.latest.current, meter.latest.at = (34.0,) * 3, clock.monotonic()
        lm.record_reading("grid", meter.latest.at, meter.latest.current)
        lm.chargers["B"].online, lm.chargers["B"].default_sent = True, 20.0
        event(lm, "transaction.started", "B", connector_id=1, transaction_id=2, id_tag="T")
        clock.advance(0.2)
        send = sender(track, clock)
        send(15.0)                                           # A's share with B: (40 - 10) / 2
        decreased_at = clock.monotonic()
        clock.advance(after)
        meter.latest.current, meter.latest.at = (reading,) * 3, clock.monotonic()
        lm.record_reading("grid", meter.latest.at, meter.latest.current)
        now = clock.monotonic()
        allocation, states, meters = _decide(lm, now)
        orders = {o.key: o for o in lm.orders(allocation, states, meters, None, now, decreased_at)}
        return allocation.decisions[("A", 1)].limit, orders.get(("A", 1))

    # A still draws 24 A, the meter unchanged: the estimate wants A at 10.5 A; A keeps 15 A.
    decided, order = lowered(34.0, after=1.0)
    assert decided < 11.0
    assert order is None
    # The building rose by 12 A meanwhile: 15 A for A no longer fits, the decrease goes as decided.
    decided, order = lowered(46.0, after=1.0)
    assert order is not None and order.kind == "decrease" and order.limit == decided < 15.0
    # A's follow time has passed and the meter still shows 24 A for it: that is building load now.
    decided, order = lowered(34.0, after=5.5)
    assert order is not None and order.kind == "decrease" and order.limit == decided < 11.0
    # A known to draw on its three phases: none of them fell, so it has not; no phantom to share out.
    decided, order = lowered(34.0, after=1.0, phases_known=True)
    assert decided == pytest.approx(15.0, abs=0.3) and order is None


def test_a_sample_that_comes_while_a_new_limit_is_on_its_way_teaches_nothing_of_what_the_car_takes():
    """A car paused at 0 A is offered 13 A again; a second later, while a lower limit (12.7 A) is on its
    way, its sample comes in: 0 A, as it had no time to start. That is no answer to any limit, so the car
    is not taken to want 1 A (the real-time `step_in_ramp`: a car resumed that way was held at 6 A for
    5 s). Once the car drew well under a limit it had time to follow, it is."""
    lm, clock, track, send = started_car()
    send(13.4)
    clock.advance(36.0)
    send(0.0)
    clock.advance(6.0)
    send(13.0)
    clock.advance(1.0)
    track.commands += (Command(12.7, clock.monotonic()),)          # sent, no answer yet
    clock.advance(0.05)
    event(lm, "meter.values", "A", connector_id=1, transaction_id=1, samples=values(1, 0.0, 0.0, 0.0))
    assert track.takes is None
    now = clock.monotonic()
    track.commands = (*track.commands[:-1], Command(12.7, now - 0.05, now, True))
    track.held = Held(12.7, 3, 1, now - 0.05, now + 120.0)
    clock.advance(6.0)
    event(lm, "meter.values", "A", connector_id=1, transaction_id=1, samples=values(1, 4.0, 4.0, 4.0))
    assert track.takes == 5.0


def test_a_car_the_edge_paused_counts_as_drawing_until_the_meter_shows_it_fell():
    """A charger applying our 0 A limit reports SuspendedEVSE at once, while the car takes up to 5 s to
    stop. That report is our pause, not a stop the car made: the car's samples still say what it drew
    before it, and the meter's steady phases say it has not fallen yet (estimate.attribute_holds). As a
    stop, every sample was void even for the instants before the pause, the car counted as 16 A of
    building load, and the other cars were paused for it (real-time `second_step`). A car that stops
    on its own (SuspendedEV) may have been at 0 A for a while already: its samples no longer count."""
    lm, clock, meter, track = one_car_charging(16.0)
    event(lm, "connector.status", "A", connector_id=1, status="Charging")

    def reading() -> None:
        clock.advance(0.5)
        lm.record_reading("grid", clock.monotonic(), (26.0, 26.0, 26.0))     # 10 A of building, A 16 A

    for _ in range(4):
        reading()
    track.commands += (Command(0.0, clock.monotonic(), clock.monotonic() + 0.1, True),)   # paused, accepted
    clock.advance(0.2)
    event(lm, "connector.status", "A", connector_id=1, status="SuspendedEVSE")
    reading()
    reading()
    lm._changes += 1
    assert lm.estimates(clock.monotonic())[("A", 1)].least == pytest.approx((16.0, 16.0, 16.0), abs=0.5)

    event(lm, "connector.status", "A", connector_id=1, status="SuspendedEV")
    lm._changes += 1
    assert lm.estimates(clock.monotonic())[("A", 1)].least == (0.0, 0.0, 0.0)
