"""OCPP load: the edge against the bare `ocpp` library, under the same simulated chargers.

    python -m bench ocpp_load --chargers 500 --json

Both OCPP versions in one run by default (--ocpp both): first 1.6 chargers (the
project's simulator), then 2.0.1 stations (simulator/light_station.py: Authorize,
TransactionEvent Started, then TransactionEvent Updated with the same ten sampled
values where 1.6 sends MeterValues); `--ocpp 1.6` or `--ocpp 2.0.1` runs one.
For each version and server (the edge, then the bare central system), in its own process:
  1. connect N chargers, boot them, plug a car in and start a transaction on each;
  2. steady: MeterValues every --meter-interval s and a Heartbeat every 60 s per
     charger; round-trip latency, server CPU (% of one core) and peak RSS;
  3. throughput: MeterValues back to back, one outstanding per charger; answered
     messages/s, and the bench's own CPU, to see whether the client was the limit.
Between 1 and 2 the bench waits until the server has sent no request to any charger for --settle s
(default 2): its connect-time configuration is over before anything is measured.
One JSON document on stdout with --json (progress on stderr); see docs/performance.md.

    python -m bench ocpp_load --tls --chargers 500 --json

--tls measures what OCPP security profile 2 costs: the edge over plain ws:// and the same edge over
wss:// (TLS 1.3, ECDSA P-256 server certificate from a site CA made for the run, HTTP Basic inside)
in the same run, the bare central system left out unless --servers names it. Each edge also gets
4. a restart: the edge is stopped and started again with its journal, and the connect storm of every
   charger coming back (TLS handshake, HTTP Basic, websocket) is timed from "edge ready" to all
   chargers online, with the server's CPU meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import re
import resource
import signal
import socket
import ssl
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncContextManager, AsyncIterator
from urllib.parse import urlsplit

import ocpp.messages
import psutil
from ocpp.v201 import call as call201

from bench import servers
from bench.fleet import ID_TAG, Fleet
from bench.measure import MachineMeter, UsageMeter, progress, run_report, work_dir
from edge.ocpp.security import hash_password
from simulator.light_station import LightStation
from simulator.tls import client_context

PASSWORD = "bench-charger-password"
HEARTBEAT_INTERVAL = 60.0
# The goals from the issue, for 500 chargers sending MeterValues every 10 s.
GOAL_CPU_PERCENT = 25.0
GOAL_RSS_MB = 150.0
GOAL_RATIO = 0.5
# The steady phase kept up when the server answered this share of the messages the chargers planned.
KEPT_UP = 0.95
# Other processes' CPU (% of a core) above which a phase is reported as disturbed.
OTHER_CPU_WARNING = 10.0
VERSIONS = ("1.6", "2.0.1")
# The report's key of a server measured with 2.0.1 stations: "edge_201", "bare_201" (1.6 keeps "edge", "bare").
V201_SUFFIX = "_201"


class Fleet201(Fleet):
    """The same load from OCPP 2.0.1 stations: a TransactionEvent Updated with the same ten sampled
    values where a 1.6 charger sends MeterValues, a 2.0.1 Heartbeat where it sends a 1.6 one."""

    def __init__(self, url: str, charger_ids: list[str], password: str) -> None:
        super().__init__(url, [], password)
        self.sims = [LightStation(cid, url, password=password, on_event=self._count)  # type: ignore[misc]
                     for cid in charger_ids]

    def _heartbeats_from_bench(self, sim: Any) -> None:
        pass  # a light station sends none of its own

    def _heartbeat(self) -> Any:
        return call201.Heartbeat()

    def _meter_values(self, sim: Any) -> Any:
        return sim.meter_values()


def key(server: str, version: str) -> str:
    return server + (V201_SUFFIX if version == "2.0.1" else "")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench ocpp_load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--chargers", type=int, default=500, help="simulated chargers (default 500)")
    parser.add_argument("--duration", type=float, default=60.0, help="steady phase, seconds (default 60)")
    parser.add_argument("--meter-interval", type=float, default=10.0,
                        help="seconds between MeterValues per charger in the steady phase (default 10)")
    parser.add_argument("--throughput-duration", type=float, default=15.0,
                        help="back-to-back phase, seconds (default 15)")
    parser.add_argument("--settle", type=float, default=2.0,
                        help="seconds without a request from the server before measuring (default 2)")
    parser.add_argument("--servers", help="which to run, in order: edge, edge_tls, bare "
                                          "(default edge,bare; with --tls edge,edge_tls)")
    parser.add_argument("--tls", action="store_true", help="the edge over ws:// and over wss:// (security "
                                                           "profile 2) in one run, each with a restart storm")
    parser.add_argument("--ocpp", choices=("1.6", "2.0.1", "both"),
                        help="which chargers: 1.6, 2.0.1 stations, or both one after the other (default both; "
                             "with --tls 1.6)")
    parser.add_argument("--work-dir", help="where the edge's journal goes (default: a temporary directory); "
                                           "put it on the disk the edge will use, an fsync costs what the disk costs")
    parser.add_argument("--keep-work-dir", action="store_true",
                        help="keep the servers' logs, config and journal for a look afterwards")
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    args = parser.parse_args(argv)
    args.argv = list(argv)
    args.servers = [s.strip() for s in (args.servers or ("edge,edge_tls" if args.tls else "edge,bare")).split(",")
                    if s.strip()]
    if args.chargers < 1 or args.duration <= 0 or args.meter_interval <= 0 or args.throughput_duration <= 0 \
            or args.settle < 0:
        parser.error("--chargers, --duration, --meter-interval and --throughput-duration must be positive, "
                     "--settle not negative")
    if not set(args.servers) <= {"edge", "edge_tls", "bare"} or not args.servers:
        parser.error("--servers takes edge, edge_tls and bare")
    args.ocpp = args.ocpp or ("1.6" if args.tls else "both")
    args.versions = list(VERSIONS) if args.ocpp == "both" else [args.ocpp]
    if (args.tls or "edge_tls" in args.servers) and args.versions != ["1.6"]:
        parser.error("--tls and edge_tls measure 1.6 chargers only (--ocpp 1.6)")
    return args


def raise_open_files_limit(needed: int) -> None:
    """Each charger is a socket in the bench and one in the server; the servers inherit the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return
    # An unlimited hard limit still stops at the kernel's nr_open: ask for what is needed then.
    target = max(soft, needed) if hard == resource.RLIM_INFINITY else hard
    if soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    if soft < needed:
        progress(f"warning: the open files limit ({soft}) is below the {needed} this load needs")


def machine() -> dict:
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"cpu": model, "cores": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(), "platform": platform.platform()}


def commit() -> str | None:
    """The checkout measured; "+dirty" when edge/ or simulator/ have uncommitted changes."""
    root = servers.REPO_ROOT
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "edge", "simulator"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


async def measure_server(name: str, server_context: AsyncContextManager[servers.Server], args: argparse.Namespace,
                         charger_ids: list[str], tls: ssl.SSLContext | None = None,
                         fleet_class: type[Fleet] = Fleet) -> dict:
    async with server_context as server:
        progress(f"{name}: pid {server.pid} on {server.url}; connecting {len(charger_ids)} chargers")
        fleet = fleet_class(server.url, charger_ids, PASSWORD)
        for sim in fleet.sims:
            sim.tls = tls           # wss:// (profile 2): the site CA trusted, the password inside TLS
        restart: dict | None = None
        try:
            setup = await _set_up(name, fleet, args.settle)
            progress(f"{name}: steady phase {args.duration:g} s")
            steady = await _steady(fleet, server, args)
            _still_running(server, "steady")
            progress(f"{name}: {steady['messages_per_s']} msg/s, p99 {steady['latency_ms']['p99']} ms, "
                     f"cpu {steady['cpu_percent']} %, rss {steady['peak_rss_mb']} MB; "
                     f"throughput phase {args.throughput_duration:g} s")
            throughput = await _throughput(fleet, server, args)
            _still_running(server, "throughput")
            progress(f"{name}: {throughput['messages_per_s']} msg/s back to back (server cpu "
                     f"{throughput['server_cpu_percent']} %, bench cpu {throughput['client_cpu_percent']} %)")
            setup.update(fleet.connection_events)
            setup["server_requests"] = {"setup": setup["server_requests"],
                                        "measured": fleet.server_requests - setup["server_requests"]}
            if name.startswith("edge") and args.tls:
                progress(f"{name}: restart storm")
                restart = await _restart_storm(server, fleet)
                progress(f"{name}: all {len(fleet.sims)} back {restart['all_online_s']} s after the edge was "
                         f"ready (cpu {restart['cpu_percent']} %)")
        finally:
            await fleet.close()
            await servers.stop(server.process)     # the restarted one, which its context does not know
    return {**setup, "steady": steady, "throughput": throughput, **({"restart": restart} if restart else {})}


async def _restart_storm(server: servers.Server, fleet: Fleet) -> dict:
    """Stop the edge, start it again on its journal, and time every charger's way back in."""
    command = list(server.process.args)
    # The edge may have bound port 0: it must come back on the port the chargers know.
    config = Path(command[command.index("--config") + 1])
    config.write_text(re.sub(r"(\[ocpp\]\nhost = \"[^\"]*\"\nport = )0\n", rf"\g<1>{urlsplit(server.url).port}\n",
                             config.read_text(), count=1))
    await servers.stop(server.process)
    while any(sim.link is not None for sim in fleet.sims):
        await asyncio.sleep(0.05)
    log_path = server.log_path.with_name(server.log_path.stem + "-restart.log")
    began = time.monotonic()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=servers._child_env())
    server.process = process        # so the context that started the first one stops this one
    await servers._wait_ready(server.name, process, log_path, "edge ready")
    ready = time.monotonic()
    async with UsageMeter(process.pid) as usage:
        await asyncio.gather(*(sim.wait_online(timeout=None) for sim in fleet.sims))
        back = time.monotonic()
    return {"start_s": round(ready - began, 2), "all_online_s": round(back - ready, 2),
            "cpu_percent": usage.usage.cpu_percent, "peak_rss_mb": usage.usage.peak_rss_mb}


@contextlib.asynccontextmanager
async def edge_tls(work_dir: Path, charger_ids: list[str], password_hash: str, id_tag: str
                   ) -> AsyncIterator[servers.Server]:
    """The bench's edge with [ocpp.tls] (make_pki's files), every charger at security profile 2."""
    ocpp_port, tls_port, api_port = distinct_ports(3)
    state_dir = work_dir / "state"     # make_pki wrote its tls/ before
    text = servers.edge_config(ocpp_port=ocpp_port, api_port=api_port, charger_ids=charger_ids,
                               password_hash=password_hash, id_tag=id_tag)
    text = text.replace("\n[api]\n", f"\n[ocpp.tls]\nport = {tls_port}\n\n[api]\n", 1)
    text = text.replace(f'password_hash = "{password_hash}"\n', f'password_hash = "{password_hash}"\n'
                        "security_profile = 2\n")
    config = work_dir / "site.toml"
    config.write_text(text)
    command = [sys.executable, "-m", "edge", "run", "--config", str(config), "--state-dir", str(state_dir)]
    async with servers._running("edge_tls", command, work_dir / "edge.log", "edge ready") as process:
        yield servers.Server("edge_tls", process, f"wss://127.0.0.1:{tls_port}/ocpp", work_dir / "edge.log")


def distinct_ports(n: int) -> list[int]:
    """n free ports, held open together while chosen (one at a time, the OS may hand the same one twice)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


def make_pki(state_dir: Path) -> Path:
    """The site CA and the edge's server certificate for 127.0.0.1, as `edgectl ca init` and
    `edgectl ca server-cert 127.0.0.1` make them; returns the CA file the chargers trust."""
    from edge.ocpp import certificates

    now = certificates.utcnow()
    ca = certificates.make_ca("bench site CA", now=now)
    server_cert = certificates.make_server_certificate(ca.certificate, ca.key or b"", ["127.0.0.1"], now=now)
    (state_dir / "tls").mkdir(parents=True)
    for name, data in (("ca.pem", ca.certificate), ("ca.key", ca.key), ("server.pem", server_cert.certificate),
                       ("server.key", server_cert.key)):
        (state_dir / "tls" / name).write_bytes(data or b"")
    return state_dir / "tls" / "ca.pem"


def _still_running(server: servers.Server, phase: str) -> None:
    if server.process.poll() is not None:
        raise RuntimeError(f"{server.name} exited with code {server.process.returncode} during the {phase} phase:\n"
                           f"{servers.tail(server.log_path)}")


async def _set_up(name: str, fleet: Fleet, settle: float) -> dict:
    n = len(fleet.sims)
    began = time.monotonic()
    await fleet.connect(timeout=60 + 0.5 * n)
    connect_s = time.monotonic() - began
    await fleet.start_transactions(timeout=60 + 0.2 * n)
    setup_s = time.monotonic() - began
    progress(f"{name}: all accepted after {connect_s:.1f} s, charging after {setup_s:.1f} s")
    # The edge configures each charger once it is connected (auth keys, local list):
    # that work is over before anything is measured.
    await fleet.quiet(settle, timeout=60 + 0.2 * n)
    settled_s = max(setup_s, fleet.last_server_request - began)
    return {"connect_s": round(connect_s, 3), "setup_s": round(setup_s, 2), "settled_s": round(settled_s, 2),
            "server_requests": fleet.server_requests}


async def _steady(fleet: Fleet, server: servers.Server, args: argparse.Namespace) -> dict:
    async with UsageMeter(server.pid) as usage, UsageMeter(os.getpid(), memory=False) as client, \
            MachineMeter() as machine_cpu:
        began = time.perf_counter()
        trips = await fleet.steady(args.duration, args.meter_interval, HEARTBEAT_INTERVAL)
        wall = time.perf_counter() - began
    summary = trips.summary(wall)
    # A server that cannot keep up answers fewer messages than the chargers planned, and its CPU then says
    # what it did, not what the load needs: the CPU goal counts only when it kept up.
    planned = len(fleet.sims) * (1.0 / args.meter_interval + 1.0 / HEARTBEAT_INTERVAL)
    return {**summary, "planned_messages_per_s": round(planned, 1),
            "kept_up": summary["messages_per_s"] >= KEPT_UP * planned,
            "cpu_percent": usage.usage.cpu_percent, "cpu_ms_per_message": _per_message(usage, summary),
            "peak_rss_mb": usage.usage.peak_rss_mb, "peak_uss_mb": usage.usage.peak_uss_mb,
            **_cpu_elsewhere(usage, client, machine_cpu)}


def _per_message(usage: UsageMeter, summary: dict) -> float | None:
    """The server's CPU per answered message (ms): its cost, whatever the rate."""
    rate = summary["messages_per_s"]
    return round(10.0 * usage.usage.cpu_percent / rate, 3) if rate else None


async def _throughput(fleet: Fleet, server: servers.Server, args: argparse.Namespace) -> dict:
    async with UsageMeter(server.pid) as usage, UsageMeter(os.getpid(), memory=False) as client, \
            MachineMeter() as machine_cpu:
        began = time.perf_counter()
        trips = await fleet.flood(args.throughput_duration)
        # Answers that came after the deadline are not counted, so divide by the phase, not the stragglers.
        wall = min(time.perf_counter() - began, args.throughput_duration)
    summary = trips.summary(wall)
    # CPU per answered message: the server's capacity even when the bench, not the server, was the limit.
    return {**summary, "server_cpu_percent": usage.usage.cpu_percent,
            "server_cpu_ms_per_message": _per_message(usage, summary),
            "peak_rss_mb": usage.usage.peak_rss_mb, **_cpu_elsewhere(usage, client, machine_cpu)}


def _cpu_elsewhere(server: UsageMeter, client: UsageMeter, machine_cpu: MachineMeter) -> dict:
    other = max(0.0, round(machine_cpu.busy_percent - server.usage.cpu_percent - client.usage.cpu_percent, 1))
    if other > OTHER_CPU_WARNING:
        progress(f"warning: other processes used {other} % of a core during this phase; "
                 "the figures are not from a quiet machine")
    return {"client_cpu_percent": client.usage.cpu_percent, "other_cpu_percent": other}


def goals(report: dict) -> dict:
    """The goals of each version measured: 1.6's keys as they always were, 2.0.1's with "_201"."""
    out: dict = {}
    for version in report["ocpp"]:
        edge = report.get(key("edge", version))
        ratio = report.get(key("throughput_ratio", version))
        suffix = V201_SUFFIX if version == "2.0.1" else ""
        out.update({
            f"edge{suffix}_cpu_under_25_percent": edge is not None and edge["steady"]["kept_up"]
            and edge["steady"]["cpu_percent"] < GOAL_CPU_PERCENT,
            f"edge{suffix}_rss_under_150_mb": edge is not None and edge["steady"]["peak_rss_mb"] < GOAL_RSS_MB,
            f"ratio{suffix}_at_least_half": ratio is not None and ratio >= GOAL_RATIO,
        })
    out["apply_to"] = "500 chargers, MeterValues (2.0.1: TransactionEvent Updated) every 10 s"
    return out


async def run(args: argparse.Namespace, work_dir: Path) -> dict:
    # SIGTERM cancels the run like Ctrl-C does, so the servers are stopped and nothing is left behind.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, asyncio.current_task().cancel)
    width = len(str(args.chargers))
    charger_ids = [f"BENCH-{i:0{width}d}" for i in range(1, args.chargers + 1)]
    # One scrypt hash for all: checking it is slow on purpose, making 500 would be too.
    password_hash = hash_password(PASSWORD)
    report: dict = {
        "benchmark": "ocpp_load",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "machine": machine(),
        "commit": commit(),
        "command": " ".join(["python -m bench ocpp_load", *args.argv]),
        "chargers": args.chargers,
        "meter_interval_s": args.meter_interval,
        "heartbeat_interval_s": HEARTBEAT_INTERVAL,
        "steady_duration_s": args.duration,
        "throughput_duration_s": args.throughput_duration,
        "ocpp": args.versions,
    }
    for version in args.versions:
        for server_name in args.servers:
            name = key(server_name, version)
            folder = work_dir / name
            folder.mkdir()
            server = (servers.edge(folder, charger_ids, password_hash, ID_TAG) if server_name == "edge"
                      else edge_tls(folder, charger_ids, password_hash, ID_TAG) if server_name == "edge_tls"
                      else servers.bare(folder))
            tls = client_context(make_pki(folder / "state")) if server_name == "edge_tls" else None
            report[name] = await measure_server(name, server, args, charger_ids, tls,
                                                Fleet201 if version == "2.0.1" else Fleet)
        report[key("throughput_ratio", version)] = _ratio(report, "messages_per_s", version)
        # The same comparison from CPU cost per message: it holds when the bench was the limit.
        capacity = _ratio(report, "server_cpu_ms_per_message", version)
        report[key("capacity_ratio", version)] = round(1.0 / capacity, 3) if capacity else None
    if "edge" in report and "edge_tls" in report:
        report["tls_cost"] = tls_cost(report["edge"], report["edge_tls"])
    report["goals"] = goals(report)
    return report


def tls_cost(plain: dict, tls: dict) -> dict:
    """wss:// against ws://, the same edge and load: what TLS adds."""
    def diff(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else round(b - a, 2)
    return {
        "connect_s": diff(plain["connect_s"], tls["connect_s"]),
        "steady_cpu_percent": diff(plain["steady"]["cpu_percent"], tls["steady"]["cpu_percent"]),
        "steady_rss_mb": diff(plain["steady"]["peak_rss_mb"], tls["steady"]["peak_rss_mb"]),
        "steady_p99_ms": diff(plain["steady"]["latency_ms"]["p99"], tls["steady"]["latency_ms"]["p99"]),
        "throughput_cpu_ms_per_message": diff(plain["throughput"]["server_cpu_ms_per_message"],
                                              tls["throughput"]["server_cpu_ms_per_message"]),
        "restart_all_online_s": diff((plain.get("restart") or {}).get("all_online_s"),
                                     (tls.get("restart") or {}).get("all_online_s")),
        "restart_cpu_percent": diff((plain.get("restart") or {}).get("cpu_percent"),
                                    (tls.get("restart") or {}).get("cpu_percent")),
    }


def _ratio(report: dict, figure: str, version: str = "1.6") -> float | None:
    """edge / bare of a throughput figure of one OCPP version, when both ran."""
    try:
        edge = report[key("edge", version)]["throughput"][figure]
        bare = report[key("bare", version)]["throughput"][figure]
    except KeyError:
        return None
    return round(edge / bare, 3) if edge and bare else None


def text_summary(report: dict) -> str:
    lines = [f"ocpp_load: {report['chargers']} chargers, MeterValues every {report['meter_interval_s']:g} s"]
    for name in ("edge", "edge_tls", "bare", "edge_201", "bare_201"):
        side = report.get(name)
        if side is None:
            continue
        s, t = side["steady"], side["throughput"]
        lines.append(f"  {name}: connect {side['connect_s']} s | steady {s['messages_per_s']} msg/s "
                     f"({'kept up' if s.get('kept_up') else 'fell behind'}, {s.get('cpu_ms_per_message')} ms cpu each), "
                     f"p50 {s['latency_ms']['p50']} ms, p99 {s['latency_ms']['p99']} ms, cpu {s['cpu_percent']} %, "
                     f"rss {s['peak_rss_mb']} MB | throughput {t['messages_per_s']} msg/s "
                     f"(bench cpu {t['client_cpu_percent']} %)")
        if side.get("restart"):
            r = side["restart"]
            lines.append(f"    restart: ready after {r['start_s']} s, all chargers back {r['all_online_s']} s later, "
                         f"cpu {r['cpu_percent']} %, rss {r['peak_rss_mb']} MB")
    if report.get("tls_cost"):
        lines.append("  TLS adds: " + ", ".join(f"{k} {v:+}" for k, v in report["tls_cost"].items() if v is not None))
    for version in report["ocpp"]:
        lines.append(f"  OCPP {version} throughput ratio edge/bare: {report[key('throughput_ratio', version)]} "
                     f"(from CPU per message: {report[key('capacity_ratio', version)]})")
    lines.append("  goals: " + ", ".join(f"{k}={v}" for k, v in report["goals"].items() if k != "apply_to"))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    raise_open_files_limit(args.chargers + 256)  # per process: one socket per charger, plus files and pipes
    # The library validates each payload on a worker thread by default; the
    # thread hop costs the load generator more than the check itself.
    ocpp.messages.ASYNC_VALIDATION = False

    def once(args: argparse.Namespace) -> dict:
        with work_dir("bench-ocpp-load-", keep=args.keep_work_dir, parent=args.work_dir) as path:
            return asyncio.run(run(args, path))
    return run_report("ocpp_load", once, text_summary, args)
