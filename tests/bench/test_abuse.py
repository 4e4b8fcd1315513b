"""The abuse benchmark end to end, with attacks small enough for the test suite.

Only the report's shape is checked, and what does not depend on the machine:
the strangers' leftovers are capped and the right password is barred right
after a storm. Timings and memory goals live in docs/performance.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_small_abuse_run() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "abuse", "--frame-connections", "1", "--frame-kb", "50",
         "--flood-seconds", "1", "--strangers", "60", "--storm", "12", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["benchmark"] == "abuse"
    assert {"cpu", "cores", "python", "platform"} <= report["machine"].keys()
    assert report["baseline"]["rss_mb"] > 0
    for phase in ("big_frames", "many_strangers", "password_storm"):
        side = report[phase]
        assert {"wall_s", "edge_cpu_s", "peak_rss_mb", "rss_growth_mb", "phase_rss_growth_mb"} <= side.keys()
        assert side["good_charger"]["messages"] > 0
        assert side["good_charger"]["latency_ms"]["p99"] >= side["good_charger"]["latency_ms"]["p50"] > 0
    assert report["big_frames"]["frames_sent"] > 0
    strangers = report["many_strangers"]
    assert strangers["pending"] + strangers["refused"] == 60 and strangers["failed"] == 0
    assert report["password_storm"]["answers"] == {"401": 12}
    assert report["password_storm"]["right_password_right_after"] == "refused (401)"
    left = report["left_in_journal"]
    assert left["charger_rows"] <= 50 and left["outbox_messages"] == 0
    assert set(report["goals"]) == {"rss_growth_under_50_mb", "good_charger_p99_under_100_ms",
                                    "right_password_barred_after_storm"}
