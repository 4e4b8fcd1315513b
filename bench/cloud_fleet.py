"""The cloud at fleet scale: N light sites (simulator/light_site.py, contract-level clients that keep
each batch until its receipt) against one and then two cloud instances (`python -m cloud serve`,
each its own process) on the shipped Mosquitto config and PostgreSQL.

    python -m bench fleet --json                       # 500 sites, 20 s of steady traffic per setup
    python -m bench fleet --sites 2000 --seconds 30 --json

Each site sends one telemetry batch (1 message) every `--interval` seconds. Measured per setup:
stored msg/s, receipt latency p50/p99 (publish to receipt, resends included), CPU seconds per
process and per message, and the database's bytes per message (PostgreSQL: pg_total_relation_size
of messages and telemetry), turned into bytes per site-day at that rate. Goals (issue 18): 10,000
sites' steady traffic on two instances with receipt p99 < 2 s. See docs/performance.md, "Fleet".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import psycopg

from bench.fleet import progress
from simulator.light_site import LightSite
from tests.mqtt_broker import MosquittoBroker, free_port

REPO = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get("CLOUD_TEST_POSTGRES_URL") or \
    "postgresql://sitecontroller_test:sitecontroller_test@127.0.0.1:5432/sitecontroller_test"
CLOUD_PASSWORD = "bench-cloud"
GOAL_P99_S = 2.0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench fleet", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sites", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between a site's batches")
    parser.add_argument("--instances", default="1,2", help="setups to run, e.g. 1,2")
    parser.add_argument("--json", action="store_true")
    return parser.parse_args(argv)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def start_cloud(name: str, url: str, broker: MosquittoBroker, workdir: Path) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": url, "CLOUD_MQTT_HOST": broker.host, "CLOUD_MQTT_PORT": str(broker.cloud_port),
           "CLOUD_MQTT_USERNAME": "cloud", "CLOUD_MQTT_PASSWORD": CLOUD_PASSWORD, "CLOUD_MQTT_CLIENT_ID": name,
           "CLOUD_HTTP_PORT": str(free_port()), "CLOUD_LOG_LEVEL": "WARNING"}
    return subprocess.Popen([sys.executable, "-m", "cloud", "serve"], cwd=REPO, env=env,
                            stdout=open(workdir / f"{name}.log", "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


async def one_setup(args: argparse.Namespace, instances: int, workdir: Path) -> dict[str, Any]:
    schema = f"benchfleet_{uuid.uuid4().hex[:12]}"
    admin = psycopg.connect(POSTGRES_URL, autocommit=True)
    admin.execute(f'CREATE SCHEMA "{schema}"')
    url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    names = [f"s{n:05d}" for n in range(args.sites)]
    broker = MosquittoBroker(workdir / f"broker{instances}", shipped=True,
                             users={n: "pw" for n in names}, clouds={"cloud": CLOUD_PASSWORD})
    (workdir / f"broker{instances}").mkdir(exist_ok=True)
    broker.start()
    clouds = [start_cloud(f"cloud-{i + 1}", url, broker, workdir) for i in range(instances)]
    sites = [LightSite(broker.host, broker.port, n, "pw", receipt_timeout=15.0) for n in names]
    try:
        await asyncio.sleep(3.0)                    # the instances migrate, connect and subscribe
        for site in sites:
            site.start()
        deadline = time.monotonic() + 30
        while not all(s.connected.is_set() for s in sites) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        progress(f"{instances} instance(s): {sum(s.connected.is_set() for s in sites)} sites connected")
        procs = [psutil.Process(c.pid) for c in clouds]
        cpu0 = [p.cpu_times() for p in procs]
        started = time.monotonic()
        # Each site sends at its own phase of the interval: a steady flow of sites/interval batches a second.
        tick = args.interval / len(sites)
        n = 0
        while time.monotonic() - started < args.seconds:
            sites[n % len(sites)].send_batch(count=1)
            n += 1
            if n % len(sites) == 0:
                for site in sites:
                    site.resend_due()
            await asyncio.sleep(max(0.0, started + n * tick - time.monotonic()))
        sent_seconds = time.monotonic() - started
        while not all(not s.unconfirmed for s in sites) and time.monotonic() - started < args.seconds + 60:
            for site in sites:
                site.resend_due()
            await asyncio.sleep(0.2)
        elapsed = time.monotonic() - started
        cpu = [sum(b[:2]) - sum(a[:2]) for a, b in zip(cpu0, (p.cpu_times() for p in procs))]
        latencies = [x for s in sites for x in s.latencies]
        row = admin.execute(f'SELECT (SELECT count(*) FROM "{schema}".messages) AS n, '
                            f"pg_total_relation_size('\"{schema}\".messages') + "
                            f"pg_total_relation_size('\"{schema}\".telemetry') AS bytes").fetchone()
        stored, size = row[0], row[1]
        per_message = size / stored if stored else None
        per_day = per_message * 86400 / args.interval if per_message else None
        return {"instances": instances, "sites": len(sites), "sent": n, "stored": stored,
                "offered_msg_s": round(n / sent_seconds, 1), "stored_msg_s": round(stored / elapsed, 1),
                "receipt_p50_s": round(percentile(latencies, 0.5) or 0, 3),
                "receipt_p99_s": round(percentile(latencies, 0.99) or 0, 3),
                "resends": sum(s.resends for s in sites), "unconfirmed_at_end": sum(len(s.unconfirmed) for s in sites),
                "cpu_s_per_instance": [round(c, 2) for c in cpu],
                "cpu_ms_per_message": round(1000 * sum(cpu) / stored, 3) if stored else None,
                "db_bytes_per_message": round(per_message) if per_message else None,
                "db_bytes_per_site_day": round(per_day) if per_day else None}
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
    args = parse_args(argv)
    setups = [int(x) for x in args.instances.split(",")]
    results = []
    if len(setups) > 1:
        # Each setup in its own process: a second setup in the same process lost about half its sites'
        # traffic (not yet understood: paho clients of the first setup, or its broker's ports; see
        # docs/performance.md), while the same setup alone stores everything.
        base = [a for a in argv if a not in ("--json",)]
        for instances in setups:
            out = subprocess.run([sys.executable, "-m", "bench", "fleet", *base, "--instances", str(instances),
                                  "--json"], cwd=REPO, check=True, capture_output=True, text=True).stdout
            results += json.loads(out)["setups"]
            progress(json.dumps(results[-1]))
    else:
        with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
            workdir = Path(os.environ.get("BENCH_FLEET_DIR") or tmp)
            results.append(asyncio.run(one_setup(args, setups[0], workdir)))
            progress(json.dumps(results[-1]))
    report = {"bench": "fleet", "cpus": os.cpu_count(), "setups": results,
              "goal": {"sites": 10_000, "instances": 2, "receipt_p99_s": GOAL_P99_S}}
    print(json.dumps(report, indent=2) if args.json else report)
    return 0
