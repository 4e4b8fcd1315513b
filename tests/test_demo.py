"""The README's main job: the demo site runs sessions end to end and stops cleanly; the screen
says where to look (web page and login, edgectl, the cloud and a token) and shows the key events;
the detailed log goes to the file it names."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def demo_env(tmp_path: Path) -> dict[str, str]:
    """The demo and edgectl as a user of their own: the demo's file for edgectl in tmp_path, not in the
    real ~/.local/state; told nothing of any other edge."""
    env = {k: v for k, v in os.environ.items() if k not in ("EDGE_CONFIG", "STATE_DIRECTORY")}
    return env | {"XDG_STATE_HOME": str(tmp_path / "xdg")}


def start_demo(tmp_path: Path, duration: float, seed: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "simulator.demo", "--duration", f"{duration:g}", "--session-seconds", "3",
         "--idle-seconds", "1", "--meter-interval", "1", "--status-every", "30", "--seed", str(seed),
         "--state-dir", str(tmp_path / "demo")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=demo_env(tmp_path))


def read_until(proc: subprocess.Popen, pattern: str) -> re.Match:
    """The first line of the demo's screen that matches (the banner comes before any event)."""
    assert proc.stdout is not None
    for line in proc.stdout:
        found = re.search(pattern, line)
        if found:
            return found
    raise AssertionError(proc.stderr.read() if proc.stderr else f"no line like {pattern!r}")


def test_demo_runs_sessions(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "simulator.demo", "--duration", "9", "--session-seconds", "3",
         "--idle-seconds", "1", "--meter-interval", "1", "--status-every", "5", "--seed", "7",
         "--state-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env=demo_env(tmp_path))
    screen = proc.stdout
    assert proc.returncode == 0, proc.stderr[-3000:] + screen[-3000:]
    log_path = tmp_path / "demo.log"
    assert f"detailed log:  {log_path}" in screen
    out = log_path.read_text()
    # The screen: where to look, with the demo's own addresses and secrets.
    assert re.search(r"web page: +http://127\.0\.0\.1:\d+/ +installer password: demo-installer", screen)
    assert f"STATE_DIRECTORY={tmp_path}" in screen and "EDGE_CONFIG=" in screen and "edgectl chargers" in screen
    cloud = re.search(r"cloud API: +(http://127\.0\.0\.1:\d+/api/v1) +operator 'demo-operator', token (sct_\S+)",
                      screen)
    assert cloud, screen[:2000]
    # The key events, not the flood: the flood is in the file.
    for charger in ("SIM-1", "SIM-2", "SIM-3", "WB-1"):
        assert re.search(rf"{charger}/1 session \d+ started for ", screen), f"{charger} never started a session"
        assert re.search(rf"{charger}/1 session \d+ stopped", screen), f"{charger} never stopped"
    assert re.search(r"/1 charge record for session \d+: Exclusion, [\d.]+ kWh, [\d.]+ EUR \(consumption too low",
                     screen)
    assert re.search(r"SIM-2 card DEADBEEF refused: Blocked", screen)
    assert "level=info" not in screen and "Traceback" not in screen + proc.stderr
    assert re.search(r"site: 4 chargers connected", screen)
    assert re.search(r"grid +63 A +L1 [#.]+ +\d+\.\d", screen), "no meter readings in the site view"
    assert re.search(r"SIM-\d/\d +\d+\.\d A: ", screen)
    received = re.findall(r"cloud received: cdr (\d+)", screen)
    assert received and int(received[-1]) > 0, "no charge record reached the cloud"

    # The detailed log: the edge's own lines, the chargers', the bridge's.
    for charger in ("SIM-1", "SIM-2", "SIM-3"):
        assert re.search(rf"transaction started charger={charger} ", out), f"{charger}: no log line"
        assert re.search(rf"{charger} connector 1: transaction \d+ stopped", out), f"{charger}: no charger line"
    assert re.search(r"authorization charger=SIM-2 connector=None tag=DEADBEEF method=rfid status=Blocked", out)
    assert re.search(r"action charger=SIM-\d action=SetChargingProfile actor=load-management outcome=ok", out)
    assert re.search(r"transaction started charger=WB-1 connector=1 .*tag=DEMO-TAG-4", out), "WB-1 never started"
    assert re.search(r"stop transaction charger=WB-1 ", out), "WB-1 never stopped"
    assert "edge stopped" in out
    # The serial bridge answers the local-list actions: no tracebacks in a demo run.
    assert "Traceback" not in out, out[out.index("Traceback") - 500:][:3000]
    assert re.search(r"local list charger=WB-1 version=0 entries=0 status=unsupported", out)
    # The cloud token printed is a real operator token for the demo site (the cloud stopped with the demo:
    # what is checked is that it was accepted while it ran, through the records it served).
    assert re.search(r"cloud API on http://127\.0\.0\.1:\d+/api/v1", out)


def test_demo_banner_token_opens_the_cloud(tmp_path):
    """The token and URL the demo prints answer while it runs (the banner is read from the screen)."""
    proc = start_demo(tmp_path, 30, seed=3)
    try:
        url, token = read_until(proc, r"cloud API: +(\S+) +operator 'demo-operator', token (sct_\S+)").groups()
        req = urllib.request.Request(f"{url}/sites", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            sites = json.loads(resp.read())
        assert [s["id"] for s in sites["items"]] == ["demo-flats"]
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_edgectl_finds_the_running_demo_by_itself(tmp_path):
    """No EDGE_CONFIG, no STATE_DIRECTORY: edgectl in another terminal reaches the demo, says so on
    stderr, and once the demo stops it no longer does (the demo removed its file)."""
    edgectl = [str(Path(sys.executable).parent / "edgectl")]
    env = demo_env(tmp_path)
    link = tmp_path / "xdg" / "sitecontroller" / "demo.json"
    proc = start_demo(tmp_path, 60, seed=5)
    try:
        read_until(proc, r"edgectl, in another terminal as this user, finds this demo by itself")
        assert stat.S_IMODE(link.stat().st_mode) == 0o600
        told = json.loads(link.read_text())
        assert told["token"] == (tmp_path / "demo" / "api-token").read_text().strip()
        shown = subprocess.run(edgectl + ["chargers"], cwd=tmp_path, env=env, capture_output=True, text=True,
                               timeout=60)
        assert shown.returncode == 0, shown.stderr
        assert shown.stderr.startswith(f"edgectl: using the demo at {told['url']} (config {ROOT}/config/")
        assert all(charger in shown.stdout for charger in ("SIM-1", "SIM-2", "SIM-3", "WB-1")), shown.stdout
    finally:
        proc.send_signal(signal.SIGINT)         # Ctrl-C, as a person stops it
        proc.communicate(timeout=60)
    assert proc.returncode == 0 and not link.exists()
    after = subprocess.run(edgectl + ["chargers"], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=60)
    assert after.returncode != 0 and "using the demo" not in after.stderr


def test_the_over_the_limit_alert_is_a_key_event():
    from edge.events import Event
    from simulator.demo import key_event

    raised = Event("dlm.over_fuse", "", "2026-12-06T18:00:00Z", {
        "circuit": "grid", "phase": "L2", "active": True, "limit": 63.0, "since": "2026-12-06T17:59:58Z",
        "ended": None, "lasted_s": 2.5, "peak": 66.0, "excess_as": 7.5, "window_s": 2.0,
        "done": "every car on it cut to its minimum"})
    assert key_event(raised) == ("ALERT circuit grid L2 over its 63 A limit: peak 66 A for 2.5 s; "
                                 "every car on it cut to its minimum")
    ended = Event("dlm.over_fuse", "", "2026-12-06T18:01:00Z", {**raised.data, "active": False})
    assert key_event(ended) == "alert ended: circuit grid L2 under its 63 A limit again"
    assert key_event(Event("meter.values", "SIM-1", "2026-12-06T18:00:00Z", {})) is None
