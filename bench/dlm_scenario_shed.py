"""What a controller that let a phase go over its fuse owes back: the least its cars must shed.

The comparison "within the fuse" takes from each controller the energy its cars drew because it let
the site go over its fuse. Counting only the A·s over the fuse per phase (at 230 V) undercounts it: a
3-phase car given 1 A too much because one phase was left 1 A over draws that 1 A on all three
phases, so the overload bought three times what it shows on the fullest phase.

Per tick, `shed_amps` finds the least the cars must give up, in amps times the phases each draws on,
to bring every phase within its fuse: a small LP (minimise sum of r_c * n_c such that, on every phase
over its fuse, the cars drawing on it shed at least the excess; 0 <= r_c <= the car's draw). A car
sheds the same current on every phase it draws on (a car's phases carry one current). On a phase the
building alone holds over the fuse, every car drawing on it sheds all it can. Generous to the controller
measured (the cheapest cars shed first), and never below the per-phase count of what the cars could
have shed there: every shed amp lowers at least one phase over its fuse by one amp.
"""

from __future__ import annotations

from typing import Sequence

from scipy.optimize import linprog

EPS = 1e-9


def shed_amps(excess: Sequence[float], cars: Sequence[Sequence[float]]) -> float:
    """`excess`: per site phase, the current over the fuse (<= 0: within it). `cars`: per car, its current
    on each site phase (0 where it does not draw). -> the least sum over cars of (current shed x number of
    phases it draws on) that brings every phase within its fuse, as far as the cars can."""
    over = [p for p, e in enumerate(excess) if e > EPS]
    if not over:
        return 0.0
    drawing = [[p for p, a in enumerate(car) if a > EPS] for car in cars]
    shedders = [c for c, phases in enumerate(drawing) if any(p in over for p in phases)]
    if not shedders:
        return 0.0
    cost = [len(drawing[c]) for c in shedders]
    # A car sheds one current on all its phases, so at most what it draws on its least loaded one; what the
    # cars can give on a phase bounds what they must (the building alone may hold it over the fuse).
    most = [min(cars[c][p] for p in drawing[c]) for c in shedders]
    need = {p: min(excess[p], sum(m for c, m in zip(shedders, most) if p in drawing[c])) for p in over}
    rows = [[-1.0 if p in drawing[c] else 0.0 for c in shedders] for p in over]
    result = linprog(cost, A_ub=rows, b_ub=[-need[p] for p in over], bounds=[(0.0, m) for m in most],
                     method="highs")
    if result.status != 0:      # cannot be infeasible (every need is within what the cars can give)
        raise RuntimeError(f"shed LP: {result.message}")
    return float(result.fun)
