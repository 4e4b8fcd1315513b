"""The most energy any controller could have given the cars in a scenario: a linear program.

As bench/dlm_bound.py does for the working day, at one-second steps: one
variable per car and second it is plugged in, its current per phase, between
0 and min(car, charger maximum); on every site phase and second, the cars
drawing on it at most fuse - margin - the building's mean load in that
second; maximised: the energy. A charger that ignores profiles is not
steered by anyone: its car's maximum counts as building load and its energy
is added as it is. The LP knows the whole script in advance and ignores the
6 A minimum, the cars' reaction and ramp and stale measurements, so no
controller can beat it.
"""

from __future__ import annotations

import math
import time

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import coo_matrix

from bench.dlm_scenario_site import MARGIN, VOLTAGE, Scenario
from edge.dlm.phases import phase_map

SUBSTEPS = 10      # samples per second for the building's mean load (steps fall between seconds)


def _used(scenario: Scenario, charger_id: str) -> tuple[int, ...]:
    charger = next(c for c in scenario.chargers if c.id == charger_id)
    assert charger.car is not None
    return phase_map(3, charger.rotation)[:charger.car.phases]


def lp_bound(scenario: Scenario, per_second: bool = False) -> dict:
    seconds = int(math.ceil(scenario.duration))
    base = np.array([[sum(scenario.base_at(s + k / SUBSTEPS)[p] for k in range(SUBSTEPS)) / SUBSTEPS
                      for p in range(3)] for s in range(seconds)])
    fixed_kwh = 0.0
    columns: list[tuple[str, int]] = []
    upper: list[float] = []
    per_wh: list[float] = []
    for c in scenario.chargers:
        car = c.car
        if car is None:
            continue
        amps = min(car.max_current, c.max_current)
        used = _used(scenario, c.id)
        for s in range(math.ceil(car.plug_at), min(seconds, math.floor(scenario.leave(car)))):
            if c.ignores_profiles:
                for p in used:
                    base[s, p] += amps
                fixed_kwh += amps * len(used) * VOLTAGE / 3600.0 / 1000.0
                continue
            columns.append((c.id, s))
            upper.append(amps)
            per_wh.append(len(used) * VOLTAGE / 3600.0)
    rows: list[int] = []
    cols: list[int] = []
    rhs: list[float] = []
    index: dict[tuple[int, int], int] = {}
    for j, (cid, s) in enumerate(columns):
        for p in _used(scenario, cid):
            if (p, s) not in index:
                index[(p, s)] = len(rhs)
                rhs.append(max(0.0, scenario.limit - MARGIN - base[s, p]))
            rows.append(index[(p, s)])
            cols.append(j)
    started = time.perf_counter()
    if not columns:
        return {"energy_kwh": round(fixed_kwh, 6), "variables": 0, "constraints": 0, "solve_s": 0.0}
    matrix = coo_matrix(([1.0] * len(rows), (rows, cols)), shape=(len(rhs), len(columns))).tocsr()
    result = linprog(-np.array(per_wh), A_ub=matrix, b_ub=np.array(rhs), bounds=[(0.0, u) for u in upper],
                     method="highs")
    if result.status != 0:
        raise RuntimeError(f"the LP bound of {scenario.name} did not solve: {result.message}")
    out = {"energy_kwh": round(-result.fun / 1000.0 + fixed_kwh, 6), "variables": len(columns),
           "constraints": len(rhs), "solve_s": round(time.perf_counter() - started, 3)}
    if per_second:
        # One of the LP's optimal solutions: A per phase per car and second (for accounting, not unique).
        table: dict[str, dict[int, float]] = {}
        for (cid, s), x in zip(columns, result.x):
            table.setdefault(cid, {})[s] = round(float(x), 2)
        out["per_second"] = {cid: [v.get(s, 0.0) for s in range(seconds)] for cid, v in table.items()}
    return out
