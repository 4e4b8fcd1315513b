"""Telemetry downsampled to one point per minute (pure: no I/O, no clock).

Raw telemetry is kept for `CLOUD_TELEMETRY_RAW_DAYS`; before it goes, each site's points of a
minute are folded into one aggregate, kept for `CLOUD_TELEMETRY_AGGREGATE_DAYS`. An aggregate has
the shape of a point (the edge's body, edge/uplink/telemetry.py), so a reader needs nothing new:

* a number whose key names a maximum (`current_max_a`) is the highest, a minimum the lowest;
* an energy register (`..._wh`) is the highest (it only grows): the reading at the minute's end;
* `samples` and `interval_s` add up (the minute's samples, the seconds it covers);
* booleans: any (`failsafe`: the circuit was in failsafe at some time in the minute);
* any other number is the mean, weighted by the points behind each side;
* lists go element by element, a list of objects with an `id` (the circuits) by id;
* a value missing on one side (null, absent) is the other side's; anything else: the later one.

Folding is associative and, but for floating point rounding and the "later one" of values that
differ, commutative, so a late point can be folded into an aggregate made before it arrived.
An aggregate keeps the seqs folded into it, so a point sent again is not counted twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MINUTE_LEN = len("2026-03-01T08:00")


def minute_of(at: str) -> str:
    """The minute of a canonical time (2026-03-01T08:00:41.120Z -> 2026-03-01T08:00:00.000Z)."""
    return at[:MINUTE_LEN] + ":00.000Z"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _rule(key: str) -> str:
    words = key.split("_")
    if key in ("samples", "interval_s"):
        return "sum"
    if "max" in words or words[-1] == "wh":
        return "max"
    if "min" in words:
        return "min"
    return "mean"


def merge(a: Any, b: Any, wa: int, wb: int, key: str = "") -> Any:
    """`a` stands for `wa` points, `b` (the later) for `wb`; -> the value standing for both."""
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for k, v in b.items():
            out[k] = merge(a[k], v, wa, wb, k) if k in a else v
        return out
    if isinstance(a, list) and isinstance(b, list):
        if all(isinstance(x, dict) and "id" in x for x in a + b):
            by_id = {x["id"]: x for x in a}
            for x in b:
                by_id[x["id"]] = merge(by_id[x["id"]], x, wa, wb, key) if x["id"] in by_id else x
            return list(by_id.values())
        if len(a) == len(b):
            return [merge(x, y, wa, wb, key) for x, y in zip(a, b)]
        return b
    if isinstance(a, bool) and isinstance(b, bool):
        return a or b
    if _is_number(a) and _is_number(b):
        rule = _rule(key)
        if rule == "sum":
            return a + b
        if rule == "max":
            return max(a, b)
        if rule == "min":
            return min(a, b)
        return (a * wa + b * wb) / (wa + wb)
    return b


@dataclass(frozen=True)
class Aggregate:
    points: int
    seqs: tuple[tuple[int, int], ...]      # the seqs folded in, as (first, last) runs
    values: dict[str, Any]


def has(runs: tuple[tuple[int, int], ...], seq: int) -> bool:
    return any(first <= seq <= last for first, last in runs)


def add(runs: tuple[tuple[int, int], ...], seq: int) -> tuple[tuple[int, int], ...]:
    """`runs` with `seq` added, merged into the fewest runs."""
    out: list[list[int]] = []
    for first, last in sorted([*runs, (seq, seq)]):
        if out and first <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], last)
        else:
            out.append([first, last])
    return tuple((first, last) for first, last in out)


def runs_text(runs: tuple[tuple[int, int], ...]) -> str:
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def runs_of(text: str) -> tuple[tuple[int, int], ...]:
    out = []
    for part in filter(None, text.split(",")):
        first, _, last = part.partition("-")
        out.append((int(first), int(last or first)))
    return tuple(out)


def fold(aggregate: Aggregate | None, points: list[tuple[int, dict[str, Any]]]) -> tuple[Aggregate | None, int]:
    """Folds (seq, values) points, in time order, into `aggregate` (None: none yet); a seq already
    in it changes nothing. -> the aggregate and how many points were new."""
    new = 0
    for seq, values in points:
        if aggregate is not None and has(aggregate.seqs, seq):
            continue
        new += 1
        if aggregate is None:
            aggregate = Aggregate(1, ((seq, seq),), values)
        else:
            aggregate = Aggregate(aggregate.points + 1, add(aggregate.seqs, seq),
                                  merge(aggregate.values, values, aggregate.points, 1))
    return aggregate, new
