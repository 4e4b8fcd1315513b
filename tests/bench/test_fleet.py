"""The fleet benchmark's smallest run, end to end: light sites (bench/fleet_sites.py) with their own
broker accounts on the shipped Mosquitto config, one and then two real cloud processes on
PostgreSQL, and the broker restarted under traffic.

No timing is asserted (the goals live in docs/performance.md); what is asserted is that the report
is complete, that the sites' traffic (telemetry, sessions, charge records) reached the cloud
database exactly once through both setups and the restart, and that every site came back.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SITES = 12


@pytest.fixture(scope="module")
def report() -> dict:
    done = subprocess.run([sys.executable, "-m", "bench", "fleet", "--sites", str(SITES), "--seconds", "2",
                           "--warmup", "1", "--telemetry-interval", "1", "--sessions-per-day", "8000",
                           "--storm-timeout", "60", "--drain-timeout", "60", "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)  # the whole of stdout is one JSON document; progress went to stderr


def test_one_and_two_instances_side_by_side(report: dict) -> None:
    assert [s["instances"] for s in report["setups"]] == [1, 2]
    for setup in report["setups"]:
        assert setup["sites"] == SITES
        assert setup["stored_msg_s"] > 0 and setup["created_msg_s"] > 0
        assert 0 < setup["receipt_p50_s"] <= setup["receipt_p99_s"] <= setup["receipt_max_s"]
        names = set(setup["cpu_s"])
        assert {"broker", "generator1", "postgres (backends of the instances)"} <= names
        assert {f"cloud-{n}" for n in range(1, setup["instances"] + 1)} <= names
        assert setup["cpu_ms_per_message_cloud_broker_db"] > 0
    assert report["connect"]["sites"] == SITES


def test_every_message_stored_exactly_once(report: dict) -> None:
    delivery = report["delivery"]
    assert delivery["created"] > 0
    assert delivery["stored_in_db"] == delivery["created"]
    assert delivery["gaps"] == 0 and delivery["rejected"] == 0 and delivery["left_at_sites"] == 0
    assert delivery["exactly_once"] is True


def test_the_storm_after_a_broker_restart_drains(report: dict) -> None:
    storm = report["storm"]
    assert storm["all_reconnected_s"] is not None and storm["drained_s"] is not None
    assert storm["drained_s"] >= storm["all_reconnected_s"] >= 0
    assert storm["peak_pending_messages"] >= 0 and storm["receipt_max_s"] is not None


def test_disk_per_site_day(report: dict) -> None:
    disk = report["disk"]
    assert disk["bytes"] > 0 and disk["bytes_per_message"] > 0
    # the edge's telemetry every second here, and 8,000 sessions of 7 messages a day
    assert disk["messages_per_site_day"] == 86400 + 7 * 8000
    assert disk["bytes_per_site_day"] == pytest.approx(disk["bytes_per_message"] * disk["messages_per_site_day"],
                                                      rel=0.01)
