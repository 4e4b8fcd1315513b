"""The edge's start and stop, as a real process with real sockets and signals.

A start that cannot proceed ends within seconds with one line naming the port or
the file; SIGTERM and SIGINT are honoured at any moment (also before the edge is
ready, and while its event loop is stuck in a computation); an invalid config at
a restart runs the site on the last good config, loudly, instead of leaving it
unmanaged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import sqlite3
import sys
import time
import urllib.request
from pathlib import Path
from typing import AsyncIterator

import pytest

from edge.lifecycle import STOP_GRACE_S
from tests.edge.conftest import free_port, site_toml

ROOT = Path(__file__).resolve().parents[2]
# What these tests catch is a start or a stop that hangs: the guard is generous, as a Python start alone
# (its imports) takes seconds on a loaded machine. The one timing the edge promises is its stop deadline
# (STOP_GRACE_S after the first signal), and that test times it.
HANG_S = 60.0


def edge_command(config: Path, state: Path) -> list[str]:
    return [sys.executable, "-m", "edge", "run", "--config", str(config), "--state-dir", str(state)]


# `python -c` with one part of the start replaced: a start that hangs (awaits forever) or
# an event loop stuck in a computation (a loop that never yields), as a stuck journal or
# an overflowing price computation did.
PATCHED = """
import asyncio, os, signal, sys, time
from edge import app, lifecycle

async def build(self):
    print("build started", flush=True)
    if sys.argv[1] == "hang":
        await asyncio.Event().wait()
    while True:
        pass

def handle(self, signum, frame, taken=lifecycle.SignalStop._handle):
    taken(self, signum, frame)
    os.write(1, f"took {signal.Signals(signum).name}\\n".encode())

app.Edge._build = build
lifecycle.SignalStop._handle = handle     # says when a signal was taken (a second one ends it before)
from edge.cli import main
sys.exit(main(sys.argv[2:]))
"""


async def spawn(*argv: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(*argv, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)


async def finish(proc: asyncio.subprocess.Process, within: float) -> tuple[int, str, str]:
    try:
        out, err = await asyncio.wait_for(proc.communicate(), within)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"the edge did not exit within {within} s") from None
    return proc.returncode, out.decode(), err.decode()


async def wait_for_line(proc: asyncio.subprocess.Process, text: str, within: float = HANG_S) -> list[str]:
    lines: list[str] = []
    async with asyncio.timeout(within):
        while True:
            line = (await proc.stdout.readline()).decode()
            assert line, f"the edge exited before saying {text!r}:\n{''.join(lines)}"
            lines.append(line)
            if text in line:
                return lines


def write_site(tmp_path: Path, api_port: int | None = None, **kwargs) -> Path:
    config = tmp_path / "site.toml"
    config.write_text(site_toml(tmp_path, ocpp_port=free_port(), **kwargs)
                      .replace("[api]\nport = 0", f"[api]\nport = {api_port or free_port()}"))
    return config


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("taken", ["ocpp", "api"])
async def test_a_port_taken_ends_the_start_with_one_line(tmp_path, taken):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        config = tmp_path / "site.toml"
        text = site_toml(tmp_path, ocpp_port=port if taken == "ocpp" else 0)
        config.write_text(text.replace("[api]\nport = 0", f"[api]\nport = {port if taken == 'api' else 0}"))
        rc, out, err = await finish(await spawn(*edge_command(config, tmp_path)), HANG_S)
    assert rc != 0
    line = one_line(err)
    assert f"127.0.0.1:{port}" in line and "Address already in use" in line, line
    assert ("OCPP" if taken == "ocpp" else "local API") in line
    assert "Traceback" not in out + err


def _journal_is_a_directory(tmp_path: Path) -> tuple[list[str], str]:
    (tmp_path / "journal.sqlite").mkdir()
    return [], "journal.sqlite"


def _journal_is_garbage(tmp_path: Path) -> tuple[list[str], str]:
    (tmp_path / "journal.sqlite").write_bytes(b"not a database at all " * 100)
    return [], "journal.sqlite"


def _token_file_is_a_directory(tmp_path: Path) -> tuple[list[str], str]:
    (tmp_path / "api-token").mkdir()
    return [], "api-token"


def _state_dir_is_a_file(tmp_path: Path) -> tuple[list[str], str]:
    (tmp_path / "state").write_text("a file, not a directory")
    return ["--state-dir", str(tmp_path / "state")], "state"


@pytest.mark.parametrize("make", [_journal_is_a_directory, _journal_is_garbage, _token_file_is_a_directory,
                                  _state_dir_is_a_file])
async def test_an_unusable_file_ends_the_start_with_one_line(tmp_path, make):
    config = write_site(tmp_path)
    state_args, named = make(tmp_path)
    argv = edge_command(config, tmp_path)[:-2] + (state_args or ["--state-dir", str(tmp_path)])
    rc, out, err = await finish(await spawn(*argv), HANG_S)
    assert rc != 0
    line = one_line(err)
    assert line.startswith("edgectl run: cannot start: ") and str(tmp_path / named) in line, line
    assert "Traceback" not in out + err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_before_ready_stops_the_start(tmp_path, sig):
    config = write_site(tmp_path)
    proc = await spawn(sys.executable, "-c", PATCHED, "hang", *edge_command(config, tmp_path)[3:])
    await wait_for_line(proc, "build started")
    proc.send_signal(sig)
    rc, out, err = await finish(proc, HANG_S)
    assert rc == 0, (out, err)
    assert "edge start cancelled by a signal" in out and "edge stopped" in out
    assert "Traceback" not in out + err


async def test_a_second_signal_ends_a_stuck_edge_at_once(tmp_path):
    config = write_site(tmp_path)
    proc = await spawn(sys.executable, "-c", PATCHED, "spin", *edge_command(config, tmp_path)[3:])
    await wait_for_line(proc, "build started")
    proc.send_signal(signal.SIGTERM)
    await wait_for_line(proc, "took SIGTERM")     # the first is taken: the loop is stuck, nothing stops yet
    assert proc.returncode is None
    proc.send_signal(signal.SIGINT)
    rc, _, err = await finish(proc, HANG_S)      # not at the deadline: that would say "not stopped"
    assert rc != 0 and "SIGINT again: exiting at once" in err


async def test_sigterm_ends_an_edge_stuck_in_a_computation_within_10_s(tmp_path):
    config = write_site(tmp_path)
    proc = await spawn(sys.executable, "-c", PATCHED, "spin", *edge_command(config, tmp_path)[3:])
    await wait_for_line(proc, "build started")
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    rc, _, err = await finish(proc, HANG_S)
    assert rc != 0 and STOP_GRACE_S - 1 < time.monotonic() - sent < STOP_GRACE_S + 2
    assert "not stopped 10 s after SIGTERM: exiting at once" in err


# -- the last good config --------------------------------------------------------------------------------

@contextlib.asynccontextmanager
async def running_edge(config: Path, state: Path) -> AsyncIterator[tuple[asyncio.subprocess.Process, list[str]]]:
    proc = await spawn(*edge_command(config, state))
    try:
        lines = await wait_for_line(proc, "edge ready")
        yield proc, lines
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            rc, out, _ = await finish(proc, STOP_GRACE_S + HANG_S)   # past its own deadline: rc says so
            lines += out.splitlines()
            assert rc == 0


async def edgectl(*args: str) -> tuple[int, str, str]:
    return await finish(await spawn(sys.executable, "-m", "edge", *args), HANG_S)


UPLINK = """
[uplink]
enabled = true
host = "127.0.0.1"
port = {port}
"""


async def test_an_invalid_config_at_restart_runs_on_the_last_good_one_loudly(tmp_path):
    api_port = free_port()
    dead_broker = free_port()    # nobody listens: the alert waits in the outbox, as it would offline
    config = write_site(tmp_path, api_port=api_port, extra=UPLINK.format(port=dead_broker))
    good = config.read_text()
    async with running_edge(config, tmp_path):
        pass
    kept = tmp_path / "last-good-site.toml"
    assert kept.read_text() == good and kept.stat().st_mode & 0o777 == 0o600

    # An edit breaks it: two chargers whose ids differ only in case.
    config.write_text(good.replace('id = "CP-2"', 'id = "cp-1"'))
    rc, _, err = await edgectl("config", "check", str(config))
    assert rc == 2 and "charger id 'CP-1' (as 'cp-1') appears more than once" in err

    async with running_edge(config, tmp_path) as (proc, lines):
        log = "".join(lines)
        assert "level=error" in log and "is invalid (1 problem(s)); running on the last good config" in log
        assert "config problem: charger id 'CP-1' (as 'cp-1') appears more than once" in log
        rc, _, err = await edgectl("chargers", "--config", str(config), "--state-dir", str(tmp_path))
        assert rc == 0 and "edgectl: warning: the site config" in err   # edgectl still reaches the edge
        cli = ["--config", str(config), "--state-dir", str(tmp_path)]
        rc, out, _ = await edgectl("config", "status", *cli)
        assert rc == 1 and "RUNNING ON THE LAST GOOD CONFIG" in out and "'cp-1') appears more than once" in out
        token = (tmp_path / "api-token").read_text().strip()
        request = urllib.request.Request(f"http://127.0.0.1:{api_port}/api/v1/config",
                                         headers={"Authorization": f"Bearer {token}"})
        with await asyncio.to_thread(urllib.request.urlopen, request, timeout=5) as response:
            status = json.loads(response.read())
        assert (status["ok"], status["running_on"], status["last_good"]) == (False, "last good config", str(kept))
        # It serves chargers: the site is managed.
        with socket.create_connection(("127.0.0.1", int(good.split("port = ")[1].split()[0])), timeout=2):
            pass
    # And the cloud hears of it: an alert in the outbox, sent when the link is up.
    db = sqlite3.connect(tmp_path / "journal.sqlite")
    [(body,)] = db.execute("SELECT body FROM outbox WHERE type = 'alert.config_invalid'").fetchall()
    assert json.loads(body)["problems"] == ["charger id 'CP-1' (as 'cp-1') appears more than once in [[chargers]]"]
    assert kept.read_text() == good          # the invalid config never becomes the last good one

    config.write_text(good)                  # fixed: back on the site config, silently
    async with running_edge(config, tmp_path) as (proc, lines):
        rc, out, _ = await edgectl("config", "status", "--config", str(config), "--state-dir", str(tmp_path))
        assert rc == 0 and "running on the site config" in out


async def test_an_invalid_config_without_a_last_good_one_refuses_to_start(tmp_path):
    config = tmp_path / "site.toml"
    config.write_text('[site]\nid = "s"\n[[tariffs]]\nid = "t"\ntype = "duration-energy"\n'
                      "blocking_fee_per_minute = 0.1\nblocking_after_minutes = 1e10\n")
    rc, out, err = await finish(await spawn(*edge_command(config, tmp_path)), HANG_S)
    assert rc == 2 and "blocking_after_minutes: Input should be less than or equal to 44640" in err
    assert "nothing was started" in err and not (tmp_path / "journal.sqlite").exists()


async def test_a_network_facing_api_is_warned_about_at_start(tmp_path):
    config = write_site(tmp_path)
    config.write_text(config.read_text().replace("[api]\n", '[api]\nhost = "0.0.0.0"\n'))
    async with running_edge(config, tmp_path) as (_, lines):
        assert any("level=warning" in line and "[api] host = '0.0.0.0' is reachable from the network" in line
                   for line in lines), lines

