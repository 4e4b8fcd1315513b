"""The README's main job: the demo site runs sessions end to end and stops cleanly."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_demo_runs_sessions(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "simulator.demo", "--duration", "12", "--session-seconds", "3",
         "--idle-seconds", "1", "--meter-interval", "1", "--status-every", "5", "--seed", "7",
         "--state-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr[-3000:] + out[-3000:]
    for charger in ("SIM-1", "SIM-2", "SIM-3"):
        assert re.search(rf"transaction started charger={charger} ", out), f"{charger} never started a session"
        assert re.search(rf"{charger} connector 1: transaction \d+ stopped", out), f"{charger} never stopped"
    assert re.search(r"authorization charger=SIM-2 connector=None tag=DEADBEEF method=rfid status=Blocked", out)
    assert "edge view:" in out and "sessions done" in out
    assert "edge stopped" in out
    # Load management in a closed loop with the simulated grid meter.
    assert re.search(r"circuit grid +limit 63 A: L1 +\d+\.\d A", out), "no meter readings in the edge view"
    assert re.search(r"action charger=SIM-\d action=SetChargingProfile actor=load-management outcome=ok", out)
    assert re.search(r"SIM-\d/\d limit +\d+\.\d A: ", out)
    # The serial wallbox behind the firmware bridge charges like any other charger.
    assert re.search(r"transaction started charger=WB-1 connector=1 .*tag=DEMO-TAG-4", out), "WB-1 never started"
    assert re.search(r"stop transaction charger=WB-1 ", out), "WB-1 never stopped"
    # The edge syncs to the cloud service through a real Mosquitto.
    received = re.findall(r"cloud received: cdr (\d+), session (\d+)", out)
    assert received and int(received[-1][0]) > 0, "no charge record reached the cloud"
