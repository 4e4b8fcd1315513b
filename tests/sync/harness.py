"""Real processes for the end-to-end sync tests: Mosquitto (tests/mqtt_broker.py), the cloud
(`python -m cloud serve`) and the edge (`python -m edge run`), each of which a test can SIGKILL
and start again on the same ports and state; the simulated chargers stay in the test process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.edge.conftest import PASSWORD, PASSWORD_HASH, free_port, site_toml
from tests.mqtt_broker import MosquittoBroker
from tests.stations import Station, make_sim

REPO = Path(__file__).resolve().parents[2]
SITE = "test-site"
CHARGERS = ("CP-1", "CP-2", "CP-3")
CHARGERS_TOML = "".join(f'\n[[chargers]]\nid = "{c}"\npassword_hash = "{PASSWORD_HASH}"\nconnectors = 1\n'
                        for c in CHARGERS) + \
    "".join(f'\n[[tokens]]\nid_tag = "TAG-{c}"\nuser_group = "residents"\n' for c in CHARGERS)


def make_broker(tmp_path: Path) -> MosquittoBroker:
    # The stock test broker saves its persistence once a second: a SIGKILL loses what it acknowledged
    # since. The edge keeps every message until the cloud's receipt, so that costs a resend, not a record.
    return MosquittoBroker(tmp_path)


class Proc:
    """A Python subprocess (its output in a log file) that can be started, SIGKILLed and started again."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path):
        self.name, self.argv, self.env, self.log = name, argv, env, log
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None
        with open(self.log, "ab") as out:
            out.write(f"\n===== start {self.starts + 1} at {time.time():.3f} =====\n".encode())
            out.flush()
            self.process = subprocess.Popen([sys.executable, *self.argv], cwd=REPO, env={**os.environ, **self.env},
                                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.starts += 1

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def terminate(self, timeout: float = 15) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


async def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class CloudProcess(Proc):
    def __init__(self, tmp_path: Path, broker: MosquittoBroker):
        self.db_path = tmp_path / "cloud.db"
        self.url = f"sqlite:///{self.db_path}"
        self.http_port = free_port()
        env = {"DATABASE_URL": self.url, "CLOUD_MQTT_HOST": broker.host, "CLOUD_MQTT_PORT": str(broker.port),
               "CLOUD_MQTT_CLIENT_ID": "cloud-chaos", "CLOUD_HTTP_PORT": str(self.http_port),
               "CLOUD_MQTT_KEEPALIVE": "5", "CLOUD_LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1",
               # The broker a test stops comes back within a second: no 10 s back-off waited out after it.
               "CLOUD_MQTT_RECONNECT_MAX_DELAY": "1"}
        super().__init__("cloud", ["-m", "cloud", "serve"], env, tmp_path / "cloud.log")
        self.token = ""

    def admin(self, *commands: tuple[str, ...]) -> list[str]:
        """`python -m cloud COMMAND...` for each command, in one process (a start costs half a second):
        -> what each printed. The first failing command fails the lot, as `check=True` would."""
        script = ("import contextlib, io, json, sys\nfrom cloud.cli import main\nouts = []\n"
                  "for argv in json.loads(sys.argv[1]):\n    out = io.StringIO()\n"
                  "    with contextlib.redirect_stdout(out):\n        code = main(argv)\n"
                  "    if code:\n        sys.exit(f'cloud {argv}: exit {code}')\n    outs.append(out.getvalue())\n"
                  "print(json.dumps(outs))\n")
        argvs = [["--database-url", self.url, *command] for command in commands]
        done = subprocess.run([sys.executable, "-c", script, json.dumps(argvs)], cwd=REPO,
                              env={**os.environ, **self.env}, check=True, capture_output=True, text=True)
        return json.loads(done.stdout.splitlines()[-1])

    def setup_operator(self) -> None:
        outs = self.admin(("migrate",), ("operators", "add", "ops"), ("tokens", "add", "ops"),
                          ("sites", "assign", SITE, "ops"))
        self.token = outs[2].split()[0]

    def subscribed_count(self) -> int:
        try:
            return self.log.read_text(errors="replace").count("subscribed to")
        except OSError:
            return 0

    async def start_ready(self, timeout: float = 30) -> None:
        before = self.subscribed_count()
        self.start()
        await wait_until(lambda: listening(self.http_port) and self.subscribed_count() > before or
                         (not self.running and _raise(f"cloud exited:\n{self.log_tail()}")),
                         timeout, "the cloud to listen and subscribe")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/api/v1/sites/{SITE}"

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            async with http.request(method, self.base + path, json=body,
                                    headers={"Authorization": f"Bearer {self.token}"}) as resp:
                return resp.status, await resp.json()

    def rows(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        return read_only(self.db_path, sql, params)


class EdgeProcess(Proc):
    def __init__(self, tmp_path: Path, broker: MosquittoBroker, broker_port: int | None = None):
        self.state_dir = tmp_path / "edge-state"
        self.state_dir.mkdir()
        self.ocpp_port = free_port()
        uplink = {"enabled": True, "host": broker.host, "port": broker_port or broker.port, "keepalive": 5,
                  "reconnect_min_delay": 0.1, "reconnect_max_delay": 0.5}
        extra = "[uplink]\n" + "\n".join(f"{k} = {json.dumps(v)}" for k, v in uplink.items()) + "\n"
        config = tmp_path / "site.toml"
        config.write_text(site_toml(self.state_dir, extra=extra, chargers=CHARGERS_TOML, ocpp_port=self.ocpp_port))
        super().__init__("edge", ["-m", "edge", "run", "--config", str(config), "--state-dir", str(self.state_dir)],
                         {"PYTHONUNBUFFERED": "1"}, tmp_path / "edge.log")
        self.journal = self.state_dir / "journal.sqlite"

    async def start_ready(self, timeout: float = 30) -> None:
        self.start()
        await wait_until(lambda: listening(self.ocpp_port) or
                         (not self.running and _raise(f"edge exited:\n{self.log_tail()}")),
                         timeout, "the edge to listen")

    def rows(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        return read_only(self.journal, sql, params)

    def outbox_backlog(self) -> dict[str, int]:
        return {r["stream"]: r["n"] for r in self.rows("SELECT stream, count(*) AS n FROM outbox GROUP BY stream")}


def _raise(message: str) -> bool:
    raise AssertionError(message)


def read_only(path: Path, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        conn.row_factory = sqlite3.Row
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


class Driver:
    """A simulated charger in the test process, and a driver who charges on it over and over.
    Every step's outcome is recorded; nothing the central system does stops the loop."""

    def __init__(self, charger_id: str, ocpp_port: int, rng: random.Random, id_tag: str | None = None,
                 session_s: tuple[float, float] = (0.5, 2.0), idle_s: tuple[float, float] = (0.1, 0.6),
                 version: str = "1.6"):
        # Either OCPP version (tests/stations.py): the same driver, the same steps.
        periodic = {"meter_interval": 1.0} if version == "1.6" else {"tx_updated_interval": 1}
        self.station = Station(version, make_sim(version, charger_id, f"ws://127.0.0.1:{ocpp_port}/ocpp",
                                                 connectors=1, password=PASSWORD, reconnect_delay=0.1,
                                                 response_timeout=5, ramp_seconds=3.0, **periodic))
        self.sim = self.station.sim
        self.rng, self.session_s, self.idle_s = rng, session_s, idle_s
        self.id_tag = id_tag or f"TAG-{charger_id}"   # its own card: one tag cannot charge twice at once
        self.sessions: list[dict[str, Any]] = []   # one per attempt: what happened, and how long each step took
        self.errors: list[str] = []
        self.stopping = False

    async def run(self) -> None:
        runner = asyncio.create_task(self.sim.run())
        try:
            while not self.stopping:
                await self.sim.wait_accepted(timeout=None)
                await asyncio.sleep(self.rng.uniform(*self.idle_s))
                await self.one_session()
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner

    async def one_session(self) -> None:
        record: dict[str, Any] = {"online_at_start": self.sim.link is not None}
        self.sessions.append(record)
        try:
            await self.sim.plug_in(1, car_max_current=16.0, car_phases=3, soc=30.0)
            t0 = time.monotonic()
            record["auth"] = await self.station.authorize(self.id_tag)
            record["auth_s"] = time.monotonic() - t0
            if record["auth"] == "Accepted":
                t0 = time.monotonic()
                record["tx"] = await self.station.start(1, self.id_tag)   # True: the edge answered the start
                record["start_s"] = time.monotonic() - t0
                await asyncio.sleep(self.rng.uniform(*self.session_s))
                record["offered_a"] = self.sim.offered_current(1)
                if self.station.running(1):
                    t0 = time.monotonic()
                    await self.station.stop(1, "Local", tag=self.id_tag)
                    record["stop_s"] = time.monotonic() - t0
        except Exception as exc:  # noqa: BLE001 - the chaos test counts these, it does not stop on them
            record["error"] = f"{type(exc).__name__}: {exc}"
            self.errors.append(record["error"])
        finally:
            with contextlib.suppress(Exception):
                await self.sim.unplug(1)


class LinkCut:
    """A TCP relay between the edge and the broker that the test can cut: the site's internet
    connection going down, while the broker and the cloud stay up."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.port = free_port()
        self.server: asyncio.AbstractServer | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def up(self) -> None:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def down(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for w in list(self.writers):
            w.transport.abort()
        self.writers.clear()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                dst.transport.abort()
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.writers -= {writer, up_writer}
