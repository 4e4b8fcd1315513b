"""edge-sim: a fleet of simulated wallboxes with drivers that come, charge and leave.

    edge-sim --url ws://127.0.0.1:9000/ocpp --chargers 3 --prefix SIM \\
             --password-file passwords.txt --session-minutes 5 [--ocpp 2.0.1]

Prints one line per event. The password file holds `<charge point id> <password>`
lines; a line with only a password is used for every charger not listed.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from simulator.charge_point import SimulatedChargePoint
from simulator.v201 import SimulatedStation

TEMPLATES = {
    "connected": "connected to {url}",
    "connect_failed": "cannot connect: {error}",
    "disconnected": "disconnected: {reason}",
    "boot": "BootNotification {status} (interval {interval} s)",
    "status": "connector {connector_id} is {status} ({error_code})",
    "plug_in": "connector {connector_id}: car plugged in ({car_max_current:g} A, {car_phases}-phase, SoC {soc:.0f} %)",
    "unplug": "connector {connector_id}: car unplugged",
    "authorize": "id tag {id_tag}: {status} (asked the {source})",
    "start_transaction": "connector {connector_id}: transaction started for {id_tag} at {meter_start} Wh",
    "transaction_id": "connector {connector_id}: the central system gave transaction id {transaction_id} ({status})",
    "meter_values": "connector {connector_id}: {current[0]:.1f}/{current[1]:.1f}/{current[2]:.1f} A, {power_w:.0f} W, "
                    "register {energy_wh:.0f} Wh, offered {offered:.1f} A",
    "stop_transaction": "connector {connector_id}: transaction {transaction_id} stopped ({reason}), {energy_wh} Wh",
    "heartbeat": "heartbeat, central system time {current_time}",
    "request": "central system asked {action}: answered {status}",
    "charging_profile": "connector {connector_id}: {purpose} {id} (stack level {stack_level}) limits {limits} {unit}",
    "reset": "{type} reset: rebooting",
}


def describe(name: str, data: dict[str, Any]) -> str:
    """One human-readable line for an event; unknown events show their data as is."""
    try:
        return TEMPLATES[name].format(**data)
    except (KeyError, ValueError, TypeError, IndexError):
        return f"{name} {data}"


def read_passwords(path: Path | None) -> tuple[dict[str, str], str | None]:
    if path is None:
        return {}, None
    passwords: dict[str, str] = {}
    default = None
    for line in path.read_text().splitlines():
        fields = line.split(None, 1)
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) == 1:
            default = fields[0]
        else:
            passwords[fields[0]] = fields[1].strip()
    return passwords, default


def printer(charge_point_id: str) -> Callable[[str, dict], None]:
    def show(name: str, data: dict) -> None:
        print(f"{datetime.now():%H:%M:%S} {charge_point_id} {describe(name, data)}", flush=True)
    return show


async def drive(sim: SimulatedChargePoint, *, id_tag: str, session_seconds: float, idle_seconds: float,
                cycles: int, rng: random.Random) -> None:
    """A driver who arrives, authorizes, charges for a while and leaves; `cycles` 0 repeats forever."""
    for _ in itertools.count() if cycles == 0 else range(cycles):
        await sim.wait_accepted(timeout=None)
        await asyncio.sleep(rng.uniform(0.2, 1.0) * idle_seconds)  # drivers do not arrive in lockstep
        await sim.plug_in(1, car_max_current=rng.choice([10.0, 16.0, 16.0, 32.0]), car_phases=rng.choice([1, 3, 3]),
                          soc=rng.uniform(10, 70))
        try:
            if await sim.authorize(id_tag) == "Accepted":
                await sim.start_transaction(1, id_tag)
                await asyncio.sleep(session_seconds)
                if sim.connector(1).transaction_id is not None:  # the central system may have stopped it
                    await sim.stop_transaction(1, "Local", id_tag=id_tag)
        except ValueError as exc:  # e.g. the connector was made Inoperative
            print(f"{datetime.now():%H:%M:%S} {sim.id} driver gave up: {exc}", flush=True)
        await sim.unplug(1)


async def drive_201(sim: SimulatedStation, *, id_tag: str, session_seconds: float, idle_seconds: float,
                    cycles: int, rng: random.Random) -> None:
    """The same driver at an OCPP 2.0.1 station: plug in, hold the card, charge, hold it again, leave."""
    for _ in itertools.count() if cycles == 0 else range(cycles):
        await sim.wait_accepted(timeout=None)
        await asyncio.sleep(rng.uniform(0.2, 1.0) * idle_seconds)
        await sim.plug_in(1, car_max_current=rng.choice([10.0, 16.0, 16.0, 32.0]), car_phases=rng.choice([1, 3, 3]),
                          soc=rng.uniform(10, 70))
        if await sim.present_token(1, id_tag) == "Accepted":
            await asyncio.sleep(session_seconds)
            if sim.evses[1].token is not None:  # the CSMS may have stopped it
                await sim.present_token(1, id_tag)
        await sim.unplug(1)


async def run_fleet(args: argparse.Namespace) -> None:
    passwords, default = read_passwords(args.password_file)
    rng = random.Random(args.seed)
    if args.ocpp == "2.0.1":
        await _run(args, [SimulatedStation(f"{args.prefix}{n:03d}", args.url, password=passwords.get(
            f"{args.prefix}{n:03d}", default), tx_updated_interval=max(1, round(args.meter_interval)),
            on_event=printer(f"{args.prefix}{n:03d}")) for n in range(1, args.chargers + 1)], drive_201, rng)
        return
    sims = [SimulatedChargePoint(cp_id, args.url, password=passwords.get(cp_id, default),
                                 meter_interval=args.meter_interval, on_event=printer(cp_id))
            for cp_id in (f"{args.prefix}{n:03d}" for n in range(1, args.chargers + 1))]
    await _run(args, sims, drive, rng)


async def _run(args: argparse.Namespace, sims: list[Any], driver: Callable[..., Any], rng: random.Random) -> None:
    async with asyncio.TaskGroup() as group:
        runners = [group.create_task(sim.run()) for sim in sims]
        drivers = [group.create_task(driver(sim, id_tag=f"{sim.id}-TAG", session_seconds=args.session_minutes * 60,
                                           idle_seconds=args.idle_seconds, cycles=args.cycles,
                                           rng=random.Random(rng.random())))
                   for sim in sims]
        await asyncio.gather(*drivers)
        for runner in runners:
            runner.cancel()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="edge-sim", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="ws://127.0.0.1:9000/ocpp", help="central system URL; the id is appended")
    parser.add_argument("--chargers", type=int, default=1)
    parser.add_argument("--prefix", default="SIM", help="charge point ids are PREFIX001, PREFIX002, ...")
    parser.add_argument("--password-file", type=Path, help="enables HTTP Basic auth (security profile 1)")
    parser.add_argument("--session-minutes", type=float, default=5.0, help="how long each car charges")
    parser.add_argument("--idle-seconds", type=float, default=30.0, help="about how long a connector stays free")
    parser.add_argument("--meter-interval", type=float, default=10.0, help="seconds between MeterValues")
    parser.add_argument("--cycles", type=int, default=0, help="sessions per charger, 0 for ever")
    parser.add_argument("--seed", type=int, default=None, help="repeat the same drivers")
    parser.add_argument("--ocpp", choices=("1.6", "2.0.1"), default="1.6",
                        help="the protocol the simulated chargers speak (2.0.1: simulator.v201)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    try:
        asyncio.run(run_fleet(parse_args(argv)))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
