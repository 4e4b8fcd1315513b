"""The cloud's storage on PostgreSQL: disk bytes per site-day, and lock waits between two instances.

    python -m bench cloud_storage --json                  # both parts
    python -m bench cloud_storage disk --sites 10 --json
    python -m bench cloud_storage contention --backlog-sites 1,10 --json

disk: one day of a site's traffic at the edge's own rates (telemetry every 60 s, `[uplink]
telemetry_interval`, the edge's body: 3 circuits; plus status changes, sessions and their charge
records of a busy 4-charger site) stored for `--sites` sites through the ingest's own store
functions, each message in its own batch as a live edge sends them, at explicit times of one
day (no clock). Measured: every table's bytes with its indexes and TOAST (PostgreSQL:
pg_total_relation_size, partitions summed), per site-day and per telemetry message.

contention: two cloud instances (`python -m cloud serve`, each its own process, the shipped
Mosquitto config) drain N sites' backlogs (`--backlog` messages each, batches of 50) sent at
once; pg_stat_activity is sampled every 20 ms meanwhile. Measured: the drain time, stored msg/s,
and the share of samples in which an instance's busy backend waited on a lock (wait_event_type
'Lock'), per wait event. One instance alone runs the same load for the comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg

from bench.measure import progress
from cloud.db import Database
from cloud.store import ingest as store, retention
from contract.v1 import Message, UpBatch
from simulator.light_site import LightSite
from tests.cloud.conftest import POSTGRES_URL
from tests.mqtt_broker import MosquittoBroker, free_port

REPO = Path(__file__).resolve().parent.parent
CLOUD_PASSWORD = "bench-cloud"
DAY = "2026-03-02"
TELEMETRY_INTERVAL_S = 60          # the edge's default ([uplink] telemetry_interval)


def edge_telemetry_body(n: int) -> dict[str, Any]:
    """What edge/uplink/telemetry.py sends for a site with a main circuit and two sub-circuits."""
    def phases(base: float) -> list[float]:
        return [round(base + (n * 7 + k) % 13 / 10, 2) for k in range(3)]
    return {"interval_s": 60.0, "samples": 60, "circuits": [
        {"id": c, "failsafe": False, "limit_a": [limit] * 3, "current_max_a": phases(limit / 2),
         "current_mean_a": phases(limit / 3), "allocated_a": [round(limit / 2.5, 1)] * 3,
         "power_mean_w": [round(v * 230) for v in phases(limit / 3)], "import_wh": 1_234_567.8 + n * 55.5,
         "export_wh": 0.0}
        for c, limit in (("main", 63.0), ("garage", 32.0), ("carport", 32.0))]}


def _at(second: int) -> str:
    return f"{DAY}T{second // 3600:02d}:{second % 3600 // 60:02d}:{second % 60:02d}.000Z"


def site_day(site: str) -> list[UpBatch]:
    """One day of a site's up-batches in the order an edge sends them (one message per batch)."""
    seqs: dict[str, int] = collections.Counter()
    out: list[tuple[int, UpBatch]] = []

    def add(stream: str, second: int, type_: str, body: dict[str, Any]) -> None:
        seqs[stream] += 1
        message = Message(id=uuid.uuid4().hex, seq=seqs[stream], at=_at(second), type=type_, body=body)
        out.append((second, UpBatch(site=site, stream=stream, messages=[message])))

    for n in range(86400 // TELEMETRY_INTERVAL_S):
        add("telemetry", n * TELEMETRY_INTERVAL_S, "telemetry", edge_telemetry_body(n))
    # A busy 4-charger site: 3 sessions per charger a day, each with its statuses and its record.
    for k in range(12):
        charger, start = f"CP-{k % 4 + 1}", 7 * 3600 + k * 3600
        for offset, status in ((0, "Preparing"), (30, "Charging"), (7200, "Finishing"), (7260, "Available")):
            add("status", start + offset, "connector.status",
                {"charger_id": charger, "connector_id": 1, "status": status, "error_code": "NoError",
                 "timestamp": _at(start + offset)})
        add("session", start + 20, "session.started",
            {"transaction_id": k + 1, "charger_id": charger, "connector_id": 1, "id_tag": f"TAG{k:04d}",
             "meter_start": 1000 * k, "start_time": _at(start + 20)})
        add("session", start + 7200, "session.stopped",
            {"transaction_id": k + 1, "charger_id": charger, "connector_id": 1, "meter_stop": 1000 * k + 18000,
             "stop_time": _at(start + 7200), "start_time": _at(start + 20), "stop_reason": "EVDisconnected"})
        add("cdr", start + 7201, "cdr",
            {"id": uuid.uuid4().hex, "site_id": site, "charger_id": charger, "connector_id": 1,
             "transaction_id": k + 1, "id_tag": f"TAG{k:04d}", "start_time": _at(start + 20),
             "stop_time": _at(start + 7200), "duration_s": 7180, "charging_s": 6000, "idle_s": 1180,
             "meter_start_wh": 1000 * k, "meter_stop_wh": 1000 * k + 18000, "energy_kwh": "18.000",
             "status": "Successful", "currency": "EUR", "price_net": "5.04", "vat_percent": "19", "vat": "0.96",
             "price_gross": "6.00", "timezone": "Europe/Berlin", "tariff": "standard", "revision": 1})
    return [batch for _, batch in sorted(out, key=lambda pair: pair[0])]


def start_cloud(name: str, url: str, broker: MosquittoBroker, workdir: Path) -> subprocess.Popen:
    """`python -m cloud serve` in its own process, on the broker's loopback listener as `cloud`."""
    env = {**os.environ, "DATABASE_URL": url, "CLOUD_MQTT_HOST": broker.host, "CLOUD_MQTT_PORT": str(broker.cloud_port),
           "CLOUD_MQTT_USERNAME": "cloud", "CLOUD_MQTT_PASSWORD": CLOUD_PASSWORD, "CLOUD_MQTT_CLIENT_ID": name,
           "CLOUD_HTTP_PORT": str(free_port()), "CLOUD_LOG_LEVEL": "WARNING"}
    return subprocess.Popen([sys.executable, "-m", "cloud", "serve"], cwd=REPO, env=env,
                            stdout=open(workdir / f"{name}.log", "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _schema(admin: psycopg.Connection) -> tuple[str, str]:
    schema = f"benchstore_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE SCHEMA "{schema}"')
    return schema, f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"


def table_bytes(admin: psycopg.Connection, schema: str) -> dict[str, int]:
    """Bytes of each top-level table of `schema`, its partitions, indexes and TOAST included."""
    rows = admin.execute(
        "SELECT c.relname, c.oid, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND NOT c.relispartition", (schema,)).fetchall()
    out = {}
    for name, oid, kind in rows:
        if kind == "p":
            size = admin.execute("SELECT coalesce(sum(pg_total_relation_size(relid)), 0) FROM "
                                 "pg_partition_tree(%s) WHERE isleaf", (oid,)).fetchone()[0]
        else:
            size = admin.execute("SELECT pg_total_relation_size(%s)", (oid,)).fetchone()[0]
        out[name] = int(size)
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


async def disk(sites: int) -> dict[str, Any]:
    admin = psycopg.connect(POSTGRES_URL, autocommit=True)
    schema, url = _schema(admin)
    try:
        async with Database(url) as db:
            empty = table_bytes(admin, schema)
            started = time.monotonic()
            days = [site_day(f"site-{n:03d}") for n in range(sites)]
            telemetry = sum(1 for b in days[0] if b.stream == "telemetry")
            for batches in days:
                for batch in batches:
                    await db.write(store.store_up, batch, batch.messages[0].at)
            elapsed = time.monotonic() - started
            admin.execute("VACUUM ANALYZE")        # what autovacuum would leave: the visibility maps, no bloat
            sizes = table_bytes(admin, schema)
            # Then the day as retention leaves it after the raw days: folded into 1-minute aggregates.
            after = date.fromisoformat(DAY) + timedelta(days=31)
            while await db.write(retention.step, after, 30, 365) is not None:
                pass
            admin.execute("VACUUM ANALYZE")
            aggregates = table_bytes(admin, schema).get("telemetry_1m", 0) - empty.get("telemetry_1m", 0)
        grown = {name: size - empty.get(name, 0) for name, size in sizes.items() if size - empty.get(name, 0) > 0}
        total = sum(grown.values())
        return {"aggregate_bytes_per_site_day": round(aggregates / sites),
                "sites": sites, "messages_per_site_day": len(days[0]), "telemetry_per_site_day": telemetry,
                "seconds": round(elapsed, 1), "bytes_per_site_day": round(total / sites),
                "bytes_per_site_day_by_table": {k: round(v / sites) for k, v in grown.items()},
                "bytes_per_message": round(total / sites / len(days[0]))}
    finally:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


class WaitSampler:
    """Samples pg_stat_activity of the cloud's database in a thread: per busy backend, its wait."""

    def __init__(self, application: str, every: float = 0.02):
        self.application, self.every = application, every
        self.samples = 0
        self.waits: collections.Counter[str] = collections.Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            while not self._stop.is_set():
                # The instances' connections carry the run's application_name (PGAPPNAME): other sessions
                # may use the same database meanwhile.
                for wait_type, wait in conn.execute(
                        "SELECT wait_event_type, wait_event FROM pg_stat_activity WHERE state = 'active' "
                        "AND application_name = %s", (self.application,)).fetchall():
                    self.samples += 1
                    self.waits[f"{wait_type}:{wait}" if wait_type else "running"] += 1
                self._stop.wait(self.every)

    def __enter__(self) -> "WaitSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def report(self) -> dict[str, Any]:
        lock = sum(n for k, n in self.waits.items() if k.startswith("Lock:"))
        return {"busy_backend_samples": self.samples,
                "lock_wait_share": round(lock / self.samples, 3) if self.samples else None,
                "waits": {k: round(n / self.samples, 3) for k, n in self.waits.most_common(8)}}


async def contention(instances: int, backlog_sites: int, backlog: int, workdir: Path) -> dict[str, Any]:
    admin = psycopg.connect(POSTGRES_URL, autocommit=True)
    schema, url = _schema(admin)
    names = [f"b{n:03d}" for n in range(backlog_sites)]
    broker = MosquittoBroker(workdir / f"broker-{instances}-{backlog_sites}", shipped=True,
                             users={n: "pw" for n in names}, clouds={"cloud": CLOUD_PASSWORD})
    (workdir / f"broker-{instances}-{backlog_sites}").mkdir(exist_ok=True)
    broker.start()
    application = os.environ["PGAPPNAME"] = schema      # libpq names the instances' connections so
    clouds = [start_cloud(f"cloud-{i + 1}", url, broker, workdir) for i in range(instances)]
    sites = [LightSite(broker.host, broker.port, n, "pw", receipt_timeout=60.0) for n in names]
    try:
        await asyncio.sleep(3.0)                     # the instances migrate, connect and subscribe
        for site in sites:
            site.start()
        deadline = time.monotonic() + 30
        while not all(s.connected.is_set() for s in sites) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)                     # the births are stored
        with WaitSampler(application) as sampler:
            started = time.monotonic()
            for _ in range(backlog // 50):
                for site in sites:
                    site.send_batch(count=50)
            while any(s.unconfirmed for s in sites) and time.monotonic() - started < 300:
                await asyncio.sleep(0.02)
            elapsed = time.monotonic() - started
        stored = int(admin.execute(f'SELECT coalesce(sum(received), 0) FROM "{schema}".streams').fetchone()[0])
        return {"instances": instances, "backlog_sites": backlog_sites, "messages": backlog * backlog_sites,
                "stored": int(stored), "drain_s": round(elapsed, 2), "stored_msg_s": round(stored / elapsed),
                **sampler.report()}
    finally:
        for site in sites:
            site.stop()
        for cloud in clouds:
            cloud.terminate()
            cloud.wait(15)
        broker.stop()
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench cloud_storage", description=__doc__.split("\n\n")[0])
    parser.add_argument("part", nargs="?", choices=("disk", "contention", "all"), default="all")
    parser.add_argument("--sites", type=int, default=10, help="disk: sites whose day is stored")
    parser.add_argument("--backlog-sites", default="1,10", help="contention: how many sites drain at once")
    parser.add_argument("--backlog", type=int, default=5000, help="contention: messages per site")
    parser.add_argument("--instances", default="1,2")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    report: dict[str, Any] = {"bench": "cloud_storage", "cpus": os.cpu_count()}
    if args.part in ("disk", "all"):
        report["disk"] = asyncio.run(disk(args.sites))
        progress(json.dumps(report["disk"]))
    if args.part in ("contention", "all"):
        report["contention"] = []
        with tempfile.TemporaryDirectory(prefix="bench-storage-") as tmp:
            for count in (int(x) for x in args.backlog_sites.split(",")):
                for instances in (int(x) for x in args.instances.split(",")):
                    row = asyncio.run(contention(instances, count, args.backlog, Path(tmp)))
                    report["contention"].append(row)
                    progress(json.dumps(row))
    print(json.dumps(report, indent=2) if args.json else report)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
