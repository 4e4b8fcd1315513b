"""Cloud sync: how fast a site's buffered outbox drains into the cloud database after an outage.

    python -m bench sync --json           # 100,000 messages; progress on stderr, one JSON document on stdout
    python -m bench sync --quick --json   # 2,000 messages: the test suite's run
    python -m bench sync --database postgresql://user:pw@127.0.0.1:5432/db   # PostgreSQL (a fresh schema)

1. A real Mosquitto (tests/mqtt_broker.py) and the real cloud service
   (`python -m cloud serve`, its own process) run once, so the cloud's
   persistent session and shared subscription exist; then both stop.
2. The real edge runs in this process with `[uplink]` on that broker (down:
   it keeps reconnecting, 0.1 .. 0.5 s backoff). Its outbox is filled with N
   telemetry messages through the journal (`Store.outbox_add`, as
   `Outbox.add` does, in commits of 5,000), each with a telemetry body of a
   3-circuit site.
3. Clock starts; the broker and the cloud service are started; the clock
   stops when the cloud database holds all N messages (polled every 50 ms).
   Every id is then checked: stored exactly once.
4. On the same broker, a bare paho-mqtt QoS 1 loop publishes N messages of
   the size of one outbox message (MQTT 5, 20 in flight, no subscriber; PUBACKs
   counted) for comparison.
See docs/performance.md, "Cloud sync".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil

from bench.dlm import others_cpu
from bench.measure import progress, run_report
from bench.ocpp_load import commit, machine

REPO = Path(__file__).resolve().parent.parent
SITE = "bench-sync"
GOAL_RATE = 5000.0          # messages/s into the cloud database (issue 7)
GOAL_SHARE = 0.5            # of the bare paho loop's rate
FILL_CHUNK = 5000
POLL_S = 0.05


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench sync", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 messages: checks that everything works, "
                                                             "not how fast (the test suite runs this)")
    parser.add_argument("--messages", type=int, help="messages buffered (default 100000, --quick 2000)")
    parser.add_argument("--database", default="sqlite",
                        help="sqlite (a file in a temporary directory, the default) or a postgresql:// URL "
                             "(a fresh schema is made and dropped)")
    parser.add_argument("--timeout", type=float, help="s to wait for the drain (default 600, --quick 120)")
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    args = parser.parse_args(argv)
    args.argv = list(argv)
    args.messages = args.messages or (2000 if args.quick else 100_000)
    args.timeout = args.timeout or (120.0 if args.quick else 600.0)
    if args.messages < 1:
        parser.error("--messages must be positive")
    if args.database != "sqlite" and not args.database.startswith(("postgresql://", "postgres://")):
        parser.error("--database takes sqlite or a postgresql:// URL")
    return args


# -- the payload ------------------------------------------------------------------------------------------

def telemetry_body(n: int) -> dict[str, Any]:
    """What edge/uplink/telemetry.py sends for a site with a grid meter and two sub-circuits."""
    def circuit(cid: str, limit: float) -> dict[str, Any]:
        base = 10 + (n % 17)
        return {"id": cid, "failsafe": False, "limit_a": [limit] * 3,
                "current_max_a": [base + 1.25, base + 0.5, base + 2.75],
                "current_mean_a": [base - 0.33, base - 1.12, base + 0.41],
                "allocated_a": [base + 4.0, base + 4.0, base + 4.0],
                "power_mean_w": [float(230 * base), float(231 * base), float(229 * base)],
                "import_wh": 1_000_000.0 + n * 12.5, "export_wh": 0.0}
    return {"interval_s": 60.0, "samples": 60,
            "circuits": [circuit("grid", 63.0), circuit("garage", 40.0), circuit("carport", 32.0)]}


# The points' times: a second apart from two days ago, so even 100,000 of them are recent; older ones
# would be folded into 1-minute aggregates by the cloud's retention job (CLOUD_TELEMETRY_RAW_DAYS).
FIRST_AT = int(time.time()) - 2 * 86_400


def at_of(n: int) -> str:
    return datetime.fromtimestamp(FIRST_AT + n, timezone.utc).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


def message_bytes(message_id: str, n: int) -> bytes:
    """One message as the edge splices it into a batch (edge.uplink.outbox.encode_batch)."""
    body = json.dumps(telemetry_body(n), separators=(",", ":"))
    return (f'{{"id":"{message_id}","seq":{n + 1},"at":"{at_of(n)}","type":"telemetry","body":{body}}}').encode()


# -- the cloud service (its own process) and its database ---------------------------------------------

class CloudProcess:
    def __init__(self, database_url: str, broker_port: int, log_path: Path):
        self.database_url = database_url
        self.broker_port = broker_port
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        env = {**os.environ, "DATABASE_URL": self.database_url, "CLOUD_MQTT_HOST": "127.0.0.1",
               "CLOUD_MQTT_PORT": str(self.broker_port), "CLOUD_MQTT_CLIENT_ID": "bench-cloud",
               "CLOUD_HTTP_HOST": "127.0.0.1", "CLOUD_HTTP_PORT": "0", "CLOUD_LOG_LEVEL": "INFO"}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "cloud", "serve"], cwd=REPO, env=env,
                                            stdout=log, stderr=subprocess.STDOUT)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    async def wait_subscribed(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while "MQTT connected" not in self.log_text():
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"the cloud service exited:\n{self.log_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the cloud service did not connect in {timeout:g} s:\n{self.log_text()[-3000:]}")
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)     # the SUBACK follows the log line

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


class CloudDb:
    """Counts the site's telemetry messages in the cloud database (read-only, next to the service)."""

    def __init__(self, url: str):
        self.url = url
        self._conn: Any = None

    def _connect(self) -> Any:
        if self._conn is None:
            if self.url.startswith("sqlite:///"):
                path = self.url[len("sqlite:///"):]
                if not Path(path).exists():
                    return None
                self._conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5, check_same_thread=False)
            else:
                import psycopg
                self._conn = psycopg.connect(self.url, autocommit=True)
        return self._conn

    def query(self, sql: str) -> list[tuple]:
        conn = self._connect()
        if conn is None:
            return []
        try:
            return list(conn.execute(sql).fetchall())
        except (sqlite3.OperationalError,) as exc:    # the schema is not there yet
            if "no such table" in str(exc):
                return []
            raise

    # Telemetry is stored once, in telemetry_raw (cloud migration 6), not in `messages`.
    def count(self) -> int:
        rows = self.query(f"SELECT count(*) FROM telemetry_raw WHERE site = '{SITE}'")
        return rows[0][0] if rows else 0

    def ids(self) -> tuple[int, list[str]]:
        rows = self.query(f"SELECT message_id FROM telemetry_raw WHERE site = '{SITE}'")
        return len(rows), [r[0] for r in rows]

    def telemetry_rows(self) -> int:
        """Distinct points kept (a message stored twice would be one row too many in count())."""
        rows = self.query(f"SELECT count(DISTINCT message_id) FROM telemetry_raw WHERE site = '{SITE}'")
        return rows[0][0] if rows else 0

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@contextlib.contextmanager
def database(args: argparse.Namespace, workdir: Path):
    """-> the database URL the cloud uses (a fresh SQLite file, or a fresh PostgreSQL schema)."""
    if args.database == "sqlite":
        yield f"sqlite:///{workdir}/cloud.db"
        return
    import psycopg
    schema = f"benchsync_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(args.database, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
        try:
            joiner = "&" if "?" in args.database else "?"
            yield f"{args.database}{joiner}options=-csearch_path%3D{schema}"
        finally:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


# -- the edge ---------------------------------------------------------------------------------------------

def site_toml(broker_port: int) -> str:
    return f"""
[site]
id = "{SITE}"
[ocpp]
host = "127.0.0.1"
port = 0
unknown_chargers = "reject"
[api]
host = "127.0.0.1"
port = 0
[authorization]
push_local_lists = false
[uplink]
enabled = true
host = "127.0.0.1"
port = {broker_port}
keepalive = 10
reconnect_min_delay = 0.1
reconnect_max_delay = 0.5
telemetry_interval = 86400

[[chargers]]
id = "CP-1"
"""


async def fill(edge: Any, count: int) -> tuple[list[str], int, float]:
    """-> (ids, bytes of one message as sent, s taken)."""
    from edge.journal import Store
    ids = [uuid.uuid4().hex for _ in range(count)]
    started = time.perf_counter()
    for first in range(0, count, FILL_CHUNK):
        rows = [(ids[n], "telemetry", "telemetry", at_of(n), json.dumps(telemetry_body(n), separators=(",", ":")))
                for n in range(first, min(count, first + FILL_CHUNK))]
        await edge.journal.write(Store.outbox_add, rows)
    return ids, len(message_bytes(ids[0], 0)), time.perf_counter() - started


def drain_cpu(machine_start: Any, mine_start: Any, wall: float, cloud: CloudProcess, broker: Any) -> dict:
    """CPU during the drain, in % of one core: this process (the edge), the cloud service, the
    broker (both started with the clock), and everything else on the machine (PostgreSQL's
    server included: it is not told apart from other processes)."""
    def used(times: Any) -> float:
        return times.user + times.system

    machine_end, mine_end = psutil.cpu_times(), psutil.Process().cpu_times()
    busy = sum(getattr(machine_end, k, 0.0) - getattr(machine_start, k, 0.0)
               for k in ("user", "nice", "system", "irq", "softirq"))
    parts = {"edge": used(mine_end) - used(mine_start), "cloud": 0.0, "broker": 0.0}
    for name, process in (("cloud", cloud.process), ("broker", broker.process)):
        with contextlib.suppress(psutil.Error, AttributeError):
            parts[name] = used(psutil.Process(process.pid).cpu_times())
    out = {k: round(100.0 * v / wall, 1) for k, v in parts.items()}
    out["other"] = max(0.0, round(100.0 * (busy - sum(parts.values())) / wall, 1))
    if out["other"] > 10.0:
        progress(f"warning: other processes used {out['other']} % of a core during the drain; "
                 "its figures are not from a quiet machine")
    return out


class RefusalCounter(logging.Handler):
    """Counts the uplink's "the broker refused a ... batch" warnings (each costs a 2 s wait at least)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "refused a" in record.getMessage():
            self.count += 1


# -- the bare paho loop -------------------------------------------------------------------------------------

def bare_loop(port: int, count: int, size: int, inflight: int = 20) -> dict[str, Any]:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    acked = 0
    failed = 0
    # At most `inflight` PUBLISHes handed to paho and not yet acknowledged: paho looks through
    # all its queued messages on every PUBACK, so queuing all N at once would measure that, not the broker.
    window = threading.BoundedSemaphore(inflight)
    done = threading.Event()
    connected = threading.Event()

    def on_connect(client, userdata, flags, reason_code, properties) -> None:
        connected.set()

    def on_publish(client, userdata, mid, reason_code, properties) -> None:
        nonlocal acked, failed
        if reason_code.is_failure:
            failed += 1
        acked += 1
        window.release()
        if acked >= count:
            done.set()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare", protocol=paho.MQTTv5)
    client.on_connect = on_connect
    client.on_publish = on_publish
    client.max_inflight_messages_set(inflight)
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    try:
        if not connected.wait(10):
            raise RuntimeError("the bare paho client did not connect")
        payload = b"x" * size
        started = time.perf_counter()
        for _ in range(count):
            window.acquire()
            client.publish("bench/bare", payload, qos=1)
        if not done.wait(600):
            raise TimeoutError(f"bare loop: {acked} of {count} PUBACKs in 600 s")
        seconds = time.perf_counter() - started
    finally:
        client.disconnect()
        client.loop_stop()
    return {"messages": count, "payload_bytes": size, "qos": 1, "protocol": "MQTT 5", "inflight": inflight,
            "subscriber": False, "pubacks": acked, "failed_pubacks": failed, "seconds": round(seconds, 3),
            "messages_per_s": round(count / seconds, 1)}


# -- the run ------------------------------------------------------------------------------------------------

async def measure(args: argparse.Namespace, workdir: Path, database_url: str) -> dict[str, Any]:
    sys.path.insert(0, str(REPO))
    from edge.app import Edge
    from edge.config import parse_config
    from tests.mqtt_broker import MosquittoBroker

    broker = MosquittoBroker(workdir)
    refusals = RefusalCounter()
    logging.getLogger("edge.uplink.service").addHandler(refusals)
    cloud = CloudProcess(database_url, broker.port, workdir / "cloud.log")
    db = CloudDb(database_url)
    try:
        # 1. The cloud's session and subscriptions exist at the broker, as in production.
        progress("starting the broker and the cloud once (its persistent session)")
        broker.start()
        cloud.start()
        await cloud.wait_subscribed()
        cloud.stop()
        broker.stop()

        # 2. The edge, its broker down; its outbox filled.
        state_dir = workdir / "edge"
        state_dir.mkdir()
        edge = Edge(parse_config(site_toml(broker.port), "bench-sync.toml", state_dir=str(state_dir)))
        task = await edge.start()
        try:
            progress(f"filling the outbox with {args.messages} telemetry messages (broker down)")
            ids, size, fill_s = await fill(edge, args.messages)
            backlog = await edge.uplink.outbox.backlog()
            if backlog["telemetry"] != args.messages:
                raise RuntimeError(f"the outbox holds {backlog['telemetry']} telemetry messages, not {args.messages}")
            progress(f"outbox filled in {fill_s:.1f} s ({size} bytes a message); starting the broker and the cloud")

            # 3. Reconnect and drain.
            machine_start, mine_start = psutil.cpu_times(), psutil.Process().cpu_times()
            t0 = time.perf_counter()
            broker.start()
            cloud.start()
            stored, first_at, last_report = 0, None, t0
            deadline = t0 + args.timeout
            while True:
                stored = await asyncio.to_thread(db.count)
                now = time.perf_counter()
                if stored and first_at is None:
                    first_at = now
                if stored >= args.messages:
                    break
                if not cloud.alive():
                    raise RuntimeError(f"the cloud service exited:\n{cloud.log_text()[-3000:]}")
                if now > deadline:
                    raise TimeoutError(f"{stored} of {args.messages} stored after {args.timeout:g} s")
                if now - last_report >= 5:
                    left = (await edge.uplink.outbox.backlog())["telemetry"]
                    progress(f"  {stored} stored, {left} left in the outbox after {now - t0:.1f} s")
                    last_report = now
                await asyncio.sleep(POLL_S)
            drain_s = time.perf_counter() - t0
            cpu = drain_cpu(machine_start, mine_start, drain_s, cloud, broker)
            progress(f"all {args.messages} stored in {drain_s:.2f} s ({args.messages / drain_s:.0f} msg/s)")
            await asyncio.sleep(1.0)     # anything sent twice would show up now
            rows, stored_ids = await asyncio.to_thread(db.ids)
            telemetry_rows = await asyncio.to_thread(db.telemetry_rows)
            outbox_left = (await edge.uplink.outbox.backlog())["telemetry"]
            connections = edge.uplink.connections
        finally:
            edge.stop()
            await asyncio.wait_for(task, 30)
        cloud.stop()

        # 4. The bare loop, on the same broker.
        progress(f"bare paho-mqtt QoS 1 loop: {args.messages} messages of {size} bytes")
        with others_cpu("bare loop", bare_quiet := {}):
            bare = await asyncio.to_thread(bare_loop, broker.port, args.messages, size)
        bare.update(bare_quiet)
        progress(f"bare loop: {bare['seconds']:.2f} s ({bare['messages_per_s']:.0f} msg/s)")
    finally:
        cloud.stop()
        broker.stop()
        with contextlib.suppress(Exception):
            db.close()

    distinct = len(set(stored_ids))
    sent = set(ids)
    rate = args.messages / drain_s
    return {
        "drain": {
            "messages": args.messages, "stream": "telemetry", "message_bytes": size,
            "filled_by": "Store.outbox_add in the running edge's journal, broker down",
            "fill_s": round(fill_s, 2),
            "seconds": round(drain_s, 3),
            "first_stored_after_s": round(first_at - t0, 3) if first_at else None,
            "messages_per_s": round(rate, 1),
            "after_first_stored_messages_per_s": (round(args.messages / (drain_s - (first_at - t0)), 1)
                                                  if first_at and drain_s > first_at - t0 else None),
            "edge_batches_refused": refusals.count,
            "clock": "from starting the broker and the cloud service to the last message in the cloud database",
            "cpu_percent_of_a_core": cpu,
            "edge_connections": connections, "outbox_left": outbox_left,
        },
        "delivery": {
            "sent": args.messages, "stored_rows": rows, "distinct_ids": distinct,
            "missing": len(sent - set(stored_ids)), "unexpected": len(set(stored_ids) - sent),
            "telemetry_rows": telemetry_rows,
            "exactly_once": rows == distinct == args.messages and set(stored_ids) == sent,
        },
        "bare_paho": bare,
        "ratio_to_bare": round(rate / bare["messages_per_s"], 3),
    }


def run(args: argparse.Namespace) -> dict:
    report: dict = {
        "benchmark": "sync",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "machine": machine(),
        "commit": commit(),
        "command": " ".join(["python -m bench sync", *args.argv]),
        "quick": args.quick,
    }
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp, database(args, Path(tmp)) as url:
        report["database"] = "sqlite" if url.startswith("sqlite") else "postgresql"
        report.update(asyncio.run(measure(args, Path(tmp), url)))
    report["goals"] = {
        "at_least_5000_per_s": report["drain"]["messages_per_s"] >= GOAL_RATE,
        "at_least_half_bare_loop": report["ratio_to_bare"] >= GOAL_SHARE,
        "apply_to": "100,000 messages (not --quick)",
    }
    return report


def text_summary(report: dict) -> str:
    d, b, v = report["drain"], report["bare_paho"], report["delivery"]
    return "\n".join([
        "sync" + (" (quick: not for the record)" if report["quick"] else "") + f", {report['database']}",
        f"  drain: {d['messages']} messages in {d['seconds']} s = {d['messages_per_s']} msg/s",
        f"  bare paho QoS 1: {b['messages_per_s']} msg/s; ratio {report['ratio_to_bare']}",
        f"  exactly once: {v['exactly_once']} ({v['distinct_ids']} distinct of {v['sent']})",
        "  goals: " + ", ".join(f"{k}={x}" for k, x in report["goals"].items() if k != "apply_to"),
    ])


def main(argv: list[str]) -> int:
    return run_report("sync", run, text_summary, parse_args(argv))
