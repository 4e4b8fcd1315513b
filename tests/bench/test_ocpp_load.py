"""The OCPP load benchmark end to end, with a load small enough for the test suite.

Only the report's shape and that both servers answered are checked: speed
figures depend on the machine, and the goals for them live in
docs/performance.md, not here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_bench(*args: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "bench", "ocpp_load", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)  # the whole of stdout is one JSON document; progress went to stderr


def check_latency(latency: dict) -> None:
    assert latency["p50"] > 0
    assert latency["p99"] >= latency["p50"]


def check_server(side: dict) -> None:
    assert side["connect_s"] > 0
    steady, throughput = side["steady"], side["throughput"]
    assert steady["messages"] > 0 and steady["messages_per_s"] > 0
    assert steady["errors"] == {}
    check_latency(steady["latency_ms"])
    # A few quiet seconds can cost the server less than one 10 ms clock tick: the steady phase's figure may
    # read 0 here, and the server's meter is shown to work by the throughput phase, which keeps it busy.
    assert steady["cpu_percent"] >= 0
    assert steady["peak_rss_mb"] > 0
    assert throughput["messages"] > 0 and throughput["messages_per_s"] > 0
    check_latency(throughput["latency_ms"])
    assert throughput["server_cpu_percent"] > 0 and throughput["client_cpu_percent"] > 0
    assert side["connect_failed"] == 0 and side["disconnected"] == 0


def test_small_load_against_edge_and_bare(both_versions_report: dict) -> None:
    report = both_versions_report       # the default run (both versions, tests/bench/conftest.py)
    assert report["benchmark"] == "ocpp_load"
    assert report["chargers"] == 3
    assert report["meter_interval_s"] == 0.5
    assert {"cpu", "cores", "python", "platform"} <= report["machine"].keys()
    for name in ("edge", "bare"):
        check_server(report[name])
    assert report["throughput_ratio"] > 0
    assert set(report["goals"]) >= {"edge_cpu_under_25_percent", "edge_rss_under_150_mb", "ratio_at_least_half"}
    assert all(isinstance(report["goals"][key], bool) for key in
               ("edge_cpu_under_25_percent", "edge_rss_under_150_mb", "ratio_at_least_half"))


def test_tls_next_to_plain_ws_with_a_restart_storm() -> None:
    report = run_bench("--tls", "--chargers", "5", "--duration", "1", "--meter-interval", "0.5",
                       "--throughput-duration", "1", "--settle", "0.5", "--json")
    for name in ("edge", "edge_tls"):
        check_server(report[name])
        restart = report[name]["restart"]
        assert restart["start_s"] > 0 and restart["all_online_s"] >= 0 and restart["peak_rss_mb"] > 0
    assert "bare" not in report
    assert {"steady_rss_mb", "throughput_cpu_ms_per_message", "restart_all_online_s"} <= report["tls_cost"].keys()
