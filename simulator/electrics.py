"""What flows through each connector: the limit offered, the current the car draws, the meter.

Functions over the simulator's state: charge_point.py keeps to what drivers
and the central system do, this module to the electrics underneath, the part
a closed-loop load-management test actually measures.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable, Iterable, Protocol

from ocpp.v16 import call

from simulator import profiles
from simulator.car import NO_CURRENT, Phases, step, target_currents
from simulator.connector import Connector, Transaction
from simulator.metering import meter_value
from simulator.outbox import Entry

if TYPE_CHECKING:
    from datetime import datetime

    from simulator.configuration import Configuration
    from simulator.outbox import Outbox


class Charger(Protocol):
    """What the electrics read of a simulated charger. The 1.6 charge point (charge_point.py) and the 2.0.1
    station (v201/station.py) both hand themselves to these functions: each is one by shape, and neither
    is imported here (both import this module)."""

    connectors: dict[int, Connector]
    max_current: float
    phases: int
    voltage: float
    ramp_seconds: float
    ignores_limits: bool
    clock: Callable[[], float]
    wall_clock: Callable[[], datetime]

    @property
    def charging_profiles(self) -> list[profiles.Installed]: ...


class Sampled(Charger, Protocol):
    """A charger whose meter values are sampled here: the 1.6 charge point."""

    config: Configuration
    outbox: Outbox

    def emit(self, name: str, **data: Any) -> None: ...

    async def pause(self, seconds: float) -> bool: ...


def tx_ref(c: Connector) -> profiles.TxRef | None:
    tx = c.transaction
    return profiles.TxRef(tx.started, tx.transaction_id) if tx else None


def phases_used(sim: Charger, c: Connector) -> int:
    return min(sim.phases, c.car.phases) if c.car else sim.phases


def sharing(sim: Charger) -> int:
    """How many connectors share the ChargePointMaxProfile's limit."""
    return max(1, sum(1 for c in sim.connectors.values() if c.transaction))


def limit(sim: Charger, c: Connector) -> profiles.Limit | None:
    if sim.ignores_limits:  # a firmware fault: profiles accepted, then not applied
        return None
    return profiles.active_limit(sim.charging_profiles, c.connector_id, sim.wall_clock(), tx_ref(c),
                                 voltage=sim.voltage, phases=phases_used(sim, c), sharing=sharing(sim))


def offered(sim: Charger, c: Connector) -> float:
    """The current per phase the charger offers now: its maximum or less, as the profiles say."""
    found = limit(sim, c)
    return min(sim.max_current, found.amps) if found else sim.max_current


def contactor_closed(c: Connector) -> bool:
    return c.transaction is not None and c.car is not None and c.fault is None and c.connector_id != 0


def target(sim: Charger, c: Connector) -> Phases:
    if not contactor_closed(c):
        return NO_CURRENT
    found = limit(sim, c)
    amps = min(sim.max_current, found.amps) if found else sim.max_current
    phases = min(sim.phases, found.phases or 3) if found else sim.phases
    return target_currents(amps, c.car, c.meter.soc, phases)


def settle(sim: Charger) -> None:
    """Bring every meter up to now with the targets that held since the last call, then retarget.

    Called before and after every change that moves a target, so the
    integration never applies a new target to time that has already passed.
    """
    now = sim.clock()
    slew = sim.max_current / sim.ramp_seconds if sim.ramp_seconds > 0 else float("inf")
    for c in sim.connectors.values():
        if c.updated is not None and c.connector_id != 0:
            capacity = c.car.capacity_wh if c.car else 1.0
            c.meter = step(c.meter, c.target, now - c.updated, slew=slew, voltage=sim.voltage, capacity_wh=capacity)
        c.updated = now
        if not contactor_closed(c):
            # The relay opens at once; only the car's own changes of pace ramp.
            c.meter = replace(c.meter, currents=NO_CURRENT)
        c.target = target(sim, c)


def sample(sim: Sampled, c: Connector, context: str, measurands: Iterable[str] | None = None) -> dict:
    """A MeterValue of `c` now; by default with the MeterValuesSampledData measurands."""
    settle(sim)
    chosen = sim.config.items("MeterValuesSampledData") if measurands is None else measurands
    return meter_value(sim.wall_clock(), c.snapshot(offered(sim, c), sim.voltage), voltage=sim.voltage,
                       phases=sim.phases, measurands=chosen, context=context)


def queue_meter_values(sim: Sampled) -> None:
    """One periodic MeterValues per running transaction, into the outbox (kept while offline)."""
    for c in sim.connectors.values():
        tx = c.transaction
        if tx is None:
            continue
        value = tx.last = sample(sim, c, "Sample.Periodic")

        def build(tx: Transaction = tx, value: dict = value) -> Any:
            if tx.transaction_id is None:
                return None
            return call.MeterValues(connector_id=tx.connector_id, meter_value=[value], transaction_id=tx.transaction_id)
        sim.outbox.put(Entry(tx, "MeterValues", build))
        state = c.snapshot(offered(sim, c), sim.voltage)
        sim.emit("meter_values", connector_id=c.connector_id, transaction_id=tx.id, current=state.current,
                 power_w=state.power_w, energy_wh=state.energy_wh, soc=state.soc, offered=state.limit)


async def sample_forever(sim: Sampled) -> None:
    while True:
        if await sim.pause(sim.config.number("MeterValueSampleInterval")):  # 0 switches sampling off
            queue_meter_values(sim)
