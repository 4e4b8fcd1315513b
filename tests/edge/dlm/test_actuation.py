"""When a limit is sent: decreases at once, increases paced, renewals before expiry."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.dlm.actuation import Held, Order, Timing, fit, held_after, plan, soften, tx_default_profile, tx_profile
from edge.dlm.model import Decision

KEY = ("A", 1)
TIMING = Timing(hysteresis=1.0, change_interval=5.0, follow_time=5.0, duration=120)


def decide(limit, binding=None, phases=3):
    return {KEY: Decision(KEY, limit, phases, "why", binding)}


def held(limit, sent_at=90.0, tx=7, phases=3):
    return {KEY: Held(limit, phases, tx, sent_at, sent_at + 120)}


def orders(decisions, held_now, now=100.0, last_decrease=-1e9, safe=6.0):
    return [(o.kind, o.limit) for o in plan(decisions, {KEY: 7}, held_now, {KEY: safe}, now, last_decrease, TIMING)]


def test_a_decrease_goes_out_at_once_however_small():
    assert orders(decide(15.9), held(16.0, sent_at=99.9)) == [("decrease", 15.9)]


def test_an_increase_waits_for_the_change_interval():
    assert orders(decide(20.0), held(16.0, sent_at=97.0)) == []
    assert orders(decide(20.0), held(16.0, sent_at=95.0)) == [("increase", 20.0)]


def test_an_increase_waits_until_decreases_elsewhere_took_hold():
    assert orders(decide(20.0), held(16.0), last_decrease=97.0) == []
    assert orders(decide(20.0), held(16.0), last_decrease=94.0) == [("increase", 20.0)]


def test_small_increases_are_not_sent():
    assert orders(decide(16.8), held(16.0, sent_at=94.0)) == []
    assert orders(decide(17.0), held(16.0, sent_at=94.0)) == [("increase", 17.0)]


def test_an_increase_from_below_the_minimum_is_always_sent():
    key_min = {KEY: 6.0}
    got = plan(decide(6.4, binding=("grid", 0)), {KEY: 7}, held(5.9), {KEY: 6.0}, 100.0, -1e9, TIMING, key_min)
    assert [(o.kind, o.limit) for o in got] == [("increase", 6.4)]
    # A circuit-bound increase goes to the computed limit, not short of it (a car must never be left below 6 A).
    assert orders(decide(20.0, binding=("grid", 0)), held(16.0)) == [("increase", 20.0)]


def test_a_paused_car_resumes_even_below_the_hysteresis():
    assert orders(decide(6.0), held(0.0)) == [("increase", 6.0)]


def test_the_first_limit_of_a_session_starts_from_the_safe_share():
    assert orders(decide(0.0), {}, safe=6.0) == [("decrease", 0.0)]
    assert orders(decide(6.0), {}, safe=6.0) == [("decrease", 6.0)]
    assert orders(decide(32.0), {}, safe=6.0) == [("increase", 32.0)]


def test_a_limit_is_renewed_before_it_runs_out():
    assert orders(decide(16.0), held(16.0, sent_at=50.0)) == []                # 70 s left of 120
    assert orders(decide(16.0), held(16.0, sent_at=30.0)) == [("renew", 16.0)]  # 50 s left: renew at half time


def test_a_new_transaction_on_the_connector_gets_its_own_limit():
    assert orders(decide(10.0), held(10.0, tx=6), safe=16.0) == [("decrease", 10.0)]


def test_a_learned_1_phase_car_gets_numberphases_1():
    assert orders(decide(16.0, phases=1), held(16.0)) == [("decrease", 16.0)]


def test_no_increase_goes_out_with_a_decrease():
    decisions = {("A", 1): Decision(("A", 1), 20.0, 3, "x"), ("B", 1): Decision(("B", 1), 10.0, 3, "y")}
    current = {("A", 1): Held(10.0, 3, 1, 90.0, 210.0), ("B", 1): Held(20.0, 3, 2, 90.0, 210.0)}
    got = plan(decisions, {("A", 1): 1, ("B", 1): 2}, current, {}, 100.0, -1e9, TIMING)
    assert [(o.key[0], o.kind) for o in got] == [("B", "decrease")]
    later = plan(decisions, {("A", 1): 1, ("B", 1): 2}, {**current, ("B", 1): Held(10.0, 3, 2, 100.0, 220.0)},
                 {}, 106.0, 100.5, TIMING)
    assert [(o.key[0], o.kind) for o in later] == [("A", "increase")]


def test_profiles_in_amps_or_watts():
    [order] = plan(decide(16.0), {KEY: 7}, {}, {KEY: 32.0}, 0.0, -1e9, TIMING)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    body = tx_profile(order, start=start, duration=120, stack_level=2)
    profile = body["csChargingProfiles"]
    assert (profile["chargingProfilePurpose"], profile["transactionId"], profile["stackLevel"]) == ("TxProfile", 7, 2)
    assert profile["chargingSchedule"] == {"chargingRateUnit": "A", "duration": 120,
                                           "startSchedule": "2026-01-01T00:00:00.000Z",
                                           "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0,
                                                                       "numberPhases": 3}]}
    watts = tx_default_profile(16.0, 3, stack_level=0, unit="W")["csChargingProfiles"]["chargingSchedule"]
    assert watts["chargingSchedulePeriod"][0]["limit"] == 16.0 * 230 * 3


def test_a_small_increase_is_owed_and_goes_out_once_the_limit_is_old():
    # 0.4 A is below the 1 A step: held back while the limit is fresh ...
    assert orders(decide(16.4), held(16.0, sent_at=95.0)) == []
    # ... and sent once it is `owed_after` (10 s) old, so small rises add up instead of being lost
    # while every small decrease goes out: a limit 12 s old is not left 0.4 A below its decision
    # until its renewal (60 s).
    assert TIMING.owed_after == 10.0
    assert orders(decide(16.4), held(16.0, sent_at=88.0)) == [("increase", 16.4)]
    # Still paced: not while a decrease elsewhere is taking hold.
    assert orders(decide(16.4), held(16.0, sent_at=88.0), last_decrease=97.0) == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0.0, 5.0, 6.0, 6.3, 7.0, 9.9, 10.0, 10.4, 16.0, 16.5, 32.0]),
                          st.integers(1, 12)), min_size=1, max_size=40))
def test_decreases_go_out_at_once_and_small_increases_at_most_once_per_owed_after(steps):
    """Over any sequence of decisions: every decision below the limit in force is sent at
    once, as a decrease; an increase is worth the hysteresis step, or leaves a limit the car
    cannot charge at, or comes `owed_after` after the connector's last change."""
    now, current, last_decrease = 0.0, None, -1e9
    for limit, wait in steps:
        now += wait
        in_force = current.limit if current else 6.0
        got = plan(decide(limit), {KEY: 7}, {KEY: current} if current else {}, {KEY: 6.0}, now, last_decrease,
                   TIMING, {KEY: 6.0})
        kinds = {o.kind: o for o in got}
        if limit < in_force - 1e-9:
            assert "decrease" in kinds and kinds["decrease"].limit == limit
        if "increase" in kinds:
            rise = kinds["increase"].limit - in_force
            assert (rise >= TIMING.hysteresis - 1e-9 or in_force < 6.0 or current is None
                    or now - current.sent_at >= TIMING.owed_after)
        for o in got:
            if o.kind in ("decrease", "increase") or current is None or o.limit != current.limit:
                current = Held(o.limit, o.phases, 7, now, now + 120.0)
                if o.kind == "decrease":
                    last_decrease = now


# --- fit: increases checked against what every car may draw at worst ------------------------------

A, B = ("A", 1), ("B", 1)
L1, L2 = ("grid", 0), ("grid", 1)


def increase(key, limit):
    return Order(key, limit, 3, 1, "increase", "why")


def test_an_increase_waits_while_a_lowered_car_may_still_draw_its_old_limit():
    # A was just lowered from 20 to 10 A and may draw 20 A until it followed: of the 25 A room with A at
    # 10 A, only 15 A are free at worst, so B's rise to 15 A fits, to 20 A does not and is cut to 15 A.
    room = {L1: 5.0}                                   # 25 A for the cars, less A's most (20 A)
    most = {A: {L1: 20.0}, B: {L1: 0.0}}
    got = fit([increase(B, 15.0)], room, most, {A: 10.0, B: 0.0}, {B: 6.0}, TIMING)
    assert got == []                                   # 5 A free at worst: below B's 6 A minimum
    got = fit([increase(B, 20.0)], {L1: 15.0}, most, {A: 10.0, B: 0.0}, {B: 6.0}, TIMING)
    assert [(o.key, o.limit) for o in got] == [(B, 15.0)]


def test_a_decrease_on_another_phase_does_not_hold_an_increase_back():
    # The old rule held every increase for follow_time after any decrease on the site; a car lowered
    # on L2 leaves L1's room as it was.
    got = fit([increase(B, 16.0)], {L1: 20.0, L2: 0.0}, {B: {L1: 6.0}}, {B: 6.0}, {B: 6.0}, TIMING)
    assert [(o.key, o.limit) for o in got] == [(B, 16.0)]


def test_increases_share_the_room_and_a_cut_rise_below_the_step_is_not_sent():
    most = {A: {L1: 10.0}, B: {L1: 10.0}}
    got = fit([increase(A, 14.0), increase(B, 14.0)], {L1: 4.5}, most, {A: 10.0, B: 10.0}, {}, TIMING)
    # A takes 4 A of the 4.5 A; B could rise 0.5 A only, less than the 1 A step: not sent.
    assert [(o.key, o.limit) for o in got] == [(A, 14.0)]



def test_the_rest_of_a_cut_increase_follows_as_soon_as_it_fits():
    """B, at 6 A since 80 s, is to go to 12 A, but A was just lowered and may still draw its old limit:
    `fit` cuts B's increase to 7 A. Once A's follow time is over, B goes on to 12 A at once rather than
    a change interval after the cut increase (5 s at 7 A); only once: the increase after that waits
    the interval again, as does any increase after an uncut one. Renewals change nothing."""
    most = {A: {L1: 20.0}, B: {L1: 6.0}}
    got = fit([increase(B, 12.0)], {L1: 1.0}, most, {A: 10.0, B: 6.0}, {B: 6.0}, TIMING)
    assert [(o.key, o.limit, o.cut) for o in got] == [(B, 7.0, True)]
    at_6 = Held(6.0, 3, 1, 80.0, 200.0)
    at_7 = held_after(got[0], at_6, 99.0, 219.0)
    decisions = {B: Decision(B, 12.0, 3, "why", None)}

    def raised(held_now, now):
        return [(o.kind, o.limit) for o in plan(decisions, {B: 1}, {B: held_now}, {B: 6.0}, now, -1e9, TIMING)]
    assert raised(at_7, 100.0) == [("increase", 12.0)]
    assert raised(Held(7.0, 3, 1, 99.0, 219.0), 100.0) == []                    # as an uncut increase
    renewed = held_after(Order(B, 7.0, 3, 1, "renew", "why"), at_7, 99.5, 219.5)
    assert raised(renewed, 100.0) == [("increase", 12.0)]
    cut_again = held_after(replace(got[0], limit=9.0), at_7, 100.0, 220.0)      # cut twice: paced again
    decisions = {B: Decision(B, 12.0, 3, "why", None)}
    assert raised(cut_again, 101.0) == []
    assert raised(cut_again, 105.0) == [("increase", 12.0)]
    first = held_after(got[0], None, 99.0, 219.0)                                # a session's first limit
    assert raised(first, 99.5) == [("increase", 12.0)]
    other = held_after(got[0], Held(6.0, 3, 2, 80.0, 200.0), 99.0, 219.0)       # another session's limit
    assert raised(other, 99.5) == [("increase", 12.0)]


def test_a_first_limit_the_default_profile_held_already_does_not_hold_the_next_increase_back():
    """A car arriving at a full site gets 0 A as its session's first limit, as the 0 A default
    profile gave it: its pilot did not change, so once room comes it is raised at once, not a
    change interval after that first limit. A first limit that changed what the car was
    offered (the default's 6 A down to 0) paces as any change does."""
    decisions = {B: Decision(B, 8.0, 3, "why", None)}

    def raised(held_now, now):
        return [(o.kind, o.limit) for o in plan(decisions, {B: 1}, {B: held_now}, {B: 0.0}, now, -1e9, TIMING)]
    paused = Order(B, 0.0, 3, 1, "decrease", "no room")
    assert raised(held_after(paused, None, 99.0, 219.0, default=0.0), 100.0) == [("increase", 8.0)]
    assert raised(held_after(paused, None, 99.0, 219.0, default=6.0), 100.0) == []
    assert raised(held_after(paused, None, 99.0, 219.0, default=6.0), 104.0) == [("increase", 8.0)]
    assert raised(held_after(paused, None, 99.0, 219.0), 100.0) == []          # no default profile in force
    # Only the session's first limit: a car paused after charging is paced as before.
    again = held_after(paused, Held(10.0, 3, 1, 80.0, 200.0), 99.0, 219.0, default=0.0)
    assert raised(again, 100.0) == []

@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 32), st.floats(0, 32), st.floats(0, 32)), min_size=1, max_size=4),
       st.floats(-10, 60))
def test_fitted_increases_never_exceed_the_room_at_worst(cars, free):
    """Whatever the cars may draw now and are raised to, the raised limits (at worst, every car at
    the higher of its limit and what it may draw) fit in the phase's room."""
    keys = [(f"C{i}", 1) for i in range(len(cars))]
    most = {k: {L1: m} for k, (m, _, _) in zip(keys, cars)}
    in_force = {k: min(m, f) for k, (m, f, _) in zip(keys, cars)}
    orders = [increase(k, t) for k, (_, _, t) in zip(keys, cars)]
    got = fit(orders, {L1: free}, most, in_force, {}, TIMING)
    raised = {o.key: o.limit for o in got}
    assert all(raised[k] <= o.limit + 1e-9 for o in orders for k in raised if k == o.key)
    extra = sum(max(0.0, raised[k] - most[k][L1]) for k in raised)
    assert extra <= max(0.0, free) + 1e-6



@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 32), st.floats(0, 32), st.floats(0, 32), st.booleans()), min_size=1,
                max_size=4),
       st.floats(-10, 80), st.floats(-10, 80))
def test_a_softened_decrease_keeps_every_phase_within_the_room_the_estimate_leaves(cars, free1, free2):
    """Whatever the cars hold, are lowered to and would share: a decrease held back (issue 15, the
    phantom cascade) is never below its decision nor above the limit in force, and is held back only
    if the limits then in force fit the room on every circuit phase; else the orders go as they were."""
    keys = [(f"C{i}", 1) for i in range(len(cars))]
    in_force = {k: f for k, (f, _, _, _) in zip(keys, cars)}
    uses = {k: [L1, L2] if both else [L1] for k, (_, _, _, both) in zip(keys, cars)}
    held_now = {k: Held(f, 3, 1, 90.0, 210.0) for k, f in in_force.items()}
    orders_in = [Order(k, min(d, f), 3, 1, "decrease", "why") for k, (f, d, _, _) in zip(keys, cars) if d < f]
    sharing = {k: s for k, (_, _, s, _) in zip(keys, cars)}
    room = {L1: free1, L2: free2}
    got = soften(orders_in, sharing, in_force, held_now, room, uses, TIMING)
    if got == orders_in:
        return
    decided = {o.key: o.limit for o in orders_in}
    sent = {o.key: o.limit for o in got}
    assert set(sent) <= set(decided)
    assert all(decided[k] <= sent[k] < in_force[k] for k in sent)
    after = {k: sent.get(k, in_force[k]) for k in in_force}
    for r, free in room.items():
        assert sum(after[k] for k in keys if r in uses[k]) <= free + 1e-6


def test_a_decrease_that_room_allows_to_wait_waits_whole_or_goes_in_part():
    """Held at 15 A, lowered to 10.5 A by an estimate a phantom inflated, with 14.8 A its share without
    the phantom: it stays at 15 A (0.2 A is not worth a pilot change); with 12 A its share, it goes
    to 12 A; and if 15 A no longer fits, it goes to 10.5 A as decided."""
    lowered = [Order(KEY, 10.5, 3, 7, "decrease", "why")]
    def sent(share, free):
        return [(o.kind, o.limit) for o in soften(lowered, {KEY: share}, {KEY: 15.0}, held(15.0), {L1: free},
                                                    {KEY: [L1]}, TIMING)]
    assert sent(14.8, 21.0) == []
    assert sent(12.0, 21.0) == [("decrease", 12.0)]
    assert sent(14.8, 14.0) == [("decrease", 10.5)]
    assert sent(10.0, 21.0) == [("decrease", 10.5)]
