"""The cloud says in one line when its database or broker is not there (no traceback), in the
edge's log format."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

from cloud.config import MqttSettings
from cloud.mqtt import MqttLink
from cloud.service import shown_url

ROOT = Path(__file__).resolve().parents[2]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cloud(*args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cloud", *args], cwd=ROOT, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, **(env or {})}, **kwargs)


def test_an_unreachable_database_is_one_line_and_exit_1() -> None:
    url = f"postgresql://cloud:s3cret@127.0.0.1:{closed_port()}/cloud"
    for command in (["serve", "--http-port", "0"], ["operators", "list"]):
        proc = cloud("--database-url", url, *command)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 1, (out, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert lines[0].startswith(f"cloud {command[0]}: cannot start: the database postgresql://cloud:***@127.0.0.1:")
        assert "cannot be reached: connection failed" in lines[0]
        assert "s3cret" not in out + err and "Traceback" not in out + err


def test_an_unreachable_broker_is_one_warning_in_the_edges_format(tmp_path) -> None:
    proc = cloud("--database-url", f"sqlite:///{tmp_path / 'cloud.db'}", "serve", "--http-port", "0",
                 env={"CLOUD_MQTT_PORT": str(closed_port()), "JOURNAL_STREAM": ""})
    try:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if "cannot be reached" in line:
                break
        assert "level=warning logger=cloud.mqtt MQTT broker 127.0.0.1:" in seen[-1], seen
        assert "level=info logger=cloud.service database: sqlite" in "".join(seen)
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert "Traceback" not in out + err


def test_the_broker_missed_again_and_again_is_not_a_line_per_retry(caplog) -> None:
    link = MqttLink(MqttSettings(port=closed_port()), lambda received: None)
    with caplog.at_level(logging.WARNING, logger="cloud.mqtt"):
        for _ in range(5):
            link._on_connect_fail(link.client, None)
    assert len([r for r in caplog.records if "cannot be reached" in r.getMessage()]) == 1


def test_the_password_is_not_shown() -> None:
    assert shown_url("postgresql://u:pw@db.example:5432/cloud") == "postgresql://u:***@db.example:5432/cloud"
    assert shown_url("sqlite:///var/lib/cloud.db") == "sqlite:///var/lib/cloud.db"
