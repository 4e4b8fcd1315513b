"""The cloud at fleet scale (issue 18): N light simulated sites against one and then two cloud
instances in the same run, then the reconnect storm after a broker restart.

    python -m bench fleet --json                              # 1,000 sites, 60 s per setup, the storm
    python -m bench fleet --sites 10000 --generators 2 --json
    python -m bench fleet --sites 3000 --telemetry-interval 10 --json   # six times the edge's telemetry

The sites are bench/fleet_sites.py: contract-level clients, thousands per process on one event loop,
each with its own broker account, speaking to the broker as edge/uplink does (persistent session,
birth and will, receipts awaited, resends, the edge's reconnect backoff), at the edge's rates
(telemetry every 60 s; sessions: start, status changes, stop, charge record). The cloud runs as it
ships: `python -m cloud serve` processes on PostgreSQL and the shipped Mosquitto config (dynamic
security: 10,000 accounts are made once and kept, see bench/servers.py fleet_accounts).

One run: the broker, one instance, all sites connected (time measured), traffic on; a window of
`--seconds` with one instance; a second instance started; a window with two; then the broker is
restarted (SIGTERM: it saves its sessions; then started again) while traffic goes on, and the storm is
watched until every site is back and everything created before the broker returned is stored.
Measured per window: stored msg/s (the cloud database's own count), receipt latency p50/p99 of the
messages created in the window (message created at the site to the cloud's receipt, resends
included), CPU seconds of every process (instances, broker, the PostgreSQL backends serving the
instances, the load generators) and per stored message; disk bytes per site-day from the schema's size.
Goals: 10,000 sites on two instances with receipt p99 < 2 s; the storm drained within 5 minutes.
See docs/performance.md, "Fleet".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import psycopg

from bench.measure import progress
from bench.fleet_sites import raise_fd_limit
from bench.servers import fleet_accounts, fleet_broker, free_port, tail

REPO = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get("CLOUD_TEST_POSTGRES_URL") or \
    "postgresql://sitecontroller_test:sitecontroller_test@127.0.0.1:5432/sitecontroller_test"
CLOUD_PASSWORD = "bench-cloud"
SITE_PASSWORD = "bench-site"
ACCOUNTS_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sitecontroller-bench"
GOAL_P99_S = 2.0
GOAL_STORM_S = 300.0
MESSAGES_PER_SESSION = 7      # started, 2 status, 2 status, stopped, cdr (bench/fleet_sites.py)
SITES_PER_GENERATOR = 5000


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench fleet", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60.0, help="each setup's measured window")
    parser.add_argument("--warmup", type=float, default=15.0, help="before each window")
    parser.add_argument("--telemetry-interval", type=float, default=60.0, help="s (the edge's default: 60)")
    parser.add_argument("--sessions-per-day", type=float, default=6.0, help="per site")
    parser.add_argument("--instances", default="1,2", help="setups, in order, e.g. 1,2")
    parser.add_argument("--generators", type=int, default=0,
                        help=f"load-generator processes (default: one per {SITES_PER_GENERATOR} sites)")
    parser.add_argument("--no-storm", dest="storm", action="store_false", help="skip the broker restart")
    parser.add_argument("--storm-outage", type=float, default=0.0,
                        help="s the broker stays down in the restart (0: a plain restart)")
    parser.add_argument("--storm-timeout", type=float, default=900.0)
    parser.add_argument("--drain-timeout", type=float, default=600.0,
                        help="s to wait at the end for the sites' last receipts")
    parser.add_argument("--keep", action="store_true", help="keep the work directory and the schema")
    parser.add_argument("--json", action="store_true")
    return parser.parse_args(argv)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- the processes ----------------------------------------------------------------------------------------

@dataclass
class Instance:
    name: str
    process: subprocess.Popen
    http_port: int

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/api/v1/health"


def start_instance(name: str, url: str, broker: Any, workdir: Path) -> Instance:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "CLOUD_MQTT_HOST": broker.host, "CLOUD_MQTT_PORT": str(broker.cloud_port),
           "CLOUD_MQTT_USERNAME": "cloud", "CLOUD_MQTT_PASSWORD": CLOUD_PASSWORD, "CLOUD_MQTT_CLIENT_ID": name,
           "CLOUD_HTTP_HOST": "127.0.0.1", "CLOUD_HTTP_PORT": str(port), "CLOUD_LOG_LEVEL": "WARNING"}
    process = subprocess.Popen([sys.executable, "-m", "cloud", "serve"], cwd=REPO, env=env,
                               stdout=open(workdir / f"{name}.log", "wb"), stderr=subprocess.STDOUT,
                               start_new_session=True)
    return Instance(name, process, port)


async def health(http: aiohttp.ClientSession, instance: Instance) -> dict[str, Any] | None:
    try:
        async with http.get(instance.health_url, timeout=aiohttp.ClientTimeout(total=5)) as response:
            doc = await response.json()
            return doc if response.status == 200 else None
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
        return None


async def until_healthy(http: aiohttp.ClientSession, instance: Instance, workdir: Path, timeout: float = 60) -> None:
    """Until the instance answers 200 (connected to the broker, subscribed, the database reachable)."""
    deadline = time.monotonic() + timeout
    while await health(http, instance) is None:
        if instance.process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{instance.name} is not healthy:\n{tail(workdir / f'{instance.name}.log')}")
        await asyncio.sleep(0.3)


@dataclass
class Generator:
    """One load-generator process (bench/fleet_sites.py) and its latest status line."""
    process: asyncio.subprocess.Process
    status: dict[str, Any] = field(default_factory=dict)
    replies: asyncio.Queue = field(default_factory=asyncio.Queue)

    async def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((line + "\n").encode())
        await self.process.stdin.drain()

    async def read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            doc = json.loads(raw)
            if "status" in doc:
                self.status = doc["status"]
            else:
                await self.replies.put(doc)


async def start_generators(args: argparse.Namespace, broker: Any, workdir: Path) -> tuple[list[Generator], list]:
    count = args.generators or max(1, math.ceil(args.sites / SITES_PER_GENERATOR))
    share = math.ceil(args.sites / count)
    generators, readers = [], []
    for g in range(count):
        first = g * share
        n = min(share, args.sites - first)
        if n <= 0:
            break
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.fleet_sites", "--host", broker.host, "--port", str(broker.port),
            "--first", str(first), "--count", str(n), "--password", SITE_PASSWORD, "--seed", str(g + 1),
            "--telemetry-interval", str(args.telemetry_interval), "--sessions-per-day", str(args.sessions_per_day),
            cwd=REPO, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=open(workdir / f"generator{g + 1}.log", "wb"), limit=2**24)
        generators.append(Generator(process))
        readers.append(asyncio.create_task(generators[-1].read()))
    return generators, readers


def total(generators: list[Generator], key: str) -> int:
    return sum(int(g.status.get(key) or 0) for g in generators)


# -- what is measured -------------------------------------------------------------------------------------

class Database:
    def __init__(self, schema: str) -> None:
        self.schema = schema
        self.admin = psycopg.connect(POSTGRES_URL, autocommit=True)

    def stored(self) -> int:
        """Messages in the cloud database: the per-stream count of distinct messages it keeps."""
        return int(self.admin.execute(f'SELECT coalesce(sum(received), 0) FROM "{self.schema}".streams').fetchone()[0])

    def gaps(self) -> int:
        return int(self.admin.execute(
            f'SELECT count(*) FROM "{self.schema}".streams WHERE last_seq <> received').fetchone()[0])

    def size(self) -> int:
        """Bytes of every table of the schema with its indexes and TOAST (partitions included)."""
        return int(self.admin.execute(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind IN ('r', 'm')",
            (self.schema,)).fetchone()[0])

    def backends(self, pids: list[int]) -> list[int]:
        """The PostgreSQL backends serving these processes (by their client ports)."""
        ports = set()
        for pid in pids:
            try:
                ports |= {c.laddr.port for c in psutil.Process(pid).net_connections("tcp")
                          if c.raddr and c.raddr.port == 5432}
            except psutil.Error:
                continue
        if not ports:
            return []
        rows = self.admin.execute("SELECT pid FROM pg_stat_activity WHERE client_port = ANY(%s)",
                                  (list(ports),)).fetchall()
        return [r[0] for r in rows]


class CpuMeter:
    """CPU seconds per named group of processes between two readings. Remembers each process's last
    reading, so a process that ends in between (the broker before its restart) still counts."""

    def __init__(self) -> None:
        self.last: dict[int, float] = {}

    def read(self, pids: dict[str, list[int]]) -> dict[str, dict[int, float]]:
        out: dict[str, dict[int, float]] = {}
        for name, group in pids.items():
            for pid in group:
                try:
                    times = psutil.Process(pid).cpu_times()
                    self.last[pid] = times.user + times.system
                except psutil.Error:
                    pass
            out[name] = {pid: self.last[pid] for pid in group if pid in self.last}
        return out

    def since(self, before: dict[str, dict[int, float]], pids: dict[str, list[int]]) -> dict[str, float]:
        after = self.read(pids)
        names = {*before, *after}
        out = {}
        for name in names:
            seen = {**before.get(name, {}), **after.get(name, {})}
            out[name] = round(sum(self.last.get(pid, 0.0) - before.get(name, {}).get(pid, 0.0) for pid in seen), 2)
        return out


@dataclass
class Window:
    name: str
    instances: int
    start: float          # wall clock: messages created from here ...
    end: float = 0.0      # ... to here are this window's
    stored: int = 0
    cpu: dict[str, float] = field(default_factory=dict)
    quiet_before: bool = True   # the instances had caught up when the warm-up began
    pending_at_end: int = 0     # messages the sites still held, unconfirmed, when the window ended


class Run:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args, self.workdir = args, workdir
        self.schema = f"benchfleet_{uuid.uuid4().hex[:12]}"
        self.url = f"{POSTGRES_URL}?options=-csearch_path%3D{self.schema}"
        self.instances: list[Instance] = []
        self.generators: list[Generator] = []
        self.windows: list[Window] = []
        self.report: dict[str, Any] = {}
        self.cpu = CpuMeter()

    def pids(self) -> dict[str, list[int]]:
        out = {i.name: [i.process.pid] for i in self.instances}
        out["broker"] = [self.broker.process.pid] if self.broker.process else []
        out["postgres (backends of the instances)"] = self.db.backends([i.process.pid for i in self.instances])
        for n, g in enumerate(self.generators, 1):
            out[f"generator{n}"] = [g.process.pid]
        return out

    async def main(self) -> dict[str, Any]:
        args = self.args
        limit = raise_fd_limit()       # the broker, started from here, inherits it
        if limit < args.sites + 512:
            raise RuntimeError(f"the open-files limit is {limit}: {args.sites} sites need more (ulimit -Hn)")
        names = [f"s{n:05d}" for n in range(args.sites)]
        accounts = ACCOUNTS_DIR / f"fleet-accounts-{args.sites}.json"
        made = fleet_accounts(accounts, names, SITE_PASSWORD, {"cloud": CLOUD_PASSWORD})
        self.report["accounts"] = {"sites": args.sites, "file": str(accounts), "made_s": round(made, 1),
                                   "reused": made == 0.0}
        progress(f"accounts: {'reused' if made == 0.0 else f'made in {made:.1f} s'} ({accounts})")
        self.db = Database(self.schema)
        self.db.admin.execute(f'CREATE SCHEMA "{self.schema}"')
        self.broker = fleet_broker(self.workdir, accounts)
        started = time.monotonic()
        self.broker.start(timeout=120)
        self.report["broker_start_s"] = round(time.monotonic() - started, 2)
        readers: list[asyncio.Task] = []
        async with aiohttp.ClientSession() as http:
            self.http = http
            try:
                setups = [int(x) for x in args.instances.split(",")]
                await self.scale_to(setups[0])
                base_size = self.db.size()
                self.generators, readers = await start_generators(args, self.broker, self.workdir)
                await self.connect_all()
                await self.send("traffic on")
                for count in setups:
                    await self.scale_to(count)
                    quiet = await self.quiet()      # a new instance first handles every site's retained state
                    await self.measure(count, quiet)
                if args.storm:
                    await self.storm()
                await self.send("traffic off")
                await self.drain(args.drain_timeout)
                await self.summarise(base_size)
            finally:
                await self.close(readers)
        return self.report

    async def send(self, line: str) -> None:
        for g in self.generators:
            await g.send(line)

    async def scale_to(self, count: int) -> None:
        while len(self.instances) < count:
            instance = start_instance(f"cloud-{len(self.instances) + 1}", self.url, self.broker, self.workdir)
            self.instances.append(instance)
            await until_healthy(self.http, instance, self.workdir)
            progress(f"{instance.name} healthy")

    async def connect_all(self) -> None:
        started = time.monotonic()
        cpu0 = self.cpu.read(self.pids())
        await self.send("connect")
        deadline = started + 120 + self.args.sites / 20
        await asyncio.sleep(1.0)
        while total(self.generators, "connected") < self.args.sites:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{total(self.generators, 'connected')} of {self.args.sites} sites connected "
                                   f"after {deadline - started:.0f} s; last error: "
                                   f"{[g.status.get('last_error') for g in self.generators]}")
            await asyncio.sleep(0.5)
        seconds = time.monotonic() - started
        await self.quiet()
        cpu = self.cpu.since(cpu0, self.pids())
        self.report["connect"] = {"sites": self.args.sites, "seconds": round(seconds, 1),
                                  "per_s": round(self.args.sites / seconds, 1),
                                  "births_handled_s": round(time.monotonic() - started, 1),
                                  "cpu_s": cpu,
                                  "failures": total(self.generators, "connect_failed")}
        progress(f"connected: {json.dumps(self.report['connect'])}")

    async def quiet(self, timeout: float = 120) -> bool:
        """Until no instance has anything waiting (the sites' births are handled), for at most `timeout`
        (under more traffic than the instances carry, that never comes). -> whether it came."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            docs = [await health(self.http, i) for i in self.instances]
            if all(d is not None and not d.get("ingest_waiting") for d in docs):
                return True
            await asyncio.sleep(1.0)
        progress(f"the instances still had work waiting after {timeout:.0f} s: measuring all the same")
        return False

    async def measure(self, instances: int, quiet: bool) -> None:
        await asyncio.sleep(self.args.warmup)
        window = Window(f"{instances} instance(s)", instances, time.time(), quiet_before=quiet)
        cpu0, stored0 = self.cpu.read(self.pids()), self.db.stored()
        await asyncio.sleep(self.args.seconds)
        window.end = time.time()
        window.cpu, window.stored = self.cpu.since(cpu0, self.pids()), self.db.stored() - stored0
        window.pending_at_end = total(self.generators, "pending")
        self.windows.append(window)
        progress(f"{window.name}: stored {window.stored / self.args.seconds:.1f} msg/s, "
                 f"pending at the sites {total(self.generators, 'pending')}")

    async def storm(self) -> None:
        """The broker restarted under traffic; until every site is back and everything created before the
        broker returned is stored."""
        args = self.args
        pending0 = total(self.generators, "pending")
        failed0, refused0 = total(self.generators, "connect_failed"), total(self.generators, "refused")
        resent0, lost0 = total(self.generators, "resent"), total(self.generators, "disconnected")
        cpu0 = self.cpu.read(self.pids())
        stopped = time.time()
        self.cpu.read(self.pids())         # the broker's last reading before it goes
        self.broker.stop()
        await asyncio.sleep(args.storm_outage)
        self.broker.start(timeout=120)
        back = time.time()
        progress(f"broker restarted in {back - stopped:.1f} s")
        peak_pending, peak_waiting, all_back, drained = 0, 0, None, None
        while time.time() - back < args.storm_timeout:
            await asyncio.sleep(1.0)
            pending = total(self.generators, "pending")
            peak_pending = max(peak_pending, pending)
            for instance in self.instances:
                doc = await health(self.http, instance)
                if doc:
                    peak_waiting = max(peak_waiting, int(doc.get("ingest_waiting") or 0))
            # Every site has seen its connection end (a status line from before says nothing) and is back.
            if all_back is None and total(self.generators, "disconnected") - lost0 >= args.sites \
                    and total(self.generators, "connected") == args.sites:
                all_back = max(g.status["t"] for g in self.generators)
            oldest = [g.status.get("oldest_pending") for g in self.generators]
            if all_back is not None and all(o is None or o >= back for o in oldest):
                drained = time.time()
                break
        cpu = self.cpu.since(cpu0, self.pids())
        self.storm_window = (stopped, drained or time.time())
        self.report["storm"] = {
            "broker_restart_s": round(back - stopped, 2), "outage_asked_s": args.storm_outage,
            "all_reconnected_s": round(all_back - back, 1) if all_back else None,
            "drained_s": round(drained - back, 1) if drained else None,
            "goal_s": GOAL_STORM_S, "goal_met": drained is not None and drained - back <= GOAL_STORM_S,
            "pending_before": pending0, "peak_pending_messages": peak_pending,
            "peak_ingest_waiting": peak_waiting,
            "connect_failures": total(self.generators, "connect_failed") - failed0,
            "refused_publishes": total(self.generators, "refused") - refused0,
            "messages_resent": total(self.generators, "resent") - resent0,
            "cpu_s": cpu}
        progress(f"storm: {json.dumps(self.report['storm'])}")

    async def drain(self, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while total(self.generators, "pending") and time.monotonic() < deadline:
            await asyncio.sleep(1.0)

    async def _reports(self) -> tuple[list[tuple[float, float]], list[dict]]:
        latencies: list[tuple[float, float]] = []
        statuses = []
        for n, g in enumerate(self.generators, 1):
            path = self.workdir / f"generator{n}.json"
            await g.send(f"report {path}")
            await asyncio.wait_for(g.replies.get(), 120)
            doc = json.loads(path.read_text())
            latencies += [tuple(x) for x in doc["latencies"]]
            statuses.append(doc["status"])
        return latencies, statuses

    async def summarise(self, base_size: int) -> None:
        latencies, statuses = await self._reports()
        # The drain reads the sites' periodic status lines, which can be a moment old: a message whose
        # receipt was still on its way when the last line was written is asked about again, briefly.
        deadline = time.monotonic() + min(self.args.drain_timeout, 30.0)
        while sum(s["pending"] for s in statuses) and time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            latencies, statuses = await self._reports()
        created = sum(s["created"] for s in statuses)
        stored, gaps = self.db.stored(), self.db.gaps()
        size = self.db.size() - base_size
        per_message = size / stored if stored else None
        per_day = 86400 / self.args.telemetry_interval + MESSAGES_PER_SESSION * self.args.sessions_per_day
        setups = []
        for w in self.windows:
            seconds = w.end - w.start
            mine = [lat for at, lat in latencies if w.start <= at < w.end]
            busy = sum(v for k, v in w.cpu.items() if not k.startswith("generator"))
            setups.append({
                "instances": w.instances, "sites": self.args.sites, "seconds": round(seconds, 1),
                "caught_up_before": w.quiet_before, "left_at_sites_at_end": w.pending_at_end,
                "created_msg_s": round(len(mine) / seconds, 1), "stored_msg_s": round(w.stored / seconds, 1),
                "receipt_p50_s": _round(percentile(mine, 0.5)), "receipt_p99_s": _round(percentile(mine, 0.99)),
                "receipt_max_s": _round(max(mine, default=None)),
                "cpu_s": {k: round(v, 2) for k, v in w.cpu.items()},
                "cpu_share_of_one_core": {k: round(v / seconds, 3) for k, v in w.cpu.items()},
                "cpu_ms_per_message_cloud_broker_db": round(1000 * busy / w.stored, 3) if w.stored else None,
                "cpu_ms_per_message_generators": round(
                    1000 * sum(v for k, v in w.cpu.items() if k.startswith("generator")) / w.stored, 3)
                if w.stored else None})
        if self.args.storm and "storm" in self.report:
            a, b = self.storm_window
            during = [lat for at, lat in latencies if a <= at < b]
            self.report["storm"].update(receipt_p50_s=_round(percentile(during, 0.5)),
                                        receipt_p99_s=_round(percentile(during, 0.99)),
                                        receipt_max_s=_round(max(during, default=None)))
        two = [s for s in setups if s["instances"] == 2]
        self.report.update({
            "setups": setups,
            "delivery": {"created": created, "stored_in_db": stored, "exactly_once": stored == created and not gaps,
                         "gaps": gaps, "left_at_sites": sum(s["pending"] for s in statuses),
                         "rejected": sum(s.get("rejected", 0) for s in statuses),
                         "messages_resent": sum(s["resent"] for s in statuses),
                         "receipt_timeouts": sum(s.get("receipt_timeouts", 0) for s in statuses)},
            "disk": {"bytes": size, "bytes_per_message": round(per_message) if per_message else None,
                     "messages_per_site_day": round(per_day),
                     "bytes_per_site_day": round(per_message * per_day) if per_message else None},
            "goal": {"sites": 10_000, "instances": 2, "receipt_p99_s": GOAL_P99_S, "storm_drained_s": GOAL_STORM_S,
                     "p99_met_here": bool(two) and two[0]["receipt_p99_s"] is not None
                     and two[0]["receipt_p99_s"] < GOAL_P99_S,
                     "at_goal_scale": self.args.sites >= 10_000}})

    async def close(self, readers: list[asyncio.Task]) -> None:
        for g in self.generators:
            try:
                await g.send("quit")
                await asyncio.wait_for(g.process.wait(), 60)
            except (asyncio.TimeoutError, ConnectionError):
                g.process.kill()
        for task in readers:
            task.cancel()
        for instance in self.instances:
            instance.process.terminate()
        for instance in self.instances:
            try:
                instance.process.wait(15)
            except subprocess.TimeoutExpired:
                instance.process.kill()
        self.broker.stop(timeout=60)
        if not self.args.keep:
            self.db.admin.execute(f'DROP SCHEMA "{self.schema}" CASCADE')
        self.db.admin.close()


async def _stoppable(work: Any) -> Any:
    """SIGTERM and SIGINT cancel the run, so its clean-up stops every process it started (a bench
    started in the background by a shell ignores SIGINT)."""
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    return await task


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        workdir = Path(os.environ.get("BENCH_FLEET_DIR") or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        run = Run(args, workdir)
        report = asyncio.run(_stoppable(run.main()))
        if args.keep:
            progress(f"kept: {workdir} (set BENCH_FLEET_DIR to keep it after the run), schema {run.schema}")
    report = {"bench": "fleet", "cpus": os.cpu_count(), "sites": args.sites, "seconds": args.seconds,
              "telemetry_interval_s": args.telemetry_interval, "sessions_per_site_day": args.sessions_per_day,
              "generators": args.generators or max(1, math.ceil(args.sites / SITES_PER_GENERATOR)), **report}
    print(json.dumps(report, indent=2) if args.json else report)
    return 0
