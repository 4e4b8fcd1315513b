"""How long the departure-aware planner takes, and the allocation with its targets.

The site is bench/dlm_compute.py's (a metered grid connection, sub-circuits,
3-phase chargers with rotations spread and 1-phase ones, limits that bind);
every session gets a departure 1 to 10 h ahead and a need of 5 to 60 kWh. The
planner (`edge.dlm.planner.plan`, `scheduled`: the LP over 12 h in slots of 5
minutes growing to an hour, and its greedy fallback, 5-minute slots) runs behind
the 1 s allocator, every minute and on events, so its time is reported apart
from the allocation's; the allocation with its targets (`scheduled`) is timed as
the other strategies are. CPU time is the whole process's (the solver could use
threads), wall time beside it.
"""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import replace

from bench.dlm_compute import SNAPSHOTS, snapshot, topology
from bench.measure import percentile
from edge.dlm.allocate import allocate
from edge.dlm.planner import Need, PlanInputs, capacity_of, plan, plan_cars


def _pool(connectors: int, seed: int) -> list[tuple]:
    site = topology(connectors, seed)
    rng = random.Random(seed)
    out = []
    for _ in range(SNAPSHOTS):
        inputs = snapshot(site, rng)
        needs = {s.key: Need(inputs.now + rng.uniform(3600.0, 36000.0), rng.uniform(5000.0, 60000.0))
                 for s in inputs.connectors if s.session}
        cars = plan_cars(site, inputs.connectors, needs)
        capacity = capacity_of(allocate(inputs), site.margin)
        out.append((inputs, PlanInputs(cars, capacity, inputs.now, "scheduled")))
    return out


def _figures(seconds: list[float]) -> dict:
    seconds = sorted(seconds)
    return {"median_ms": round(statistics.median(seconds) * 1000, 3),
            "p99_ms": round(percentile(seconds, 99) * 1000, 3),  # type: ignore[operator]
            "max_ms": round(seconds[-1] * 1000, 3)}


def time_plan(connectors: int, runs: int, seed: int = 1) -> dict:
    """CPU time of one plan (the LP, and the greedy it falls back to), and of one
    `scheduled` allocation with its targets."""
    pool = _pool(connectors, seed)
    planned = [(inputs, plan(p)) for inputs, p in pool]       # warm up, and the targets for the allocations
    plans, walls, greedy, allocations = [], [], [], []
    solvers: dict[str, int] = {}
    for i in range(runs):
        inputs, plan_inputs = pool[i % SNAPSHOTS]
        wall, started = time.perf_counter(), time.process_time()
        solver = plan(plan_inputs).solver
        plans.append(time.process_time() - started)
        walls.append(time.perf_counter() - wall)
        solvers[solver] = solvers.get(solver, 0) + 1
        started = time.process_time()
        plan(replace(plan_inputs, budget_s=0.0))
        greedy.append(time.process_time() - started)
        scheduled = replace(inputs, strategy="scheduled", targets=planned[i % SNAPSHOTS][1].targets)
        started = time.thread_time()
        allocate(scheduled)
        allocations.append(time.thread_time() - started)
    return {"runs": runs, "cars": len(pool[0][1].cars), "lp_slots": len(planned[0][1].slots),
            "solvers": solvers, "plan_cpu": _figures(plans), "plan_wall": _figures(walls),
            "greedy_plan_cpu": _figures(greedy), "allocate_scheduled_cpu": _figures(allocations)}
