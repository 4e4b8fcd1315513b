"""Load management as plain data: the site's circuits and EVSEs (static), the
state of each connector and meter (changes every second), and what the
allocator decides. No behaviour here beyond lookups."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from edge.dlm.phases import Phases

EvseKey = tuple[str, int]          # (charger id, connector id)
Resource = tuple[str, int]         # (circuit id, site phase index)

STRATEGIES = ("fair", "fcfs", "fixed", "scheduled")


@dataclass(frozen=True)
class Circuit:
    id: str
    limit: float                   # A per phase: the fuse or breaker
    parent: str | None = None
    meter: str | None = None       # a meter that measures everything on this circuit
    failsafe_load: float | None = None  # A per phase assumed when the meter is lost; None: the whole limit


@dataclass(frozen=True)
class Evse:
    charger_id: str
    connector_id: int
    circuit: str
    phase_map: tuple[int, ...]     # site phase of each charger phase, its L1 first
    min_current: float = 6.0
    max_current: float = 32.0
    smart_charging: bool = True    # takes OCPP charging profiles

    @property
    def key(self) -> EvseKey:
        return (self.charger_id, self.connector_id)


@dataclass(frozen=True)
class Topology:
    circuits: tuple[Circuit, ...]
    evses: tuple[Evse, ...]
    margin: float = 0.0            # A per phase kept free on every circuit

    @cached_property
    def by_id(self) -> dict[str, Circuit]:
        return {c.id: c for c in self.circuits}

    @cached_property
    def paths(self) -> dict[str, tuple[str, ...]]:
        """Circuit id -> itself and every circuit above it, up to the grid connection."""
        out: dict[str, tuple[str, ...]] = {}
        for circuit in self.circuits:
            path, node = [], circuit
            while node is not None:
                path.append(node.id)
                node = self.by_id.get(node.parent) if node.parent else None
            out[circuit.id] = tuple(path)
        return out

    @cached_property
    def evse_by_key(self) -> dict[EvseKey, Evse]:
        return {e.key: e for e in self.evses}

    def evses_under(self, circuit_id: str) -> list[Evse]:
        return [e for e in self.evses if circuit_id in self.paths[e.circuit]]


@dataclass(frozen=True)
class ConnectorState:
    """What the load manager knows about one connector right now."""

    key: EvseKey
    session: bool = False          # a transaction runs: the car may want current
    plugged: bool = False          # a car waits to start (Preparing): it may draw its safe share any moment
    measured: tuple[float, ...] = ()   # A per charger phase, its L1 first (MeterValues)
    phases_in_use: int | None = None   # learned from `measured`; None: all the charger's phases
    demand: float | None = None    # A the car takes when offered more (fair strategy); None: unknown
    priority: bool = False         # its user group is prioritised
    arrived: float = 0.0           # monotonic seconds when the session started
    running_since: float | None = None  # since when it has had current (None: paused or new)
    paused_since: float | None = None   # since when it has been paused
    controllable: bool = True      # online and following its profiles
    reserve: float = 0.0           # A per phase held for it when it is not controllable
    safe_share: float = 0.0        # A it would draw on its own (TxDefaultProfile) if it started now
    why_uncontrollable: str = ""   # when not controllable: why, in words (offline, no default profile yet...)
    # A per phase the station itself holds this EVSE to, set by a system beside the edge (an energy
    # manager, the grid operator: OCPP 2.0.1 NotifyChargingLimit); None: no such limit. The station
    # applies the lower of it and our profile, so what is above it is given to other cars.
    ceiling: float | None = None
    # The car said it takes nothing (SuspendedEV) and has drawn nothing since, for a while: it is
    # paused, so its minimum goes to the others (the load manager offers it again from time to time).
    resting: bool = False


@dataclass(frozen=True)
class Inputs:
    topology: Topology
    meters: dict[str, Phases | None]    # circuit id -> metered current per site phase; None: lost
    connectors: tuple[ConnectorState, ...]
    now: float
    strategy: str = "fair"
    rotate_after: float = 900.0    # s a paused car waits before it swaps with a long-running one
    # `scheduled`: the planner's current per EVSE (edge.dlm.planner), in serving order; the
    # allocator fills cars in this order up to them, then shares what is left.
    targets: dict[EvseKey, float] | None = None


@dataclass(frozen=True)
class Decision:
    key: EvseKey
    limit: float                   # A per phase; 0: paused
    phases: int                    # phases the limit is for (numberPhases)
    reason: str                    # why it is not higher, in words
    binding: Resource | None = None  # the circuit phase that binds it, if one does


@dataclass(frozen=True)
class PhaseLoad:
    limit: float
    unmanaged: float               # metered minus the managed chargers, or the failsafe assumption
    reserved: float                # held for chargers that cannot be controlled or are about to start
    allocated: float
    metered: float | None


@dataclass(frozen=True)
class CircuitLoad:
    circuit: str
    failsafe: bool
    phases: tuple[PhaseLoad, PhaseLoad, PhaseLoad]


@dataclass(frozen=True)
class Allocation:
    decisions: dict[EvseKey, Decision] = field(default_factory=dict)
    circuits: dict[str, CircuitLoad] = field(default_factory=dict)
