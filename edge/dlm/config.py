"""Load management in the site config: [load_management], [[circuits]], and the
load-management keys of [[chargers]] (turned into a Topology here)."""

from __future__ import annotations

from typing import Annotated, Literal, Protocol, Sequence

from pydantic import Field

from edge.config_base import Strict, repeated, same_ids
from edge.dlm.model import Circuit, Evse, Topology
from edge.dlm.phases import phase_map


Amps = Annotated[float, Field(ge=0, le=4000)]
Rotation = Literal["RST", "RTS", "SRT", "STR", "TRS", "TSR"]
SupplyPhase = Literal["L1", "L2", "L3"]


class LoadManagementSection(Strict):
    strategy: Literal["fair", "fcfs", "fixed", "scheduled"] = "fair"
    # Kept free on every phase of every circuit, for what the meter has not seen yet.
    margin: Annotated[float, Field(ge=0, le=100)] = 1.0
    # A paused car swaps with one that has charged this long (s), so no car waits forever.
    rotate_after: Annotated[float, Field(ge=60, le=86_400)] = 900.0
    # Meter readings missing this many poll periods -> failsafe.
    failsafe_after: Annotated[int, Field(ge=1, le=60)] = 3
    # An increase smaller than this is not sent (A); decreases always are.
    hysteresis: Annotated[float, Field(ge=0.1, le=10)] = 1.0
    # Least time between two increases on one connector: the pilot signal changes about once per 5 s.
    change_interval: Annotated[float, Field(ge=1, le=300)] = 5.0
    # Time a car has to follow a lower limit (IEC 61851-1: 5 s); increases wait until decreases took hold.
    follow_time: Annotated[float, Field(ge=0, le=60)] = 5.0
    # Dead man's switch: a running session's limit expires after this long unless renewed (s).
    tx_profile_duration: Annotated[int, Field(ge=30, le=86400)] = 120
    stack_level: Annotated[int, Field(ge=0, le=100)] = 1
    # A car drawing this much over its limit after the follow time is reported and its share reserved.
    over_limit_tolerance: Annotated[float, Field(gt=0, le=32)] = 1.0
    # The per-phase current against the limits is kept as one point per this many seconds ...
    series_interval: Annotated[float, Field(ge=1, le=3600)] = 60.0
    # ... for this many days.
    series_keep_days: Annotated[int, Field(ge=1, le=3650)] = 30
    # Evaluate at least this often (s) even without a meter reading or an event.
    tick: Annotated[float, Field(ge=0.1, le=60)] = 1.0
    # MeterValueSampleInterval asked of every charger when it is ready (s), with per-phase Current.Import:
    # the sooner a car's sample shows what it does, the less is held back for it. 0: the charger's own.
    meter_values_interval: Annotated[float, Field(ge=0, le=3600)] = 3.0
    # A car that says it takes nothing (SuspendedEV: full, or waiting on its own timer) and draws nothing
    # keeps its minimum this long (s); then it is paused, so its minimum goes to the other cars, and offered
    # its minimum again for as long every `rotate_after`, so a car that wants to charge again can. None:
    # it keeps its minimum as long as it says so.
    full_pause_after: Annotated[float, Field(ge=10, le=3600)] | None = 60.0


class CircuitConfig(Strict):
    id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._\-]+$")]
    name: str = ""
    # Per-phase limit in A: the fuse or breaker rating (the grid connection's main fuse at the top).
    limit: Annotated[float, Field(gt=0, le=4000)]
    # The circuit this one hangs from; none for the grid connection.
    parent: str | None = None
    # A [[meters]] id measuring everything on this circuit.
    meter: str | None = None
    # A per phase assumed on this circuit while its meter is lost; unset: the whole limit (fail closed).
    failsafe_load: Amps | None = None


class EvseSettings(Strict):
    """Per-connector load-management settings where a connector differs from its charger."""

    connector: Annotated[int, Field(ge=1, le=16)]
    max_current: Annotated[float, Field(gt=0, le=1000)] | None = None
    min_current: Annotated[float, Field(ge=0, le=100)] | None = None
    phases: Literal[1, 3] | None = None
    phase: SupplyPhase | None = None
    rotation: Rotation | None = None


class ChargerWiring(Protocol):
    """What load management reads of a [[chargers]] entry (edge/config.py's ChargerConfig, which is
    built from this module's sections: a Protocol keeps the import one way)."""
    id: str
    connectors: int
    max_current: float
    min_current: float
    phases: Literal[1, 3]
    phase: SupplyPhase
    rotation: Rotation
    circuit: str | None
    smart_charging: bool
    evses: list[EvseSettings]


class SiteWiring(Protocol):
    """What load management reads of the site config (edge/config.py's SiteConfig)."""
    circuits: Sequence[CircuitConfig]
    chargers: Sequence[ChargerWiring]
    load_management: LoadManagementSection


def check_circuits(circuits: list[CircuitConfig], chargers: Sequence[ChargerWiring], meter_ids: set[str] | None
                   ) -> list[str]:
    """Cross-references and the tree shape; one problem per line, naming the item."""
    problems: list[str] = []
    for first, again in same_ids(c.id for c in circuits):
        problems.append(f"circuits: id {repeated(first, again)} appears more than once")
    by_id = {c.id: c for c in circuits}
    roots = [c.id for c in circuits if c.parent is None]
    if circuits and len(roots) != 1:
        problems.append(f"circuits: exactly one circuit (the grid connection) has no parent; found {roots or 'none'}")
    for index, c in enumerate(circuits):
        where = f'circuits[{index}] (id "{c.id}")'
        if c.parent is not None and c.parent not in by_id:
            problems.append(f"{where}.parent: no circuit {c.parent!r}")
        if c.meter is not None and meter_ids is not None and c.meter not in meter_ids:
            problems.append(f"{where}.meter: no [[meters]] entry with id {c.meter!r}")
        if c.failsafe_load is not None and c.failsafe_load > c.limit:
            problems.append(f"{where}.failsafe_load: {c.failsafe_load:g} A is above the limit {c.limit:g} A")
        seen, node = {c.id}, c
        while node.parent in by_id:
            node = by_id[node.parent]
            if node.id in seen:
                problems.append(f"{where}.parent: circuits form a loop through {node.id!r}")
                break
            seen.add(node.id)
    meters = [c.meter for c in circuits if c.meter]
    for dup in sorted({m for m in meters if meters.count(m) > 1}):
        problems.append(f"circuits: meter {dup!r} is given to more than one circuit")
    for index, charger in enumerate(chargers):
        where = f'chargers[{index}] (id "{charger.id}")'
        if charger.circuit is not None and charger.circuit not in by_id:
            problems.append(f"{where}.circuit: no circuit {charger.circuit!r}"
                            + ("" if circuits else " (there are no [[circuits]])"))
        for j, evse in enumerate(charger.evses):
            if evse.connector > charger.connectors:
                problems.append(f"{where}.evses[{j}].connector: the charger has {charger.connectors} connector(s)")
        for evse in evses_of(charger, "-"):
            if evse.min_current > evse.max_current:
                problems.append(f"{where}: connector {evse.connector_id} min_current {evse.min_current:g} A is above"
                                f" its max_current {evse.max_current:g} A")
    return problems


def evses_of(charger: ChargerWiring, circuit: str) -> list[Evse]:
    overrides = {e.connector: e for e in charger.evses}
    out = []
    for connector in range(1, charger.connectors + 1):
        o = overrides.get(connector)

        def pick(name: str):
            value = getattr(o, name) if o is not None else None
            return getattr(charger, name) if value is None else value
        out.append(Evse(charger.id, connector, circuit, phase_map(pick("phases"), pick("rotation"), pick("phase")),
                        min_current=pick("min_current"), max_current=pick("max_current"),
                        smart_charging=charger.smart_charging))
    return out


def build_topology(config: SiteWiring) -> Topology | None:
    """The site as the allocator sees it; None when no circuits are configured
    (load management off: no profiles are sent)."""
    if not config.circuits:
        return None
    root = next(c.id for c in config.circuits if c.parent is None)
    circuits = tuple(Circuit(c.id, c.limit, c.parent, c.meter, c.failsafe_load) for c in config.circuits)
    evses = tuple(e for charger in config.chargers for e in evses_of(charger, charger.circuit or root))
    return Topology(circuits, evses, config.load_management.margin)
