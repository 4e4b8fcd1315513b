"""The cloud-sync benchmark's quick run, end to end: a real broker, the real edge with a
filled outbox, the real cloud service (SQLite), and the bare paho loop.

No timing is asserted (the goals live in docs/performance.md); what is asserted is that
the report is complete and that every buffered message reached the cloud database
exactly once.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MESSAGES = 2000


@pytest.fixture(scope="module")
def report() -> dict:
    done = subprocess.run([sys.executable, "-m", "bench", "sync", "--quick", "--json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)  # the whole of stdout is one JSON document; progress went to stderr


def test_report_fields(report: dict) -> None:
    assert report["benchmark"] == "sync" and report["quick"] is True
    assert report["database"] == "sqlite"
    assert {"cpu", "cores", "python"} <= report["machine"].keys()
    drain = report["drain"]
    assert drain["messages"] == MESSAGES and drain["stream"] == "telemetry"
    assert drain["seconds"] > 0 and drain["messages_per_s"] > 0
    assert 0 <= drain["first_stored_after_s"] <= drain["seconds"]
    assert drain["message_bytes"] > 100
    assert drain["outbox_left"] == 0
    bare = report["bare_paho"]
    assert bare["messages"] == MESSAGES and bare["qos"] == 1
    assert bare["payload_bytes"] == drain["message_bytes"]
    assert bare["pubacks"] == MESSAGES and bare["failed_pubacks"] == 0
    assert bare["seconds"] > 0 and bare["messages_per_s"] > 0
    assert report["ratio_to_bare"] > 0
    for key in ("at_least_5000_per_s", "at_least_half_bare_loop"):
        assert isinstance(report["goals"][key], bool), key


def test_every_message_arrived_exactly_once(report: dict) -> None:
    delivery = report["delivery"]
    assert delivery["sent"] == MESSAGES
    assert delivery["distinct_ids"] == MESSAGES
    assert delivery["stored_rows"] == MESSAGES
    assert delivery["missing"] == 0 and delivery["unexpected"] == 0
    assert delivery["telemetry_rows"] == MESSAGES
    assert delivery["exactly_once"] is True
