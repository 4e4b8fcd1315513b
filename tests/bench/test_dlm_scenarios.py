"""The real-time load-management scenarios: a quick run end to end, and the pieces the figures rest on
(the car's reaction delay, the overload count beyond the window, the oscillation count, the LP bound).

No timing and no figure of merit is asserted: those are what the benchmark
measures, recorded in docs/performance.md. What is asserted is that the
figures are computed and mean what they say.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from bench import dlm_scenarios
from bench.dlm_scenario_bound import lp_bound
from bench.dlm_scenario_site import MARGIN, VOLTAGE, Car, Charger, Overload, ReactingChargePoint, Scenario, oscillations
from simulator import smart_charging


class ManualClock:
    def __init__(self) -> None:
        self.t = 1000.0
        self.start = datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)

    def monotonic(self) -> float:
        return self.t

    def wall(self) -> datetime:
        return self.start + timedelta(seconds=self.t - 1000.0)


def tx_profile(limit: float, transaction_id: int) -> dict:
    return {"charging_profile_id": 101, "transaction_id": transaction_id, "stack_level": 1,
            "charging_profile_purpose": "TxProfile", "charging_profile_kind": "Relative",
            "charging_schedule": {"charging_rate_unit": "A",
                                  "charging_schedule_period": [{"start_period": 0, "limit": limit}]}}


async def test_the_car_follows_a_new_limit_only_after_its_reaction_delay() -> None:
    clock = ManualClock()
    sim = ReactingChargePoint("R", "ws://127.0.0.1:9/ocpp", reaction_s=2.0, ramp_seconds=0.001,
                              clock=clock.monotonic, wall_clock=clock.wall)
    await sim.plug_in(1, car_max_current=32.0, car_phases=3)
    tx, _ = sim.begin_transaction(sim.connectors[1], "TAG")
    tx.transaction_id = 7
    def advance(seconds: float) -> tuple[float, ...]:
        # In small steps, as the timer the simulator sets for the moment the car reacts would.
        for _ in range(round(seconds / 0.05)):
            clock.t += 0.05
            sim.settle()
        return sim.connector(1).current

    assert advance(1.0) == (32.0, 32.0, 32.0)
    assert smart_charging.set_charging_profile(sim, 1, tx_profile(10.0, 7)) == "Accepted"
    assert advance(1.9) == (32.0, 32.0, 32.0), "the car reacted before its delay"
    assert advance(0.2) == (10.0, 10.0, 10.0)
    # A second change while the first is pending: each reaches the car in order, each after the delay.
    assert smart_charging.set_charging_profile(sim, 1, tx_profile(16.0, 7)) == "Accepted"
    assert advance(1.0) == (10.0, 10.0, 10.0)
    assert smart_charging.set_charging_profile(sim, 1, tx_profile(6.0, 7)) == "Accepted"
    assert advance(0.5) == (10.0, 10.0, 10.0)
    assert advance(1.0) == (16.0, 16.0, 16.0)
    assert advance(1.0) == (6.0, 6.0, 6.0)
    # The charger's own record holds one TxProfile, as OCPP's replacement rules say.
    clock.t += 10.0
    sim.charging_profiles = list(sim.charging_profiles)     # expired leftovers go at the next change
    assert [i.profile.periods[0].limit for i in sim.charging_profiles] == [6.0]


def test_only_the_overload_beyond_the_window_counts() -> None:
    overload = Overload(window=5.0)
    for k in range(80):                       # 8 s at 2 A over, sampled every 0.1 s
        overload.add(k * 0.1, 0, 2.0, 0.1)
    overload.add(8.0, 0, -1.0, 0.1)           # back under: the next overload starts a new window
    for k in range(30):
        overload.add(9.0 + k * 0.1, 0, 4.0, 0.1)
    assert overload.episodes == 2
    assert overload.beyond_window_as == pytest.approx(3.0 * 2.0)
    assert overload.total_as == pytest.approx(8 * 2.0 + 3 * 4.0)
    assert overload.max_excess_a == 4.0 and overload.longest_s == pytest.approx(8.0)


def test_an_increase_lowered_again_within_1_5_s_is_counted() -> None:
    assert oscillations([(0.0, 10.0), (5.0, 12.0), (6.0, 8.0)]) == 1
    assert oscillations([(0.0, 10.0), (5.0, 12.0), (7.0, 8.0)]) == 0      # 2 s later: a new decision
    assert oscillations([(0.0, 10.0), (1.0, 8.0), (1.5, 6.0)]) == 0       # decreases only
    assert oscillations([(0.0, 6.0), (1.0, 12.0), (1.2, 14.0), (2.0, 7.0)]) == 2


def test_the_lp_bound_fills_the_room_and_counts_a_car_nobody_steers() -> None:
    one_phase = Scenario("lp", "", limit=21.0, ripple=0.0, duration=10.0, base=((0, (5.0, 0.0, 0.0)),),
                         chargers=(Charger("A", "STR", car=Car(0, phases=1)),))
    # A 1-phase car on an STR charger draws on the site's L2: 21 - 1 A margin, no building load there.
    assert lp_bound(one_phase)["energy_kwh"] == pytest.approx(20.0 * VOLTAGE * 10 / 3.6e6, abs=1e-5)
    shared = Scenario("lp2", "", limit=30.0, ripple=0.0, duration=10.0, base=((0, (5.0, 5.0, 5.0)),),
                      chargers=(Charger("A", "RST", max_current=16, ignores_profiles=True, car=Car(0, max_current=16)),
                                Charger("B", "RST", car=Car(0))))
    room = 30.0 - MARGIN - 5.0 - 16.0          # what is left for B beside the car that ignores profiles
    expected = (16.0 + room) * 3 * VOLTAGE * 10 / 3.6e6
    assert lp_bound(shared)["energy_kwh"] == pytest.approx(expected, abs=1e-5)


def test_quick_run_measures_the_edge_and_the_naive_controller(capsys) -> None:
    # The shortest scenario in --quick: about 20 s of real time, both controllers at once.
    assert dlm_scenarios.main(["--quick", "--scenario", "phases", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["benchmark"] == "dlm_scenarios" and report["quick"] is True
    assert report["reaction_window_s"] > 5.0
    phases = report["scenarios"]["phases"]
    assert phases["lp_bound"]["energy_kwh"] > 0
    for controller in ("edge", "naive"):
        result = phases[controller]
        assert set(result["overload"]) == {"beyond_window_as", "total_as", "max_excess_a", "longest_s", "episodes"}
        assert result["overload"]["beyond_window_as"] <= result["overload"]["total_as"]
        assert len(result["peak_a"]) == 3
        assert result["energy_kwh"] > 0, f"{controller}: no car charged"
        assert result["energy_kwh"] <= phases["lp_bound"]["energy_kwh"] * 1.5   # over the fuse can beat the LP
        assert 0 <= result["energy_over_fuse_kwh"] <= result["energy_kwh"]
        assert 0 <= result["energy_shed_kwh"] <= result["energy_kwh"]
        assert result["tx_profiles"] > 0 and result["tx_profiles_per_car_hour"] > 0
        assert result["increases_undone_within_1_5_s"] >= 0
    assert {"edge_to_naive_energy", "edge_to_naive_energy_within_fuse",
            "edge_to_naive_energy_cars_within_fuse"} <= phases.keys()
    assert set(report["goals"]) >= {"no_overload_beyond_window", "at_least_90_percent_of_lp", "never_below_naive",
                                    "never_below_naive_cars_within_fuse"}
