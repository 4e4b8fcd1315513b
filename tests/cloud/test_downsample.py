"""The arithmetic of the 1-minute aggregates (cloud/downsample.py): whatever order and grouping the
points of a minute are folded in (a late point folded into an aggregate made before it arrived),
the aggregate is the same: highest of the maxima, weighted mean of the means, the last register,
samples added up, any failsafe; each seq counted once."""

from __future__ import annotations

import math

from hypothesis import given, strategies as st

from cloud import downsample

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


def values(current: float, mean: float, wh: float, failsafe: bool) -> dict:
    return {"interval_s": 10.0, "samples": 10, "circuits": [{
        "id": "main", "failsafe": failsafe, "current_max_a": [current, 1.0, 2.0], "current_mean_a": [mean, 0.0, 0.0],
        "import_wh": wh}]}


points = st.lists(st.tuples(finite, finite, finite, st.booleans()), min_size=1, max_size=12)


@given(points, st.randoms(use_true_random=False), st.integers(min_value=1, max_value=11))
def test_any_order_and_grouping_gives_the_same_aggregate(samples, rnd, split):
    seqs = list(range(1, len(samples) + 1))
    pts = [(seq, values(*s)) for seq, s in zip(seqs, samples)]
    whole, new = downsample.fold(None, pts)
    assert new == len(pts) and whole is not None
    shuffled = pts[:]
    rnd.shuffle(shuffled)
    cut = min(split, len(shuffled))
    part, _ = downsample.fold(None, shuffled[:cut])
    again, more = downsample.fold(part, shuffled[cut:])
    assert more == len(pts) - cut and again is not None
    assert again.points == whole.points == len(pts) and again.seqs == whole.seqs == ((1, len(pts)),)
    for agg in (whole, again):
        circuit = agg.values["circuits"][0]
        assert circuit["current_max_a"][0] == max(s[0] for s in samples)
        assert math.isclose(circuit["current_mean_a"][0], sum(s[1] for s in samples) / len(samples),
                            rel_tol=1e-9, abs_tol=1e-6)
        assert circuit["import_wh"] == max(s[2] for s in samples)
        assert circuit["failsafe"] == any(s[3] for s in samples)
        assert agg.values["samples"] == 10 * len(samples) and agg.values["interval_s"] == 10.0 * len(samples)


@given(points)
def test_a_seq_folded_in_is_not_counted_again(samples):
    pts = [(seq, values(*s)) for seq, s in enumerate(samples, start=1)]
    aggregate, _ = downsample.fold(None, pts)
    again, new = downsample.fold(aggregate, pts[::-1])
    assert new == 0 and again == aggregate


@given(st.sets(st.integers(min_value=1, max_value=200), max_size=40))
def test_seq_runs_hold_exactly_the_seqs_added(seqs):
    runs: tuple = ()
    for seq in seqs:
        runs = downsample.add(runs, seq)
    assert all(downsample.has(runs, s) for s in seqs)
    assert not any(downsample.has(runs, s) for s in range(0, 202) if s not in seqs)
    assert downsample.runs_of(downsample.runs_text(runs)) == runs
    assert all(b + 1 < c for (_, b), (c, _) in zip(runs, runs[1:]))       # the fewest runs


def test_minute_of_a_time():
    assert downsample.minute_of("2026-03-01T08:00:41.120Z") == "2026-03-01T08:00:00.000Z"
