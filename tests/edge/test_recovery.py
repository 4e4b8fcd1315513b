"""Auto-recovery: the pure step decision, and a simulated charger stuck Faulted."""

from __future__ import annotations

import json

from hypothesis import given, strategies as st

from edge.clock import ManualClock
from edge.recovery import STEPS, Health, RecoverySection, State, decide
from tests.edge.conftest import PASSWORD_HASH, api_call, simulated, wait_for

POLICY = RecoverySection(enabled=True, after_minutes=10, step_minutes=5, daily_cap=3)
FAULTED = Health(connected=True, faulted=True, silent_s=1.0)
WELL = Health(connected=True, faulted=False, silent_s=1.0)


def run(healths: list[tuple[float, Health]], policy=POLICY, day_of=lambda t: "2026-01-01"):
    state, steps, alerts = State(), [], []
    for now, health in healths:
        decision, state = decide(health, state, now=now, day=day_of(now), policy=policy)
        if decision.step is not None:
            steps.append((now, decision.step))
        if decision.alert:
            alerts.append((now, decision.alert))
    return steps, alerts, state


def test_trigger_then_soft_then_hard_then_give_up_once():
    steps, alerts, _ = run([(t, FAULTED) for t in range(0, 3600, 30)], policy=POLICY.model_copy(
        update={"daily_cap": 10}))
    assert steps == [(600, 0), (900, 1), (1200, 2)]
    assert alerts == [(1500, "exhausted")]


def test_the_daily_cap_holds_across_troubles_and_resets_the_next_day():
    faulted_then_well = [(t, FAULTED) for t in range(0, 1000, 30)] + [(1000, WELL)] + \
        [(t, FAULTED) for t in range(1030, 3000, 30)]
    steps, alerts, _ = run(faulted_then_well, policy=POLICY.model_copy(update={"daily_cap": 4}))
    assert len(steps) == 4 and [s for _, s in steps] == [0, 1, 0, 1]
    assert alerts[0][1] == "cap"
    day = lambda t: "2026-01-01" if t < 2500 else "2026-01-02"  # noqa: E731
    steps, _, _ = run(faulted_then_well, policy=POLICY.model_copy(update={"daily_cap": 4}), day_of=day)
    assert len(steps) == 5


def test_silent_counts_from_the_last_frame_and_offline_is_left_alone():
    steps, _, _ = run([(0, Health(True, False, 700.0))])
    assert steps == [(0, 0)]
    steps, _, _ = run([(t, Health(False, True, None)) for t in range(0, 3600, 30)])
    assert steps == []


@given(st.lists(st.tuples(st.floats(0, 300), st.booleans(), st.booleans()), max_size=200),
       st.integers(1, 5))
def test_never_more_than_the_cap_a_day_and_never_two_steps_closer_than_step_minutes(events, cap):
    policy = POLICY.model_copy(update={"daily_cap": cap})
    now, healths = 0.0, []
    for gap, faulted, connected in events:
        now += gap
        healths.append((now, Health(connected, faulted, 1.0)))
    steps, _, _ = run(healths, policy=policy)
    assert len(steps) <= cap
    same_trouble = [b - a for (a, sa), (b, sb) in zip(steps, steps[1:]) if sb == sa + 1]
    assert all(gap >= policy.step_minutes * 60 for gap in same_trouble)
    assert all(step < len(STEPS) for _, step in steps)


RECOVERY = """
[recovery]
enabled = true
after_minutes = 10
step_minutes = 5
daily_cap = 3
"""


async def test_a_charger_stuck_faulted_gets_trigger_soft_and_hard_reset_logged_and_alerted(make_edge):
    clock = ManualClock()
    async with make_edge(clock=clock, extra=RECOVERY) as edge:
        events = edge.bus.subscribe()
        async with simulated(edge) as sim:
            await sim.report_fault(1, "GroundFailure", "stuck")
            await wait_for(lambda: any(k == "status" and d.get("status") == "Faulted" for k, d in sim.events))
            sent = []
            for minutes in (5, 5, 5, 5, 5, 5):
                clock.advance(minutes * 60)
                await edge.recovery.check()
                # Each reset closes the link; wait until the simulator is back before the next look.
                await sim.wait_accepted()
                await sim.wait_online()
            actions = await api_call(edge, "GET", "/chargers/CP-1/logs/actions?limit=20")
            sent = [(a["action"], a["actor"]) for a in reversed(actions) if a["actor"] == "edge:recovery"]
            assert sent == [("TriggerMessage", "edge:recovery"), ("Reset", "edge:recovery"),
                            ("Reset", "edge:recovery")]
            resets = [json.loads(a["request"])["type"] for a in reversed(actions) if a["action"] == "Reset"]
            assert resets == ["Soft", "Hard"]
            assert all("auto-recovery" in a["reason"] for a in actions if a["actor"] == "edge:recovery")
            seen = []
            while not events.queue.empty():
                event = events.queue.get_nowait()
                if event.kind == "recovery.step":
                    seen.append(event.data.get("step") or event.data.get("gave_up"))
            assert seen == [1, 2, 3, "exhausted"]
            # Fixed: the next fault starts from the first step again (the day's cap permitting).
            await sim.report_fault(1, "NoError")
            clock.advance(60)
            await edge.recovery.check()
            assert edge.recovery.states["CP-1"].steps_done == 0


async def test_recovery_off_for_one_charger(make_edge):
    clock = ManualClock()
    chargers = f'[[chargers]]\nid = "CP-1"\npassword_hash = "{PASSWORD_HASH}"\nconnectors = 2\nrecovery = false\n'
    async with make_edge(clock=clock, extra=RECOVERY, chargers=chargers) as edge:
        async with simulated(edge) as sim:
            await sim.report_fault(1, "GroundFailure")
            await wait_for(lambda: any(k == "status" and d.get("status") == "Faulted" for k, d in sim.events))
            clock.advance(3600)
            await edge.recovery.check()
            assert "CP-1" not in edge.recovery.states
