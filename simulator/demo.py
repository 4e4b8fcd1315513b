"""The demo site: the edge with config/example-site.toml, three simulated
chargers whose drivers come, authorize, charge and leave, a serial (RAPI)
wallbox brought in by the firmware bridge over a pseudo-terminal, a
simulated SDM630 grid meter (Modbus TCP) reading six flats' base load plus
what the cars really draw, so load management works in a closed loop, and
the cloud: a local Mosquitto broker and the cloud service (SQLite), to which
the edge syncs its charge records and events.

    python -m simulator.demo [--duration SECONDS] [--state-dir DIR]

Edge lines are the edge's own structured log; `SIM-n` lines are the chargers.
Every status interval the edge's view of the site is printed as a table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import sys
from datetime import datetime
from pathlib import Path

from cloud.config import MqttSettings, Settings
from cloud.service import CloudService
from cloud.store.views import site_detail
from edge.app import Edge
from edge.config import ConfigError, SiteConfig, load_config
from edge.dlm.config import evses_of
from edge.dlm.phases import NAMES, to_site
from edge.journal import Store
from edge.logs import setup_logging
from simulator.charge_point import SimulatedChargePoint
from simulator.broker import MosquittoBroker
from simulator.cli import drive, printer
from simulator.meter import SimulatedMeter, household_profile
from simulator.rapi_firmware import WallboxRig, bridged_wallbox

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config" / "example-site.toml"
# The demo chargers' passwords; config/example-site.toml holds their hashes.
DEMO = [("SIM-1", "demo-password-1", "DEMO-TAG-1"), ("SIM-2", "demo-password-2", "DEMO-TAG-2"),
        ("SIM-3", "demo-password-3", "DEMO-TAG-3")]
# The serial wallbox behind the firmware bridge; its driver starts sessions from the app (remote start).
BRIDGED = ("WB-1", "demo-password-wb", "DEMO-TAG-4")


async def report(edge: Edge, every: float, cloud: CloudService | None = None) -> None:
    while True:
        await asyncio.sleep(every)
        sessions = await edge.journal.read(Store.transactions, limit=1000)
        done = [s for s in sessions if s["state"] == "completed"]
        energy = sum(s["energy_wh"] or 0 for s in done)
        chargers = {c["id"]: c for c in await edge.journal.read(Store.chargers)}
        connectors = await edge.journal.read(Store.connectors)
        print(f"{datetime.now():%H:%M:%S} ---- edge view: {len(edge.ocpp.sessions)} connected, "
              f"{len(sessions) - len(done)} charging, {len(done)} sessions done, {energy / 1000:.2f} kWh delivered")
        for charger_id in sorted(chargers):
            states = " ".join(f"{c['connector_id']}:{c['status']}" for c in connectors
                              if c["charger_id"] == charger_id and c["connector_id"] > 0)
            print(f"         {charger_id:<6} {edge.presence.status(charger_id):<22} {states}")
        manager = edge.load_manager
        if manager is not None:
            for circuit_id, load in manager.allocation.circuits.items():
                phases = "  ".join(f"{NAMES[p]} " + ("    -" if ph.metered is None else f"{ph.metered:5.1f}")
                                   + f" A (cars {ph.allocated:4.1f})" for p, ph in enumerate(load.phases))
                print(f"         circuit {circuit_id:<7} limit {manager.topology.by_id[circuit_id].limit:g} A: {phases}"
                      + ("  FAILSAFE" if load.failsafe else ""))
            for key, decision in sorted(manager.allocation.decisions.items()):
                if manager.tracks[key].transaction_id is not None:
                    print(f"         {key[0]}/{key[1]} limit {decision.limit:4.1f} A: {decision.reason}")
        if cloud is not None:
            streams = (await cloud.db.read(site_detail, edge.config.site.id))["streams"]
            print("         cloud received: " + (", ".join(f"{name} {info['received']}" for name, info in streams.items())
                                                  or "nothing yet"))
        sys.stdout.flush()


async def start_cloud(state_dir: Path, site_id: str) -> tuple[MosquittoBroker, CloudService, asyncio.Task]:
    """A local Mosquitto (with the production ACL: the site may only publish below its own
    topics) and the cloud service on SQLite, as an operator would run them."""
    broker = MosquittoBroker(state_dir / "broker", users={site_id: "demo-site-password", "cloud": "demo-cloud-password"})
    await asyncio.to_thread(broker.start)
    cloud = CloudService(Settings(
        database_url=f"sqlite:///{state_dir / 'cloud.sqlite'}", http_port=0,
        mqtt=MqttSettings(host=broker.host, port=broker.port, client_id="cloud-demo", username="cloud",
                          password="demo-cloud-password")))
    task = asyncio.create_task(cloud.run(), name="cloud")
    await cloud.ready.wait()
    return broker, cloud, task


def site_currents(config: SiteConfig, sims: list[SimulatedChargePoint], wallboxes: dict[str, WallboxRig],
                  seed: int):
    """What the grid meter sees: six flats' base load plus every car's real draw,
    each on the site phases its charger is wired to."""
    wiring = {(e.charger_id, e.connector_id): e.phase_map
              for charger in config.chargers for e in evses_of(charger, "")}

    def currents() -> tuple[float, float, float]:
        now = datetime.now()
        total = list(household_profile(now.hour * 3600 + now.minute * 60 + now.second, seed=seed, households=6))
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


async def run_demo(args: argparse.Namespace) -> int:
    state_dir = Path(args.state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    try:
        config = load_config(args.config, state_dir=str(state_dir))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    setup_logging("info")
    sims: list[SimulatedChargePoint] = []
    wallboxes: dict[str, WallboxRig] = {}
    meter = SimulatedMeter(site_currents(config, sims, wallboxes, args.seed or 0))
    if config.meters:
        # The example's grid meter is this simulated SDM630 on a free local port.
        port = await meter.start_tcp()
        config = config.model_copy(update={"meters": [
            config.meters[0].model_copy(update={"host": "127.0.0.1", "port": port}), *config.meters[1:]]})
    broker, cloud, cloud_task = await start_cloud(state_dir, config.site.id)
    config = config.model_copy(update={"uplink": config.uplink.model_copy(update={
        "enabled": True, "host": broker.host, "port": broker.port, "tls": False,
        "password": "demo-site-password", "password_file": "", "telemetry_interval": 5.0})})
    edge = Edge(config)
    edge_task = await edge.start(timeout=None)
    url = f"ws://127.0.0.1:{edge.ocpp.bound_port}/ocpp"
    print(f"\nedge running: chargers connect to {url}/<id>; local API on 127.0.0.1:{edge.api.bound_port}\n"
          f"try, in another terminal:\n"
          f"  .venv/bin/edgectl chargers --config {args.config} --state-dir {state_dir}\n"
          f"  .venv/bin/edgectl sessions --config {args.config} --state-dir {state_dir}\n"
          f"  .venv/bin/edgectl cmd SIM-1 TriggerMessage requestedMessage=MeterValues --reason demo "
          f"--config {args.config} --state-dir {state_dir}\n", flush=True)

    rng = random.Random(args.seed)
    sims += [SimulatedChargePoint(cp_id, url, password=password, meter_interval=args.meter_interval,
                                  connectors=config.charger(cp_id).connectors if config.charger(cp_id) else 1,
                                  max_current=config.charger(cp_id).max_current if config.charger(cp_id) else 32,
                                  phases=config.charger(cp_id).phases if config.charger(cp_id) else 3,
                                  on_event=printer(cp_id))
             for cp_id, password, _ in DEMO]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(sim.run()) for sim in sims]
            tasks += [group.create_task(drive(sim, id_tag=tag, session_seconds=args.session_seconds,
                                              idle_seconds=args.idle_seconds, cycles=0,
                                              rng=random.Random(rng.random())))
                      for sim, (_, _, tag) in zip(sims, DEMO)]
            # Now and then someone tries a blocked card at SIM-2: the edge refuses it.
            tasks.append(group.create_task(blocked_card(sims[1], args.session_seconds * 2)))
            if config.charger(BRIDGED[0]):
                tasks.append(group.create_task(serial_wallbox(edge, url, state_dir, wallboxes, args)))
            tasks.append(group.create_task(report(edge, args.status_every, cloud)))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), args.duration)
            for task in tasks:
                task.cancel()
    finally:
        edge.stop()
        await edge_task
        await meter.stop()
        cloud_task.cancel()
        await asyncio.gather(cloud_task, return_exceptions=True)
        await asyncio.to_thread(broker.stop)
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
            print(f"{datetime.now():%H:%M:%S} {charger_id} car plugged in (serial wallbox); remote start for {tag}",
                  flush=True)
            await edge.commands.send(charger_id, "RemoteStartTransaction", {"connectorId": 1, "idTag": tag},
                                     actor="demo", reason="driver started from the app")
            await asyncio.sleep(args.session_seconds)
            rig.firmware.unplug()
            print(f"{datetime.now():%H:%M:%S} {charger_id} car unplugged", flush=True)


async def blocked_card(sim: SimulatedChargePoint, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        if sim.is_accepted():
            await sim.authorize("DEADBEEF")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m simulator.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(EXAMPLE))
    parser.add_argument("--state-dir", default=str(ROOT / "var" / "demo"), help="journal and API token")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    parser.add_argument("--session-seconds", type=float, default=20.0)
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    parser.add_argument("--meter-interval", type=float, default=5.0)
    parser.add_argument("--status-every", type=float, default=15.0)
    parser.add_argument("--seed", type=int, default=None)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(run_demo(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
