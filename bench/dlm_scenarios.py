"""Load management in real time: the real edge against scripted scenarios, next to a naive controller.

    python -m bench dlm_scenarios --json                 # about 14 minutes; JSON on stdout
    python -m bench dlm_scenarios --quick --scenario second_step --json   # about 25 s: the smoke test

Each scenario (bench/dlm_scenario_site.py) is played twice at the same time,
in two separate worlds: once against the real edge (edge.app.Edge in this
process, polling a simulated SDM630 over Modbus TCP, steering simulated
OCPP 1.6J chargers), once against the bench's naive equal-share controller
(bench/dlm_scenario_naive.py) with its own meter and chargers. The cars follow
a new limit after their reaction delay (1 to 3 s) and ramp over 2 s; the
chargers send MeterValues every 10 s unless a controller configures otherwise.

Per scenario and controller: A·s over the fuse on any phase beyond the
reaction window (5 s for the car plus 1.5 s for the controller), the energy
delivered against an LP upper bound (bench/dlm_scenario_bound.py), TxProfiles
per car-hour, and increases lowered again within 1.5 s.
See docs/performance.md, "Load management in real time".
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
from datetime import datetime, timezone
from dataclasses import asdict

from bench.dlm_scenario_bound import lp_bound
from bench.dlm_scenario_naive import NaiveController
from bench.dlm_scenario_site import (CAR_REACTION_S, CONTROLLER_REACTION_S, ID_TAG, MARGIN, METER_INTERVAL_S,
                                     WINDOW_S, Car, Charger, Scenario, World)
from bench.measure import progress, run_report
from bench.ocpp_load import commit, machine
from edge.app import Edge
from edge.config import parse_config

QUICK_FACTOR = 0.2
GOAL_LP_RATIO = 0.9
# After every charger booted, the edge configures them and sends default profiles; the script starts once
# those are in force. The bench's chargers take a new profile only after their car's reaction delay, so
# this waits that long too: with 2 s, a charger whose car reacts in 3 s had no default profile yet when
# its car arrived at once, and the car drew up to the charger's maximum unsteered for a second (a real
# charger booted before a car arrives has its default profile in force).
SETTLE_S = 2.0

SCENARIOS = (
    Scenario(
        "second_step", "L1 steps up twice, 0.8 s apart (before the cars reacted to the decrease); later L2 steps "
        "up twice, 3.5 s apart (after they followed it, while their MeterValues still show their old current)",
        limit=50,
        chargers=(Charger("A", "RST", car=Car(0, reaction_s=3.0)), Charger("B", "STR", car=Car(2, reaction_s=2.0)),
                  Charger("C", "TRS", car=Car(4, reaction_s=1.0))),
        base=((0, (12, 12, 12)), (50, (24, 12, 12)), (50.8, (38, 12, 12)), (70, (12, 12, 12)),
              (95, (12, 22, 12)), (98.5, (12, 36, 12)), (115, (12, 12, 12))), duration=130),
    Scenario(
        "step_in_ramp", "the building's load falls, the cars are raised, and L2 steps up while they ramp up; twice",
        limit=40, chargers=(Charger("A", "RST", car=Car(0, reaction_s=2.0)),
                            Charger("B", "SRT", car=Car(3, reaction_s=1.0))),
        base=((0, (10, 25, 10)), (30, (10, 10, 10)), (34, (10, 26, 10)), (65, (10, 10, 10)), (68.5, (10, 26, 10))),
        duration=110),
    Scenario(
        "meter_loss", "the grid meter stops answering for 35 s and comes back; L3 rises while it is away",
        limit=40, failsafe_load=20,
        chargers=(Charger("A", "RST", car=Car(0, reaction_s=1.0)), Charger("B", "STR", car=Car(2, reaction_s=3.0)),
                  Charger("C", "TRS", car=Car(4, reaction_s=2.0))),
        base=((0, (15, 12, 12)), (55, (15, 12, 17))), events=((40, "meter_silent", ""), (75, "meter_back", "")),
        duration=110),
    Scenario(
        "offline_charger", "charger B loses its network for 60 s with a valid TxProfile and its car charging on; "
        "car C arrives meanwhile", limit=40,
        chargers=(Charger("A", "RST", car=Car(0, reaction_s=2.0)), Charger("B", "STR", car=Car(2, reaction_s=1.0)),
                  Charger("C", "TRS", car=Car(45, reaction_s=3.0))),
        base=((0, (10, 10, 10)),), events=((30, "offline", "B"), (90, "online", "B")), duration=120),
    Scenario(
        "phases", "a 1-phase and a 2-phase car on rotated 3-phase chargers, with a 3-phase car, an uneven "
        "building and a step on L3", limit=32,
        chargers=(Charger("A", "RST", car=Car(0, phases=1, reaction_s=2.0)),
                  Charger("B", "STR", max_current=16, car=Car(5, max_current=16, phases=2, reaction_s=1.0)),
                  Charger("C", "TRS", max_current=16, car=Car(10, max_current=16, reaction_s=3.0))),
        base=((0, (14, 8, 6)), (60, (14, 8, 12))), duration=100),
    Scenario(
        "ignoring_profiles", "charger A accepts profiles and offers its 16 A anyway; B and C are steered", limit=40,
        chargers=(Charger("A", "RST", max_current=16, ignores_profiles=True, car=Car(20, max_current=16)),
                  Charger("B", "STR", car=Car(0, reaction_s=1.0)), Charger("C", "TRS", car=Car(2, reaction_s=3.0))),
        base=((0, (10, 10, 10)), (60, (14, 10, 10))), duration=100),
    Scenario(
        "oversubscribed", "five 32 A cars arrive on a 32 A site with room for three at 6 A; the building moves",
        limit=32,
        chargers=tuple(Charger(cid, rotation, car=Car(5 * i, reaction_s=1.0 + i % 3))
                       for i, (cid, rotation) in enumerate(zip("ABCDE", ("RST", "STR", "TRS", "RST", "STR")))),
        base=((0, (8, 8, 8)), (50, (14, 8, 8)), (90, (8, 8, 8))), duration=110),
)
BY_NAME = {s.name: s for s in SCENARIOS}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench dlm_scenarios", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"every scenario in {QUICK_FACTOR:g} of its time: checks that everything works, "
                             "not how well (the smoke test runs this)")
    parser.add_argument("--scenario", action="append", choices=sorted(BY_NAME),
                        help="run only this scenario (repeatable; default all)")
    parser.add_argument("--controllers", default="edge,naive", help="edge, naive or both (default edge,naive)")
    parser.add_argument("--traces", action="store_true", help="include every TxProfile limit in the JSON")
    parser.add_argument("--timeline", action="store_true",
                        help="include, once a second, each car's limit and draw and what the edge saw (analysis)")
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    args = parser.parse_args(argv)
    args.argv = list(argv)
    args.controllers = [c.strip() for c in args.controllers.split(",") if c.strip()]
    if not args.controllers or not set(args.controllers) <= {"edge", "naive"}:
        parser.error("--controllers takes edge, naive or both")
    return args


def edge_toml(scenario: Scenario, meter_port: int) -> str:
    chargers = "".join(f'\n[[chargers]]\nid = "{c.id}"\nmax_current = {c.max_current:g}\nphases = 3\n'
                       f'rotation = "{c.rotation}"\n' for c in scenario.chargers)
    failsafe = f"failsafe_load = {scenario.failsafe_load:g}" if scenario.failsafe_load is not None else ""
    # The edge's shipped load-management settings, but for the 1 A margin given to every controller.
    return f"""
[site]
id = "bench-{scenario.name}"
[ocpp]
host = "127.0.0.1"
port = 0
unknown_chargers = "reject"
[api]
host = "127.0.0.1"
port = 0
[authorization]
default_policy = "all-known"
push_local_lists = false
[[user_groups]]
id = "bench"
allow_concurrent = true
[[tokens]]
id_tag = "{ID_TAG}"
user_group = "bench"
[load_management]
margin = {MARGIN:g}
[[meters]]
id = "grid-meter"
model = "sdm630"
transport = "tcp"
host = "127.0.0.1"
port = {meter_port}
[[circuits]]
id = "grid"
limit = {scenario.limit:g}
meter = "grid-meter"
{failsafe}
{chargers}"""


class EdgeRun:
    """The real edge, in process, as bench/dlm_reaction.py starts it."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.edge: Edge | None = None
        self.task: asyncio.Task | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="bench-dlm-scenarios-")

    async def start(self, meter_port: int) -> str:
        config = parse_config(edge_toml(self.scenario, meter_port), "bench-dlm-scenarios.toml",
                              state_dir=self._dir.name)
        self.edge = Edge(config)
        self.task = await self.edge.start()
        return f"ws://127.0.0.1:{self.edge.ocpp.bound_port}/ocpp"

    async def stop(self) -> None:
        if self.edge is not None and self.task is not None:
            self.edge.stop()
            await asyncio.wait_for(self.task, 30)
        self._dir.cleanup()


class NaiveRun:
    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.controller: NaiveController | None = None

    async def start(self, meter_port: int) -> str:
        self.controller = NaiveController(self.scenario.limit, MARGIN,
                                          {c.id: (c.rotation, c.max_current) for c in self.scenario.chargers},
                                          meter_port)
        return await self.controller.start()

    async def stop(self) -> None:
        if self.controller is not None:
            await self.controller.stop()


def edge_probe(run: EdgeRun) -> dict:
    """What the edge saw and decided at this instant (--timeline)."""
    assert run.edge is not None
    lm = run.edge.load_manager
    allocation = lm.allocation
    out: dict = {"circuits": {c: {"unmanaged": [round(p.unmanaged, 2) for p in load.phases],
                                  "reserved": [round(p.reserved, 2) for p in load.phases],
                                  "metered": [None if p.metered is None else round(p.metered, 2) for p in load.phases],
                                  "failsafe": load.failsafe}
                              for c, load in allocation.circuits.items()}}
    out["decisions"] = {k[0]: [round(d.limit, 2), d.reason] for k, d in allocation.decisions.items()}
    out["held"] = {k[0]: (None if t.held is None else round(t.held.limit, 2)) for k, t in lm.tracks.items()}
    now = lm._clock.monotonic()
    estimated = lm.estimates(now)
    out["cars"] = {k[0]: {"least": [round(a, 2) for a in b.least], "most": [round(a, 2) for a in b.most],
                          "status": lm.tracks[k].status,
                          "stopped_ago": (None if lm.tracks[k].stopped_at is None
                                          else round(now - lm.tracks[k].stopped_at, 1)),
                          "samples": [[round(now - x.at, 1), round(x.interval, 1),
                                       None if x.currents is None else [round(a, 1) for a in x.currents]]
                                      for x in lm.tracks[k].samples]}
                   for k, b in estimated.items()}
    # Enough to replay the estimator offline (estimate.estimate_site) at this instant or just before.
    out["replay"] = {"now": now, "topology": repr(lm.topology),
                     "cars": {k[0]: asdict(h) for k, h in lm._cars(now).items()},
                     "readings": {c: [[r.at, list(r.currents)] for r in rs] for c, rs in lm._readings.items()}}
    return out


async def play(scenario: Scenario, controllers: list[str], timeline: bool = False) -> dict[str, dict]:
    """Both controllers on the same script, at the same time, in separate worlds."""
    runs = {"edge": EdgeRun, "naive": NaiveRun}
    worlds = {name: World(scenario, name) for name in controllers}
    started = {name: runs[name](scenario) for name in controllers}
    if timeline:
        for name, world in worlds.items():
            world.timeline = []
            if name == "edge":
                world.probe = lambda run=started[name]: edge_probe(run)
    stage = "starting"
    try:
        for name, world in worlds.items():
            stage = f"starting the {name} world"
            url = await started[name].start(await world.start_meter())
            stage = f"the {name} world's chargers connecting"
            await world.connect(url)
        await asyncio.sleep(SETTLE_S + max((c.car.reaction_s for c in scenario.chargers if c.car), default=0.0))
        t0 = time.monotonic() + 0.1
        stage = "playing"
        await asyncio.gather(*(world.play(t0) for world in worlds.values()))
        return {name: world.report() for name, world in worlds.items()}
    except TimeoutError as exc:
        raise RuntimeError(f"{scenario.name}: timed out {stage}") from exc
    finally:
        # Chargers first, then the controller, then the meter: the controller
        # never polls a meter that is gone or waits on a charger being torn down.
        for name, world in worlds.items():
            await world.close_chargers()
            try:
                await started[name].stop()
            finally:
                await world.close_meter()


def scenario_report(scenario: Scenario, results: dict[str, dict], traces: bool) -> dict:
    bound = lp_bound(scenario)
    out: dict = {"about": scenario.about, "duration_s": scenario.duration, "limit_a": scenario.limit,
                 "cars": sum(1 for c in scenario.chargers if c.car), "lp_bound": bound}
    for name, result in results.items():
        if not traces:
            result.pop("tx_profile_limits")
        if "timeline" in result:
            result["lp_per_second"] = lp_bound(scenario, per_second=True)["per_second"]
        result["lp_ratio"] = round(result["energy_kwh"] / bound["energy_kwh"], 3) if bound["energy_kwh"] else None
        out[name] = result
    if "edge" in results and "naive" in results and results["naive"]["energy_kwh"]:
        edge, naive = results["edge"], results["naive"]
        out["edge_to_naive_energy"] = round(edge["energy_kwh"] / naive["energy_kwh"], 3)
        # The same without what each drew over the fuse: an overloading controller does not win by it.
        within = naive["energy_kwh"] - naive["energy_over_fuse_kwh"]
        if within > 0:
            out["edge_to_naive_energy_within_fuse"] = round(
                (edge["energy_kwh"] - edge["energy_over_fuse_kwh"]) / within, 3)
        # Counted by what the cars must shed: a 3-phase car given 1 A by a phase left 1 A over draws it on all three
        # phases, which the per-phase A·s above count once.
        within = naive["energy_kwh"] - naive["energy_shed_kwh"]
        if within > 0:
            out["edge_to_naive_energy_cars_within_fuse"] = round(
                (edge["energy_kwh"] - edge["energy_shed_kwh"]) / within, 3)
    return out


def goals(scenarios: dict[str, dict]) -> dict:
    edge = {name: s["edge"] for name, s in scenarios.items() if "edge" in s}
    if not edge:
        return {}
    out = {
        "no_overload_beyond_window": all(r["overload"]["beyond_window_as"] == 0 for r in edge.values()),
        "at_least_90_percent_of_lp": all((r["lp_ratio"] or 0) >= GOAL_LP_RATIO for r in edge.values()),
    }
    compared = [s for s in scenarios.values() if "edge_to_naive_energy_within_fuse" in s]
    if compared:
        out["never_below_naive"] = all(s["edge_to_naive_energy_within_fuse"] >= 1.0 for s in compared)
        out["never_below_naive_cars_within_fuse"] = all(
            s.get("edge_to_naive_energy_cars_within_fuse", 0) >= 1.0 for s in compared)
    out["apply_to"] = "the edge, every scenario at full length (not --quick)"
    return out


async def run_all(args: argparse.Namespace) -> dict:
    # The edge logs every profile it sends; the scenarios do not need them on the terminal.
    logging.getLogger("edge").setLevel(logging.WARNING)
    # pymodbus dumps every frame once a meter stops answering: the meter-loss scenario does that on purpose.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    chosen = [BY_NAME[n] for n in args.scenario] if args.scenario else list(SCENARIOS)
    results: dict[str, dict] = {}
    for scenario in chosen:
        played = scenario.scaled(QUICK_FACTOR) if args.quick else scenario
        progress(f"dlm_scenarios: {played.name} ({played.duration:g} s)")
        outcome = scenario_report(played, await play(played, args.controllers, args.timeline), args.traces)
        for name in args.controllers:
            r = outcome[name]
            progress(f"  {name}: {r['energy_kwh']} kWh ({r['lp_ratio']} of the LP), "
                     f"{r['overload']['beyond_window_as']} A*s beyond the window, "
                     f"{r['tx_profiles_per_car_hour']} profiles per car-hour, "
                     f"{r['increases_undone_within_1_5_s']} increases undone")
        results[played.name] = outcome
    return results


def run(args: argparse.Namespace) -> dict:
    report: dict = {
        "benchmark": "dlm_scenarios",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "machine": machine(),
        "commit": commit(),
        "command": " ".join(["python -m bench dlm_scenarios", *args.argv]),
        "quick": args.quick,
        "reaction_window_s": WINDOW_S,
        "window": f"{CAR_REACTION_S:g} s for the car (IEC 61851-1) + {CONTROLLER_REACTION_S:g} s for the "
                  "controller (one 1 s meter period, half a second to decide and send)",
        "meter_values_interval_s": METER_INTERVAL_S,
        "margin_a": MARGIN,
    }
    report["scenarios"] = asyncio.run(run_all(args))
    report["goals"] = goals(report["scenarios"])
    return report


def text_summary(report: dict) -> str:
    lines = ["dlm_scenarios" + (" (quick: not for the record)" if report["quick"] else "")]
    for name, s in report["scenarios"].items():
        lines.append(f"  {name}: LP bound {s['lp_bound']['energy_kwh']} kWh")
        for controller in ("edge", "naive"):
            if controller in s:
                r = s[controller]
                lines.append(f"    {controller}: {r['energy_kwh']} kWh ({r['lp_ratio']}), "
                             f"{r['overload']['beyond_window_as']} A*s beyond {report['reaction_window_s']:g} s "
                             f"({r['overload']['total_as']} in all), {r['tx_profiles_per_car_hour']} profiles/car-h, "
                             f"{r['increases_undone_within_1_5_s']} undone")
    lines.append("  goals: " + ", ".join(f"{k}={v}" for k, v in report["goals"].items() if k != "apply_to"))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    return run_report("dlm_scenarios", run, text_summary, parse_args(argv))
