"""The demo site: the edge with config/example-site.toml, three simulated
chargers whose drivers come, authorize, charge and leave, a serial (RAPI)
wallbox brought in by the firmware bridge over a pseudo-terminal, a
simulated SDM630 grid meter (Modbus TCP) reading six flats' base load plus
what the cars really draw, so load management works in a closed loop, and
the cloud: a local Mosquitto broker and the cloud service (SQLite), to which
the edge syncs its charge records and events.

    python -m simulator.demo [--duration SECONDS] [--state-dir DIR]

The screen shows where to look (the web page and its login, edgectl, the
cloud's API and an operator token), the key events (sessions, charge records,
refused cards, alerts) and, every few seconds, a compact view of the site. The
detailed log (the edge's structured log, the chargers' and the bridge's) goes
to a file whose path is printed first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import shlex
import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import Callable, TextIO

from cloud.config import MqttSettings, Settings
from cloud.service import CloudService
from cloud.store import admin
from cloud.store.views import site_detail
from cloud.tokens import new_token, token_hash, token_prefix
from edge import demo_link
from edge.app import Edge, load_api_token
from edge.config import ConfigError, SiteConfig, load_config
from edge.dlm.config import evses_of
from edge.dlm.phases import to_site
from edge.events import Event
from edge.journal import Store
from edge.logs import LogfmtFormatter
from edge.ocpp.security import hash_password
from edge.web.page.logins import PASSWORD_FILE, write_password_hash
from simulator.broker import MosquittoBroker
from simulator.charge_point import SimulatedChargePoint
from simulator.cli import describe, drive
from simulator.meter import SimulatedMeter, household_profile
from simulator.rapi_firmware import WallboxRig, bridged_wallbox

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config" / "example-site.toml"
# The demo chargers' passwords; config/example-site.toml holds their hashes.
DEMO = [("SIM-1", "demo-password-1", "DEMO-TAG-1"), ("SIM-2", "demo-password-2", "DEMO-TAG-2"),
        ("SIM-3", "demo-password-3", "DEMO-TAG-3")]
# The serial wallbox behind the firmware bridge; its driver starts sessions from the app (remote start).
BRIDGED = ("WB-1", "demo-password-wb", "DEMO-TAG-4")
# The installer's password for the web page, set in the demo's state directory at every start.
INSTALLER_PASSWORD = "demo-installer"
OPERATOR = "demo-operator"
# Six all-electric flats peak at about 100 A per phase at dinner time (simulator.meter's appliances), far over
# the example's 63 A main fuse before any car charges. The demo's flats cook with gas: 40 % of that keeps the
# building under about 42 A, so the cars have room and load management shows what it does with it.
# --base-load-scale 1 shows the other case: at dinner the building alone can exceed the fuse, and the alert says so.
BASE_LOAD_SCALE = 0.4

log = logging.getLogger("simulator.demo")


class Screen:
    """What a person watching sees: one line per key event, a compact view now and then."""

    def __init__(self, out: TextIO = sys.stdout):
        self.out = out

    def line(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def event(self, text: str) -> None:
        self.line(f"{datetime.now():%H:%M:%S}  {text}")


def key_event(event: Event) -> str | None:
    """The line a key event gets on the screen; None for the rest (they are in the log file)."""
    d, where = event.data, event.charger_id
    if event.kind == "transaction.started":
        return f"{where}/{d['connector_id']} session {d['transaction_id']} started for {d['id_tag']}" + (
            f" ({d['user_group']})" if d.get("user_group") else "") + (
            "" if d.get("auth_status") == "Accepted" else f": token {d.get('auth_status')}")
    if event.kind == "transaction.stopped":
        return f"{where}/{d['connector_id']} session {d['transaction_id']} stopped ({d.get('reason') or 'Local'})"
    if event.kind == "cdr.created":
        return (f"{where}/{d['connector_id']} charge record for session {d['transaction_id']}: {d['status']}, "
                f"{d['energy_kwh']} kWh, {d['price_gross']} {d['currency']}")
    if event.kind == "token.authorized" and d.get("status") != "Accepted":
        return f"{where} card {d['id_tag']} refused: {d['status']}"
    if event.kind == "dlm.over_fuse":
        if d.get("active"):
            return (f"ALERT circuit {d['circuit']} {d['phase']} over its {d['limit']:g} A limit: peak {d['peak']:g} A "
                    f"for {d['lasted_s']:g} s; {d['done']}")
        return f"alert ended: circuit {d['circuit']} {d['phase']} under its {d['limit']:g} A limit again"
    if event.kind == "dlm.failsafe":
        return f"{'ALERT' if d.get('active') else 'alert ended:'} circuit {d['circuit']} failsafe"
    if event.kind in ("dlm.over_limit", "dlm.uncontrollable", "edge.part_failed", "recovery.step"):
        return f"{event.kind} {where} " + " ".join(f"{k}={v}" for k, v in d.items() if v is not None)
    return None


async def show_events(edge: Edge, screen: Screen) -> None:
    events = edge.bus.subscribe()
    try:
        while True:
            event = await events.get()
            text = key_event(event)
            if text and event.kind == "cdr.created" and event.data["status"] != "Successful":
                record = await edge.journal.read(Store.latest_cdr, event.data["transaction_id"])
                if record and record.get("status_reasons"):
                    text += f" ({'; '.join(record['status_reasons'])})"
            if text:
                screen.event(text)
    finally:
        edge.bus.unsubscribe(events)


def _bar(value: float | None, limit: float, width: int = 12) -> str:
    if value is None:
        return "?" * width
    filled = max(0, min(width, round(width * value / limit))) if limit else 0
    return "#" * filled + "." * (width - filled)


async def site_view(edge: Edge, cloud: CloudService | None) -> list[str]:
    """The compact status view: chargers, each circuit phase against its limit, each car's limit and why."""
    lines = []
    manager = edge.load_manager
    status = manager.status() if manager is not None else {"circuits": [], "connectors": []}
    cars = [c for c in status["connectors"] if c["transaction_id"] is not None]
    lines.append(f"---- site: {len(edge.ocpp.sessions)} chargers connected, {len(cars)} charging")
    for circuit in status["circuits"]:
        if not circuit["phases"]:
            continue
        cars_a = "/".join(f"{p['allocated']:g}" for p in circuit["phases"])
        if circuit["meter"] is None:     # no meter of its own: what the cars are given is what there is to see
            lines.append(f"     {circuit['id']:<7} {circuit['limit']:g} A  (no meter)  cars {cars_a} A")
            continue
        phases = "  ".join(f"{p['phase']} {_bar(p['metered'], circuit['limit'])} "
                           + ("  -  " if p["metered"] is None else f"{p['metered']:4.1f}")
                           + (" OVER" if p.get("over") else "") for p in circuit["phases"])
        lines.append(f"     {circuit['id']:<7} {circuit['limit']:g} A  {phases}   cars {cars_a} A"
                     + ("  FAILSAFE" if circuit["failsafe"] else ""))
    for c in cars:
        lines.append(f"     {c['charger_id']}/{c['connector_id']} "
                     + ("  -" if c["limit"] is None else f"{c['limit']:4.1f} A") + f": {c['reason']}")
    if cloud is not None:
        streams = (await cloud.db.read(site_detail, edge.config.site.id))["streams"]
        lines.append("     cloud received: " + (", ".join(f"{name} {info['received']}"
                                                           for name, info in sorted(streams.items()))
                                                 or "nothing yet"))
    return lines


async def report(edge: Edge, every: float, screen: Screen, cloud: CloudService | None = None) -> None:
    while True:
        await asyncio.sleep(every)
        for line in await site_view(edge, cloud):
            screen.line(line)


async def start_cloud(state_dir: Path, site_id: str) -> tuple[MosquittoBroker, CloudService, asyncio.Task, str]:
    """A local Mosquitto (with the production ACL: the site may only publish below its own
    topics) and the cloud service on SQLite, as an operator would run them; an operator
    who sees the demo site, and its API token (-> the token)."""
    broker = MosquittoBroker(state_dir / "broker",
                             users={site_id: "demo-site-password", "cloud": "demo-cloud-password"})
    await asyncio.to_thread(broker.start)
    cloud = CloudService(Settings(
        database_url=f"sqlite:///{state_dir / 'cloud.sqlite'}", http_port=0,
        mqtt=MqttSettings(host=broker.host, port=broker.port, client_id="cloud-demo", username="cloud",
                          password="demo-cloud-password")))
    task = asyncio.create_task(cloud.run(), name="cloud")
    await cloud.ready.wait()
    token = new_token()
    now = cloud.clock.now_iso()
    if not any(op["name"] == OPERATOR for op in await cloud.db.read(admin.operators)):
        await cloud.db.write(admin.add_operator, OPERATOR, now)
    await cloud.db.write(admin.add_token, OPERATOR, token_hash(token), token_prefix(token), "demo", now)
    await cloud.db.write(admin.assign_site, site_id, OPERATOR, now)
    return broker, cloud, task, token


def site_currents(config: SiteConfig, sims: list[SimulatedChargePoint], wallboxes: dict[str, WallboxRig],
                  seed: int, base_scale: float = BASE_LOAD_SCALE):
    """What the grid meter sees: six flats' base load plus every car's real draw,
    each on the site phases its charger is wired to."""
    wiring = {(e.charger_id, e.connector_id): e.phase_map
              for charger in config.chargers for e in evses_of(charger, "")}

    def currents() -> tuple[float, float, float]:
        now = datetime.now()
        base = household_profile(now.hour * 3600 + now.minute * 60 + now.second, seed=seed, households=6)
        total = [a * base_scale for a in base]
        for sim in sims:
            for connector_id in range(1, len(sim.connectors)):
                mapping = wiring.get((sim.id, connector_id))
                if mapping:
                    drawn = to_site(sim.connector(connector_id).current, mapping)
                    total = [t + d for t, d in zip(total, drawn)]
        for charger_id, rig in wallboxes.items():
            mapping = wiring.get((charger_id, 1))
            if mapping:
                drawn = to_site((rig.firmware.current,), mapping)
                total = [t + d for t, d in zip(total, drawn)]
        return (total[0], total[1], total[2])
    return currents


def log_to_file(path: Path) -> None:
    """Everything logged (the edge, the bridge, the cloud, the chargers) into `path`, in the edge's format."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="w", encoding="utf-8")
    handler.setFormatter(LogfmtFormatter(with_time=True, with_priority=False))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    for name, level in (("ocpp", logging.WARNING), ("websockets", logging.WARNING),
                        ("aiohttp.access", logging.WARNING), ("pymodbus", logging.CRITICAL)):
        logging.getLogger(name).setLevel(level)


def charger_log(charge_point_id: str) -> Callable[[str, dict], None]:
    """The simulated charger's own account of what happens (SIM-n lines), into the log file."""
    logger = logging.getLogger(f"simulator.{charge_point_id}")

    def show(name: str, data: dict) -> None:
        logger.info("%s %s", charge_point_id, describe(name, data))
    return show


def set_installer_password(config: SiteConfig) -> None:
    write_password_hash(config.state_path(PASSWORD_FILE), hash_password(INSTALLER_PASSWORD))


def web_address(config: SiteConfig, edge: Edge) -> str:
    api_host = "127.0.0.1" if config.api.host in ("0.0.0.0", "::") else config.api.host
    return f"http://{api_host}:{edge.api.bound_port}/"


def publish_for_edgectl(args: argparse.Namespace, config: SiteConfig, edge: Edge) -> Path:
    """edgectl in another terminal finds this demo by itself (edge/demo_link.py)."""
    return demo_link.publish(demo_link.DemoLink(
        url=web_address(config, edge) + "api/v1",
        token=load_api_token(config.state_path(config.api.token_file)),
        config=str(Path(args.config).resolve()), state_dir=str(Path(args.state_dir).resolve()),
        pid=os.getpid()))


def banner(args: argparse.Namespace, config: SiteConfig, edge: Edge, cloud: CloudService, token: str,
           log_path: Path) -> list[str]:
    """Where to look while the demo runs; every address and secret is the running demo's own."""
    web = web_address(config, edge)
    cloud_api = f"http://127.0.0.1:{cloud.http_port}/api/v1"
    env = (f"export EDGE_CONFIG={shlex.quote(str(Path(args.config).resolve()))} "
           f"STATE_DIRECTORY={shlex.quote(str(Path(args.state_dir).resolve()))}")
    edgectl = shlex.quote(str(ROOT / ".venv" / "bin" / "edgectl"))
    return [
        "",
        f"demo site {config.site.id!r} running with {len(config.chargers)} chargers; Ctrl-C stops it",
        f"  detailed log:  {log_path}   (tail -f it in another terminal)",
        f"  web page:      {web}   installer password: {INSTALLER_PASSWORD}",
        "  edgectl, in another terminal as this user, finds this demo by itself:",
        f"      {edgectl} chargers        # or: dlm, sessions, cdrs, log SIM-1, health, uplink, commission",
        f"      elsewhere: {env}",
        f"  cloud API:     {cloud_api}   operator {OPERATOR!r}, token {token}",
        f"      curl -s -H 'Authorization: Bearer {token}' {cloud_api}/sites/{config.site.id}/cdrs",
        f"  chargers connect to ws://127.0.0.1:{edge.ocpp.bound_port}/ocpp/<id>; sessions last "
        f"{args.session_seconds:g} s",
        "",
    ]


async def run_demo(args: argparse.Namespace, screen: Screen | None = None) -> int:
    screen = screen or Screen()
    state_dir = Path(args.state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    try:
        config = load_config(args.config, state_dir=str(state_dir))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    log_path = Path(args.log_file) if args.log_file else state_dir / "demo.log"
    log_to_file(log_path)
    set_installer_password(config)
    sims: list[SimulatedChargePoint] = []
    wallboxes: dict[str, WallboxRig] = {}
    meter = SimulatedMeter(site_currents(config, sims, wallboxes, args.seed or 0, args.base_load_scale))
    if config.meters:
        # The example's grid meter is this simulated SDM630 on a free local port.
        port = await meter.start_tcp()
        config = config.model_copy(update={"meters": [
            config.meters[0].model_copy(update={"host": "127.0.0.1", "port": port}), *config.meters[1:]]})
    broker, cloud, cloud_task, token = await start_cloud(state_dir, config.site.id)
    config = config.model_copy(update={"uplink": config.uplink.model_copy(update={
        "enabled": True, "host": broker.host, "port": broker.port, "tls": False,
        "password": "demo-site-password", "password_file": "", "telemetry_interval": 5.0})})
    edge = Edge(config)
    edge_task = await edge.start(timeout=None)
    url = f"ws://127.0.0.1:{edge.ocpp.bound_port}/ocpp"
    link = publish_for_edgectl(args, config, edge)
    for line in banner(args, config, edge, cloud, token, log_path):
        screen.line(line)

    rng = random.Random(args.seed)
    sims += [SimulatedChargePoint(cp_id, url, password=password, meter_interval=args.meter_interval,
                                  connectors=config.charger(cp_id).connectors if config.charger(cp_id) else 1,
                                  max_current=config.charger(cp_id).max_current if config.charger(cp_id) else 32,
                                  phases=config.charger(cp_id).phases if config.charger(cp_id) else 3,
                                  on_event=charger_log(cp_id))
             for cp_id, password, _ in DEMO]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(sim.run()) for sim in sims]
            tasks.append(group.create_task(show_events(edge, screen)))
            tasks += [group.create_task(drive(sim, id_tag=tag, session_seconds=args.session_seconds,
                                              idle_seconds=args.idle_seconds, cycles=0,
                                              rng=random.Random(rng.random())))
                      for sim, (_, _, tag) in zip(sims, DEMO)]
            # Now and then someone tries a blocked card at SIM-2: the edge refuses it.
            tasks.append(group.create_task(blocked_card(sims[1], min(args.session_seconds, 60.0) * 2)))
            if config.charger(BRIDGED[0]):
                tasks.append(group.create_task(serial_wallbox(edge, url, state_dir, wallboxes, args)))
            tasks.append(group.create_task(report(edge, args.status_every, screen, cloud)))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), args.duration)
            for task in tasks:
                task.cancel()
    finally:
        demo_link.withdraw(link)
        edge.stop()
        await edge_task
        await meter.stop()
        cloud_task.cancel()
        await asyncio.gather(cloud_task, return_exceptions=True)
        await asyncio.to_thread(broker.stop)
    screen.event(f"demo stopped; the detailed log is in {log_path}")
    return 0


async def serial_wallbox(edge: Edge, url: str, state_dir: Path, wallboxes: dict[str, WallboxRig],
                         args: argparse.Namespace) -> None:
    """The serial wallbox: simulated RAPI firmware on a pty pair, the firmware
    bridge presenting it to the edge, and a driver who plugs in and starts from
    the app (a remote start through the edge)."""
    charger_id, password, tag = BRIDGED
    async with bridged_wallbox(state_dir / "wallbox", charge_point_id=charger_id, url=url, password=password,
                               meter_interval=args.meter_interval) as (rig, _bridge):
        wallboxes[charger_id] = rig
        while True:
            await asyncio.sleep(args.idle_seconds)
            rig.firmware.plug_in()
            log.info("%s car plugged in (serial wallbox); remote start for %s", charger_id, tag)
            await edge.commands.send(charger_id, "RemoteStartTransaction", {"connectorId": 1, "idTag": tag},
                                     actor="demo", reason="driver started from the app")
            await asyncio.sleep(args.session_seconds)
            rig.firmware.unplug()
            log.info("%s car unplugged", charger_id)


async def blocked_card(sim: SimulatedChargePoint, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        if sim.is_accepted():
            await sim.authorize("DEADBEEF")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m simulator.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(EXAMPLE))
    parser.add_argument("--state-dir", default=str(ROOT / "var" / "demo"), help="journal and API token")
    parser.add_argument("--log-file", help="the detailed log (default: demo.log in the state directory)")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    # A charge record is billable from 1 minute and 0.2 kWh (the example's [charge_records]): 6 minutes
    # make that for every car the drivers bring, a 10 A single-phase one (2.3 kW) too.
    parser.add_argument("--session-seconds", type=float, default=360.0, help="how long each car charges")
    parser.add_argument("--idle-seconds", type=float, default=15.0)
    parser.add_argument("--meter-interval", type=float, default=5.0)
    parser.add_argument("--status-every", type=float, default=15.0)
    parser.add_argument("--base-load-scale", type=float, default=BASE_LOAD_SCALE,
                        help="the flats' load against six all-electric flats (1: at dinner time they can take the "
                             "whole fuse on their own, and the over-the-limit alert shows it)")
    parser.add_argument("--seed", type=int, default=None)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(run_demo(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
