"""The OCPP load benchmark's 2.0.1 stations, end to end at a size the test suite can afford.

As for 1.6 (test_ocpp_load.py), only the report's shape and that both servers
answered every message are checked: the speed figures and their goals live in
docs/performance.md.
"""

from __future__ import annotations

from tests.bench.conftest import SMALL_LOAD
from tests.bench.test_ocpp_load import check_server, run_bench


def test_201_stations_against_the_edge_and_the_bare_201_library() -> None:
    report = run_bench("--ocpp", "2.0.1", *SMALL_LOAD, "--json")
    assert report["ocpp"] == ["2.0.1"]
    for name in ("edge_201", "bare_201"):
        check_server(report[name])
        # Every station booted, plugged in, authorized and started a transaction before the measured phases.
        assert report[name]["setup_s"] >= report[name]["connect_s"]
    # The edge configured each station after its boot (SetVariables, GetLocalListVersion), and the
    # stations answered: nothing was left to set up while measuring.
    assert report["edge_201"]["server_requests"]["setup"] >= 3
    assert report["edge_201"]["server_requests"]["measured"] == 0
    assert "edge" not in report and "bare" not in report       # no 1.6 chargers asked for
    assert report["throughput_ratio_201"] > 0 and report["capacity_ratio_201"] > 0
    assert set(report["goals"]) == {"edge_201_cpu_under_25_percent", "edge_201_rss_under_150_mb",
                                    "ratio_201_at_least_half", "apply_to"}


def test_both_versions_in_one_run_by_default(both_versions_report: dict) -> None:
    report = both_versions_report       # run without --ocpp (tests/bench/conftest.py)
    assert report["ocpp"] == ["1.6", "2.0.1"]
    for name in ("edge", "bare", "edge_201", "bare_201"):
        check_server(report[name])
    assert report["throughput_ratio"] > 0 and report["throughput_ratio_201"] > 0
    assert {"edge_cpu_under_25_percent", "edge_201_cpu_under_25_percent", "ratio_at_least_half",
            "ratio_201_at_least_half"} <= report["goals"].keys()
