"""Meter recovery: from a silent meter answering again to the load manager's failsafe ending.

Each trial is a simulated SDM630 (simulator.meter, a real pymodbus server on
loopback) polled by the edge's own MeterPoller with the default settings
(period 1 s, timeout 0.5 s, one retry). The meter answers, goes silent for
`--silence` seconds (the meter_loss scenario of dlm_scenarios: 35 s), and
answers again at a random moment of the poller's schedule. The figure is the
time from the meter answering again to the poller's first good reading: the
load manager is woken by that reading and leaves failsafe in the same
evaluation (edge/dlm/manager.py meter_reading), so this is how long failsafe
outlasts the meter's silence. `polls` counts the polls started between the
meter's return and that reading (1: the first poll after the return read it).

Two layouts: `tcp` (one meter on its own TCP endpoint: nothing to share, so no
back-off) and `gateway` (two meters behind one TCP gateway, one of them the
silent one: the shared link backs off a dead meter so it does not hold the bus).
The trials of a layout run in parallel on one event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import platform
import random
import statistics
import time
from dataclasses import dataclass, field

from edge.clock import Clock
from edge.meters import MeterConfig, MeterPoller, ModbusLinks
from simulator.meter import SimulatedMeter


@dataclass
class Trial:
    returned_at: float | None = None
    polls_at_return: int = 0
    recovered_after: float | None = None
    polls: int | None = None
    readings: list[float] = field(default_factory=list)


def config(port: int, unit: int = 1) -> MeterConfig:
    return MeterConfig.model_validate({"id": f"meter-{port}-{unit}", "model": "sdm630", "transport": "tcp",
                                       "host": "127.0.0.1", "port": port, "unit": unit})


async def trial(layout: str, silence: float, seed: int) -> Trial:
    rng = random.Random(seed)
    meter = SimulatedMeter(lambda: (10.0, 10.0, 10.0))
    port = await meter.start_tcp()
    links, result = ModbusLinks(), Trial()

    def reading(_reading) -> None:
        now = time.monotonic()
        result.readings.append(now)
        if result.returned_at is not None and result.recovered_after is None:
            result.recovered_after = now - result.returned_at
            result.polls = poller.polls - result.polls_at_return

    poller = MeterPoller(config(port), Clock(), on_reading=reading, links=links)
    others = [MeterPoller(config(port, 2), Clock(), links=links)] if layout == "gateway" else []
    tasks = [asyncio.create_task(p.run()) for p in (poller, *others)]
    try:
        while not result.readings:
            await asyncio.sleep(0.05)
        meter.silent = True
        # A random phase of the poller's schedule when the meter comes back.
        await asyncio.sleep(silence + rng.uniform(0.0, 8.0))
        result.returned_at, result.polls_at_return = time.monotonic(), poller.polls
        meter.silent = False
        while result.recovered_after is None:
            await asyncio.sleep(0.05)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await meter.stop()
    return result


def summary(results: list[Trial]) -> dict:
    times = sorted(r.recovered_after for r in results if r.recovered_after is not None)
    return {"trials": len(times), "median_s": round(statistics.median(times), 2), "max_s": round(times[-1], 2),
            "mean_s": round(statistics.fmean(times), 2), "polls": sorted({r.polls for r in results})}


async def run(silence: float, trials: int, layouts: list[str]) -> dict:
    out = {"silence_s": silence, "period_s": 1.0, "timeout_s": 0.5, "retries": 1,
           "machine": f"{platform.machine()} {platform.processor() or platform.system()}"}
    for layout in layouts:
        results = await asyncio.gather(*(trial(layout, silence, seed) for seed in range(trials)))
        out[layout] = summary(list(results))
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench meter_recovery", description=__doc__.split("\n")[0])
    parser.add_argument("--silence", type=float, default=35.0, help="seconds the meter is silent (default 35)")
    parser.add_argument("--trials", type=int, default=8, help="trials per layout, run in parallel (default 8)")
    parser.add_argument("--layouts", default="tcp,gateway", help="tcp, gateway or both (default)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    # pymodbus dumps every frame once a meter stops answering, the poller reports it: not for the terminal.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    logging.getLogger("edge").setLevel(logging.ERROR)
    result = asyncio.run(run(args.silence, args.trials, args.layouts.split(",")))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for layout in args.layouts.split(","):
            s = result[layout]
            print(f"{layout:8} failsafe outlasts the meter's silence by median {s['median_s']} s, "
                  f"max {s['max_s']} s over {s['trials']} trials; polls from return to recovery: {s['polls']}")
    return 0
