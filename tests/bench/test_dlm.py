"""The load-management benchmark: its quick run end to end, and the pieces whose
correctness the figures rest on (the LP bound, the overload count, the reuse of
allocations in the simulated day).

No timing is asserted: speed depends on the machine, and the goals for it live
in docs/performance.md. What is asserted is correctness: the bound is an upper
bound, and `fair` never leaves a phase over its limit beyond the cars' 5 s.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.dlm_bound import ideal_fair, ideal_planned, lp_bound
from bench.dlm_day import QUICK_DAY, CarPlan, Day, Overload, simulate, workplace_day
from edge.dlm.model import Circuit, Evse, Topology
from edge.dlm.phases import phase_map

ROOT = Path(__file__).resolve().parents[2]
EPS = 1e-6


@pytest.fixture(scope="module")
def report() -> dict:
    done = subprocess.run([sys.executable, "-m", "bench", "dlm", "--quick", "--json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)  # the whole of stdout is one JSON document; progress went to stderr


def test_quick_run_reports_allocation_times(report: dict) -> None:
    assert report["benchmark"] == "dlm" and report["quick"] is True
    assert {"cpu", "cores", "python"} <= report["machine"].keys()
    sizes = report["allocation"]["connectors"]
    assert set(sizes) == {"10", "100", "500"}
    for per_strategy in sizes.values():
        assert set(per_strategy) == {"fair", "fcfs", "fixed"}    # `scheduled`: with the planner, below
        for figures in per_strategy.values():
            assert 0 < figures["median_ms"] <= figures["p99_ms"] <= figures["max_ms"]
            assert 0 < figures["cpu_median_ms"] <= figures["cpu_p99_ms"]
            assert figures["sessions"] > 0 and figures["circuits"] >= 3


def test_quick_run_reports_the_planner_apart_from_the_allocation(report: dict) -> None:
    planner = report["allocation"]["planner"]
    assert set(planner) == {"20", "100"}
    assert planner["20"]["cars"] < planner["100"]["cars"]
    for figures in planner.values():
        for part in ("plan_cpu", "plan_wall", "greedy_plan_cpu", "allocate_scheduled_cpu"):
            assert 0 < figures[part]["median_ms"] <= figures[part]["p99_ms"] <= figures[part]["max_ms"]
        assert sum(figures["solvers"].values()) == figures["runs"] and figures["lp_slots"] > 0


def test_quick_run_reports_reaction_over_modbus(report: dict) -> None:
    reaction = report["reaction"]
    assert reaction["path"].startswith("Modbus TCP")
    assert reaction["trials"] == 2 and reaction["failures"] == 0
    assert 0 < reaction["p50_ms"] <= reaction["p99_ms"] <= reaction["max_ms"]


def test_quick_day_is_within_the_bound_and_fair_never_overloads(report: dict) -> None:
    day = report["day"]
    assert day["cars"] == 5 and day["hours"] == 2
    assert 0 < day["lp_bound_kwh"] <= day["batteries_could_take_kwh"] + EPS
    assert 0 < day["ideal_fair_kwh"] <= day["lp_bound_kwh"] * (1 + EPS)
    assert set(day["strategies"]) == {"fair", "fcfs", "fixed", "scheduled", "edf", "llf", "round_robin",
                                      "round_robin_blind"}
    assert 0 < day["ideal_scheduled_kwh"] <= day["lp_bound_kwh"] * (1 + EPS)
    assert 0 < day["ideal_scheduled_greedy_kwh"] <= day["lp_bound_kwh"] * (1 + EPS)
    assert 0 < day["strategies"]["fair"]["ideal_fair_ratio"]
    # Every plan of `scheduled` says whether the LP made it or the greedy, and why.
    solvers = day["strategies"]["scheduled"]["plans"]["solvers"]
    assert sum(solvers.values()) == day["strategies"]["scheduled"]["plans"]["count"]
    assert all(name == "lp" or name.startswith("greedy: ") for name in solvers)
    for name, result in day["strategies"].items():
        assert 0 < result["energy_kwh"], name
        assert result["lp_ratio"] <= 1.0 + EPS, name       # nothing beats the bound
        assert result["overload_beyond_window_as"] >= 0
        assert sum(result["profiles_sent"].values()) > 0
    for name in ("fair", "scheduled", "edf", "llf", "round_robin", "round_robin_blind"):
        assert day["strategies"][name]["overload_beyond_window_as"] == 0, name
    for name in ("scheduled", "edf", "llf", "round_robin", "round_robin_blind"):
        assert day["strategies"][name]["plans"]["count"] > 0, name
    goals = report["goals"]
    for key in ("allocation_100_under_5_ms", "reaction_p99_under_100_ms", "fair_at_least_97_percent_of_ideal_fair",
                "fair_no_overload_beyond_5_s", "fair_above_round_robin", "fair_above_round_robin_blind",
                "scheduled_at_least_95_percent_of_lp",
                "scheduled_above_edf_and_llf", "scheduled_no_overload_beyond_5_s",
                "scheduled_allocation_100_under_5_ms"):
        assert isinstance(goals[key], bool), key
    assert goals["fair_no_overload_beyond_5_s"] is True and goals["scheduled_no_overload_beyond_5_s"] is True


# --- the LP bound, on days small enough to work out by hand ---------------------------------------

def one_car_day(*, limit: float = 100.0, margin: float = 0.0, base=(0.0, 0.0, 0.0), room_kwh: float = 100.0,
                car_phases: int = 3, car_amps: float = 16.0) -> Day:
    topology = Topology((Circuit("grid", limit, meter="m"),), (Evse("A", 1, "grid", phase_map(3, "RST")),), margin)
    # Plugged in at 0 s; the transaction starts 20 s later and runs exactly one hour.
    car = CarPlan(tag="CAR", evse=0, plug_in=0, leave=3620, max_current=car_amps, phases=car_phases,
                  capacity_wh=room_kwh * 1000.0, soc=0.0, meter_offset=0)
    return Day(name="test", seed=0, begin=0, end=3660, topology=topology, metered="grid", cars=(car,),
               base=(tuple(base),) * 3660, failsafe_load=0.0)  # type: ignore[arg-type]


@pytest.mark.parametrize("day, kwh", [
    (one_car_day(), 16 * 3 * 230 / 1000),                               # the car's maximum for an hour
    (one_car_day(limit=10, margin=1), 9 * 3 * 230 / 1000),             # the fuse minus the margin
    (one_car_day(limit=20, base=(12.0, 0.0, 0.0)), 8 * 3 * 230 / 1000),  # the building takes L1 first
    (one_car_day(room_kwh=5.0), 5.0),                                   # the battery is full sooner
    (one_car_day(car_phases=1, car_amps=32), 32 * 230 / 1000),         # a 1-phase car on a 3-phase charger
])
def test_lp_bound_of_one_car(day: Day, kwh: float) -> None:
    assert lp_bound(day).energy_kwh == pytest.approx(kwh, rel=1e-6)


def test_the_bound_is_above_the_simulated_controller_and_ideal_sharing() -> None:
    day = workplace_day(7, QUICK_DAY)
    bound = lp_bound(day).energy_kwh
    assert ideal_fair(day) <= bound * (1 + EPS)
    assert simulate(day, "fair").energy_kwh <= bound * (1 + EPS)
    assert ideal_planned(day) <= bound * (1 + EPS)
    assert simulate(day, "scheduled").energy_kwh <= bound * (1 + EPS)


# --- the overload count -------------------------------------------------------------------------

def test_an_overload_counts_only_after_the_cars_reaction_window() -> None:
    overload = Overload(window=5.0)
    for t in range(10):                  # 2 A over for 10 s
        overload.add(t, ("grid", 0), 2.0)
    overload.add(10, ("grid", 0), 0.0)
    overload.add(11, ("grid", 0), 1.0)   # a new overload: its own window
    assert overload.total_as == 21.0
    assert overload.beyond_window_as == 4 * 2.0      # seconds 6..9 of the first
    assert (overload.episodes, overload.longest_s, overload.max_excess_a) == (2, 10, 2.0)


def test_phases_and_circuits_are_counted_apart() -> None:
    overload = Overload(window=5.0)
    for t in range(7):
        overload.add(t, ("grid", 0), 1.0)
        overload.add(t, ("grid", 1), 1.0 if t % 2 else 0.0)   # never lasts: no count
    assert overload.beyond_window_as == 1.0
    assert overload.episodes == 1 + 3


# --- the simulated day ----------------------------------------------------------------------------

def test_reusing_allocations_changes_nothing() -> None:
    day = workplace_day(3, QUICK_DAY)
    reused, fresh = simulate(day, "fair"), simulate(day, "fair", reuse_allocations=False)
    assert reused.allocations_computed < fresh.allocations_computed
    assert reused.energy_by_car_kwh == fresh.energy_by_car_kwh
    assert reused.orders == fresh.orders
    assert reused.overload.total_as == fresh.overload.total_as


def test_the_day_is_the_same_for_the_same_seed() -> None:
    assert workplace_day(11, QUICK_DAY) == workplace_day(11, QUICK_DAY)
    assert workplace_day(11, QUICK_DAY).cars != workplace_day(12, QUICK_DAY).cars


def test_detail_accounts_the_day_by_car_and_by_hour() -> None:
    """`--detail`, for finding where one strategy loses to another: the day's cars, and per strategy what each
    car got and what each hour delivered, which add up to the strategy's energy."""
    done = subprocess.run([sys.executable, "-m", "bench", "dlm", "--quick", "--parts", "day", "--strategies", "fair",
                           "--detail", "--json"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)["day"]
    tags = {car["tag"] for car in out["cars"]}
    assert tags and all(car["leaves_h"] > car["arrives_h"] for car in out["cars"])
    fair = out["strategies"]["fair"]
    detail = fair["detail"]
    assert set(detail["kwh_by_car"]) <= tags
    assert abs(sum(detail["kwh_by_car"].values()) - fair["energy_kwh"]) < 0.05
    assert abs(sum(detail["kwh_by_hour"].values()) - fair["energy_kwh"]) < 0.05
    assert detail["grid_room_by_hour_a"] and all(0 <= int(h) < 24 for h in detail["grid_room_by_hour_a"])
