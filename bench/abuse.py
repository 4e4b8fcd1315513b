"""Abuse: what unauthenticated peers cost a running edge, and whether a good charger notices.

    python -m bench abuse --json

One edge in its own process (unknown_chargers = "pending", default flood
guard), one well-behaved charger sending a Heartbeat every --heartbeat-every
seconds throughout, and three attacks in turn:
  1. big frames: --frame-connections unknown ids each sending CALLRESULT
     frames of --frame-kb KB at --frame-rate per second (within the flood
     guard) for --flood-seconds;
  2. many strangers: --strangers unknown ids connecting, booting and leaving,
     --stranger-concurrency at a time;
  3. a password storm: --storm wrong passwords for a configured charger at
     --storm-rate per second, then its right password once.
For each: the edge's RSS growth over its settled start (peak, sampled), its
CPU seconds, and the good charger's Heartbeat round trips (p50, p99, max)
from the attack's start, over the attack and at least PHASE_WINDOW_S: a short
attack (60 strangers take well under a second) would hold no round trip of
its own, and what an attack leaves to do (journal writes, logs) comes after it.
Afterwards, what the strangers left in the journal. Goals (the issue's): RSS
growth < 50 MB, the good charger's p99 < 100 ms. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import json
import multiprocessing
import signal
import sys
import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path

import psutil
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidHandshake

from bench import servers
from bench.measure import MB, RoundTrips, UsageMeter, progress, run_report, work_dir
from bench.ocpp_load import commit, machine, raise_open_files_limit
from edge.ocpp.security import hash_password

GOOD, VICTIM = "GOOD-1", "VICTIM-1"
PASSWORD = "bench-good-password"
GOAL_RSS_GROWTH_MB = 50.0
GOAL_P99_MS = 100.0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench abuse", description=__doc__.split("\n\n")[0])
    parser.add_argument("--frame-connections", type=int, default=3)
    parser.add_argument("--frame-kb", type=float, default=250.0, help="CALLRESULT frame size (default 250 KB)")
    parser.add_argument("--frame-rate", type=float, default=15.0, help="frames/s per connection (default 15)")
    parser.add_argument("--flood-seconds", type=float, default=25.0)
    parser.add_argument("--strangers", type=int, default=2000, help="unknown ids that connect and boot")
    parser.add_argument("--stranger-concurrency", type=int, default=50)
    parser.add_argument("--storm", type=int, default=300, help="wrong passwords (default 300)")
    parser.add_argument("--storm-rate", type=float, default=40.0, help="attempts/s (default 40)")
    parser.add_argument("--heartbeat-every", type=float, default=0.1, help="the good charger's pace, s")
    parser.add_argument("--keep-work-dir", action="store_true")
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    args = parser.parse_args(argv)
    args.argv = list(argv)
    if min(args.frame_connections, args.strangers, args.storm, args.stranger_concurrency) < 1:
        parser.error("counts must be at least 1")
    return args


def edge_config(port: int, api_port: int, password_hash: str) -> str:
    chargers = "".join(f'\n[[chargers]]\nid = "{cid}"\npassword_hash = "{password_hash}"\n' for cid in (GOOD, VICTIM))
    return f"""# Written by `python -m bench abuse`: default limits, strangers let in as pending.
[site]
id = "bench"
[ocpp]
host = "127.0.0.1"
port = {port}
unknown_chargers = "pending"
[api]
host = "127.0.0.1"
port = {api_port}
{chargers}"""


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


# The good charger is measured over at least this long from an attack's start (s).
PHASE_WINDOW_S = 1.0


class GoodCharger:
    """A configured charger sending Heartbeats at a steady pace, in a process of
    its own: in the bench's, the attackers' work would delay its own clock.
    Each round trip is a line in a file: monotonic end time (one clock for all
    processes on Linux) and seconds, or an error name."""

    def __init__(self, url: str, every: float, record: Path):
        self.url, self.every, self.record = url, every, record
        self._ids = itertools.count()

    def start(self) -> multiprocessing.process.BaseProcess:
        process = multiprocessing.get_context("spawn").Process(target=self._main, daemon=True)
        process.start()
        return process

    def _main(self) -> None:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(self._run())

    async def _run(self) -> None:
        with open(self.record, "w", buffering=1) as out:
            async with connect(f"{self.url}/{GOOD}", subprotocols=["ocpp1.6"],
                               additional_headers=_basic(GOOD, PASSWORD)) as ws:
                await self._call(ws, "BootNotification", {"chargePointVendor": "Bench", "chargePointModel": "Good"})
                while True:
                    began = time.perf_counter()
                    try:
                        await asyncio.wait_for(self._call(ws, "Heartbeat", {}), 10)
                        out.write(f"{time.monotonic()} {time.perf_counter() - began}\n")
                    except TimeoutError:
                        out.write(f"{time.monotonic()} TimeoutError\n")
                    await asyncio.sleep(max(0.0, self.every - (time.perf_counter() - began)))

    async def _call(self, ws, action: str, payload: dict) -> list:
        unique_id = f"g{next(self._ids)}"
        await ws.send(json.dumps([2, unique_id, action, payload]))
        while True:
            answer = json.loads(await ws.recv())
            if answer[1] == unique_id:
                return answer

    def between(self, began: float, ended: float) -> RoundTrips:
        trips = RoundTrips()
        for line in self.record.read_text().splitlines():
            at, _, value = line.partition(" ")
            if began <= float(at) <= ended:
                try:
                    trips.add(float(value))
                except ValueError:
                    trips.errors[value] = trips.errors.get(value, 0) + 1
        return trips

    async def first_beats(self, process: multiprocessing.process.BaseProcess, timeout: float = 60.0) -> None:
        """Until its first Heartbeats are answered: a process of its own takes a while to start, longer
        on a busy machine, and a phase measured before it beats would find no round trip."""
        deadline = time.monotonic() + timeout
        while not (self.record.exists() and len(self.record.read_text().splitlines()) >= 3):
            if not process.is_alive():
                raise RuntimeError(f"the good charger stopped (exit code {process.exitcode})")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the good charger had no Heartbeat answered within {timeout:g} s")
            await asyncio.sleep(0.05)


async def big_frames(url: str, args: argparse.Namespace) -> dict:
    frame = json.dumps([3, "x", {"data": "x" * int(args.frame_kb * 1000 - 30)}])
    sent = {"frames": 0, "closed": 0}
    deadline = time.monotonic() + args.flood_seconds

    async def one(i: int) -> None:
        with contextlib.suppress(ConnectionClosed, InvalidHandshake, OSError):
            async with connect(f"{url}/FLOOD-{i}", subprotocols=["ocpp1.6"], max_size=2**22) as ws:
                while time.monotonic() < deadline:
                    await ws.send(frame)
                    sent["frames"] += 1
                    await asyncio.sleep(1.0 / args.frame_rate)
                return
        sent["closed"] += 1

    await asyncio.gather(*(one(i) for i in range(args.frame_connections)))
    return {"connections": args.frame_connections, "frame_bytes": len(frame), "frames_sent": sent["frames"],
            "connections_closed_by_edge": sent["closed"]}


async def many_strangers(url: str, args: argparse.Namespace) -> dict:
    outcome = {"pending": 0, "refused": 0, "failed": 0}
    gate = asyncio.Semaphore(args.stranger_concurrency)

    async def one(i: int) -> None:
        async with gate:
            try:
                async with connect(f"{url}/STRANGER-{i:05d}", subprotocols=["ocpp1.6"]) as ws:
                    await ws.send(json.dumps([2, "b", "BootNotification",
                                              {"chargePointVendor": "Nobody", "chargePointModel": "X"}]))
                    answer = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    outcome["pending" if answer[2].get("status") == "Pending" else "failed"] += 1
            except InvalidStatus:
                outcome["refused"] += 1
            except (ConnectionClosed, InvalidHandshake, OSError, TimeoutError):
                outcome["failed"] += 1

    await asyncio.gather(*(one(i) for i in range(args.strangers)))
    return {"connections": args.strangers, **outcome}


async def password_storm(url: str, args: argparse.Namespace) -> dict:
    codes: dict[str, int] = {}

    async def attempt(password: str) -> int:
        try:
            async with connect(f"{url}/{VICTIM}", subprotocols=["ocpp1.6"],
                               additional_headers=_basic(VICTIM, password)):
                return 101
        except InvalidStatus as refused:
            return refused.response.status_code

    async def wrong(i: int) -> None:
        code = await attempt(f"wrong-{i}")
        codes[str(code)] = codes.get(str(code), 0) + 1

    tasks = []
    for i in range(args.storm):
        tasks.append(asyncio.create_task(wrong(i)))
        await asyncio.sleep(1.0 / args.storm_rate)
    await asyncio.gather(*tasks)
    right = await attempt(PASSWORD)
    return {"attempts": args.storm, "rate_per_s": args.storm_rate, "answers": codes,
            "right_password_right_after": "accepted" if right == 101 else f"refused ({right})"}


async def measured(name: str, attack, url: str, args: argparse.Namespace, good: GoodCharger, pid: int,
                   baseline_mb: float) -> dict:
    process = psutil.Process(pid)
    cpu_before = sum(process.cpu_times()[:2])
    rss_before = process.memory_info().rss / MB
    began = time.monotonic()
    async with UsageMeter(pid, every=0.25) as usage:
        result = await attack(url, args)
    wall = time.monotonic() - began
    cpu = sum(process.cpu_times()[:2]) - cpu_before
    window = max(wall, PHASE_WINDOW_S)
    # Until the window is over and its last round trip written.
    await asyncio.sleep(max(0.0, began + window - time.monotonic()) + args.heartbeat_every * 2)
    heartbeats = good.between(began, began + window).summary(window)
    report = {**result, "wall_s": round(wall, 2), "edge_cpu_s": round(cpu, 2),
              "peak_rss_mb": usage.usage.peak_rss_mb,
              "rss_growth_mb": round(usage.usage.peak_rss_mb - baseline_mb, 1),
              "phase_rss_growth_mb": round(usage.usage.peak_rss_mb - rss_before, 1),
              "good_charger": heartbeats}
    progress(f"{name}: {wall:.1f} s, edge cpu {cpu:.2f} s, rss +{report['rss_growth_mb']} MB, good charger p99 "
             f"{heartbeats['latency_ms']['p99']} ms")
    return report


def left_behind(journal: Path) -> dict:
    """What the strangers left in the journal (read-only, while the edge runs)."""
    conn = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        def count(sql: str) -> int:
            return conn.execute(sql).fetchone()[0]
        strangers = f"charger_id NOT IN ('{GOOD}', '{VICTIM}')"
        return {"charger_rows": count(f"SELECT count(*) FROM chargers WHERE id NOT IN ('{GOOD}', '{VICTIM}')"),
                "network_log_rows": count(f"SELECT count(*) FROM network_log WHERE {strangers}"),
                "communication_log_rows": count(f"SELECT count(*) FROM communication_log WHERE {strangers}"),
                "outbox_messages": count("SELECT count(*) FROM outbox")}
    finally:
        conn.close()


async def run(args: argparse.Namespace, work_dir: Path) -> dict:
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, asyncio.current_task().cancel)
    config = work_dir / "site.toml"
    config.write_text(edge_config(0, 0, hash_password(PASSWORD)))
    state = work_dir / "state"
    state.mkdir()
    command = [sys.executable, "-m", "edge", "run", "--config", str(config), "--state-dir", str(state)]
    report: dict = {
        "benchmark": "abuse",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "machine": machine(), "commit": commit(), "command": " ".join(["python -m bench abuse", *args.argv]),
    }
    async with servers._running("edge", command, work_dir / "edge.log", "edge ready") as process:
        url = f"ws://127.0.0.1:{servers.ready_port(work_dir / 'edge.log')}/ocpp"
        good = GoodCharger(url, args.heartbeat_every, work_dir / "good-charger.txt")
        beating = good.start()
        try:
            await good.first_beats(beating)
            await asyncio.sleep(1.0)   # settled: the start-up sweep done, a second of quiet heartbeats
            baseline = round(psutil.Process(process.pid).memory_info().rss / MB, 1)
            quiet = good.between(time.monotonic() - 1.0, time.monotonic()).summary(1.0)
            report["baseline"] = {"rss_mb": baseline, "good_charger": quiet}
            progress(f"edge pid {process.pid}: baseline rss {baseline} MB, good charger p99 "
                     f"{quiet['latency_ms']['p99']} ms")
            for name, attack in (("big_frames", big_frames), ("many_strangers", many_strangers),
                                 ("password_storm", password_storm)):
                report[name] = await measured(name, attack, url, args, good, process.pid, baseline)
                if process.poll() is not None:
                    raise RuntimeError(f"the edge exited during {name}:\n{servers.tail(work_dir / 'edge.log')}")
            await asyncio.sleep(2.5)   # the next flush of the logs
            report["left_in_journal"] = left_behind(state / "journal.sqlite")
        finally:
            beating.terminate()
            beating.join(5)
    phases = [report[p] for p in ("big_frames", "many_strangers", "password_storm")]
    report["goals"] = {
        "rss_growth_under_50_mb": all(p["rss_growth_mb"] < GOAL_RSS_GROWTH_MB for p in phases),
        "good_charger_p99_under_100_ms": all((p["good_charger"]["latency_ms"]["p99"] or 0) < GOAL_P99_MS
                                             and not p["good_charger"]["errors"] for p in phases),
        "right_password_barred_after_storm": report["password_storm"]["right_password_right_after"] != "accepted",
    }
    return report


def text_summary(report: dict) -> str:
    lines = [f"abuse: baseline rss {report['baseline']['rss_mb']} MB"]
    for name in ("big_frames", "many_strangers", "password_storm"):
        p = report[name]
        lines.append(f"  {name}: rss +{p['rss_growth_mb']} MB, edge cpu {p['edge_cpu_s']} s, good charger p99 "
                     f"{p['good_charger']['latency_ms']['p99']} ms")
    lines.append(f"  left in journal: {report['left_in_journal']}")
    lines.append("  goals: " + ", ".join(f"{k}={v}" for k, v in report["goals"].items()))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    raise_open_files_limit(args.stranger_concurrency + args.frame_connections + 256)

    def once(args: argparse.Namespace) -> dict:
        with work_dir("bench-abuse-", keep=args.keep_work_dir) as path:
            return asyncio.run(run(args, path))
    return run_report("abuse", once, text_summary, args)
