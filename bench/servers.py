"""The central systems under test, each in its own process.

A separate process so psutil can charge CPU and memory to the server alone:
the load generator (hundreds of simulated chargers) runs in the bench
process and must not be counted. Output goes to a file, not a pipe: a pipe
nobody reads fills up and stalls a server that logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator

from simulator.broker import SHIPPED_CONF, MosquittoBroker, adapt_shipped

REPO_ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0


@dataclass
class Server:
    name: str
    process: subprocess.Popen
    url: str  # what the chargers connect to; the charge point id is appended
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid


def free_port() -> int:
    """A port nobody listens on right now (the server binds it a moment later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ready_port(log_path: Path, name: str = "ocpp_port") -> int:
    """The port the edge bound, from its `edge ready ... ocpp_port=N api_port=M` line: a bench gives the
    edge port 0 and reads the port back, instead of guessing a free one that another process may take
    between the guess and the bind."""
    match = re.search(rf"edge ready .*\b{name}=(\d+)", log_path.read_text(errors="replace"))
    if match is None:
        raise RuntimeError(f"the edge's ready line in {log_path} names no {name}")
    return int(match[1])


def edge_config(*, ocpp_port: int, api_port: int, charger_ids: list[str], password_hash: str, id_tag: str) -> str:
    chargers = "".join(f'\n[[chargers]]\nid = "{cid}"\npassword_hash = "{password_hash}"\n' for cid in charger_ids)
    return f"""# Written by `python -m bench ocpp_load`.
[site]
id = "bench"

[ocpp]
host = "127.0.0.1"
port = {ocpp_port}
heartbeat_interval = 60
# The flood guard would cut off chargers in the throughput phase, which sends
# back-to-back on purpose; its per-frame cost is paid all the same.
max_messages_per_second = 1000000
message_burst = 1000000

[api]
host = "127.0.0.1"
port = {api_port}

# One token for the whole fleet: its group may charge at many chargers at once.
[authorization]
default_policy = "all-known"

[[user_groups]]
id = "bench"
allow_concurrent = true

[[tokens]]
id_tag = "{id_tag}"
user_group = "bench"
{chargers}"""


@contextlib.asynccontextmanager
async def edge(work_dir: Path, charger_ids: list[str], password_hash: str, id_tag: str) -> AsyncIterator[Server]:
    config = work_dir / "site.toml"
    config.write_text(edge_config(ocpp_port=0, api_port=0, charger_ids=charger_ids,
                                  password_hash=password_hash, id_tag=id_tag))
    state_dir = work_dir / "state"
    state_dir.mkdir()
    command = [sys.executable, "-m", "edge", "run", "--config", str(config), "--state-dir", str(state_dir)]
    async with _running("edge", command, work_dir / "edge.log", "edge ready") as process:
        port = ready_port(work_dir / "edge.log")
        yield Server("edge", process, f"ws://127.0.0.1:{port}/ocpp", work_dir / "edge.log")


@contextlib.asynccontextmanager
async def bare(work_dir: Path) -> AsyncIterator[Server]:
    port = free_port()
    command = [sys.executable, "-m", "simulator.bare_central_system", "--host", "127.0.0.1", "--port", str(port),
               "--heartbeat-interval", "60"]
    async with _running("bare", command, work_dir / "bare.log", "bare central system on") as process:
        yield Server("bare", process, f"ws://127.0.0.1:{port}/ocpp", work_dir / "bare.log")


@contextlib.asynccontextmanager
async def _running(name: str, command: list[str], log_path: Path, ready_marker: str
                   ) -> AsyncIterator[subprocess.Popen]:
    """Start `command`, wait for `ready_marker` in its output, and always stop it."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=_child_env())
    try:
        await _wait_ready(name, process, log_path, ready_marker)
        yield process
    finally:
        await stop(process)


def _child_env() -> dict[str, str]:
    # The servers import edge/ and simulator/ from this checkout, wherever the bench was started.
    paths = [str(REPO_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "PYTHONUNBUFFERED": "1"}


async def _wait_ready(name: str, process: subprocess.Popen, log_path: Path, marker: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while marker not in log_path.read_text(errors="replace"):
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with code {process.returncode} before it was ready:\n"
                               f"{tail(log_path)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not print {marker!r} within {STARTUP_TIMEOUT:.0f} s:\n{tail(log_path)}")
        await asyncio.sleep(0.1)


async def stop(process: subprocess.Popen) -> None:
    """SIGTERM (the servers shut down cleanly on it), then SIGKILL if it hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while process.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    if process.poll() is None:
        process.kill()
    process.wait()


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


# -- the fleet bench's broker (bench/cloud_fleet.py) ------------------------------------------------------

def fleet_accounts(path: Path, sites: list[str], password: str, clouds: dict[str, str]) -> float:
    """The broker's dynamic-security file for `sites` (each its own account, client id and role, as
    cloud/broker_accounts.py makes them for production) and the cloud's users, made once and kept at
    `path` for the next runs: -> seconds it took to make (0.0: reused).

    One site at a time into an empty file, then joined: broker_accounts.accounts() adds each site to
    the whole file (copying it), quadratic in the sites (about 15 s for 10,000 here)."""
    from cloud.broker_accounts import empty, with_cloud, with_site, write
    if path.exists():
        return 0.0
    started = time.monotonic()
    config = empty()
    for site in sites:
        one = with_site(empty(), site, password)
        config["clients"] += one["clients"]
        config["roles"] += one["roles"]
    for user, secret in clouds.items():
        config = with_cloud(config, user, secret)
    path.parent.mkdir(parents=True, exist_ok=True)
    write(path, config)
    return time.monotonic() - started


def fleet_broker(work_dir: Path, accounts: Path) -> MosquittoBroker:
    """The shipped Mosquitto config (config/mosquitto/mosquitto.conf: dynamic security, persistence
    saved every 10 s) with the accounts made by fleet_accounts (copied: the plugin may write its file).
    Connections: mosquitto's max_connections is unlimited by default (-1); what limits it is the
    file-descriptor limit it inherits, which the bench raises to the hard limit before starting it."""
    class FleetBroker(MosquittoBroker):
        def config_text(self) -> str:
            own = self.workdir / "dynamic-security.json"
            if not own.exists():
                shutil.copyfile(accounts, own)
            return adapt_shipped(SHIPPED_CONF.read_text(), host=self.host, site_port=self.port,
                                 cloud_port=self.cloud_port, workdir=self.workdir, accounts_file=own,
                                 autosave_interval=self.autosave_interval, log_path=self.log_path, tls=None)

    return FleetBroker(work_dir, shipped=True, autosave_interval=10)
