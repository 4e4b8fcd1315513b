"""Phase-rotation detection: which grid phases moved when one charger was stepped -> its wiring.

Pure: the runner steps a charger from 0 A to a current and passes the meter's
per-phase currents and powers before and during the step. A car draws on its
charger's phases in order (a 1-phase car on the charger's L1, a 2-phase car on
L1 and L2: IEC 62196 Type 2), so the number of grid phases that moved says how
many charger phases the car uses, and which ones moved says where those charger
phases are wired:

- 1 phase moved: the charger's L1 is on that grid phase (two rotations fit:
  the cyclic one, which keeps the rotating field's direction, is suggested);
- 2 moved: its L1 and L2 are on those two (two rotations fit, order unknown);
- 3 moved: a 3-phase car draws the same on all three, so the rotation cannot
  be seen (the wiring of a 3-phase car does not matter for load management;
  a 1-phase car's does: check again with one).

A phase whose current rose while its power fell carries an inverted current
transformer (CT) on the meter.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edge.dlm.phases import NAMES, ROTATIONS, phase_map

Phases = tuple[float, float, float]

# A phase moved when its current rose by at least this share of the step; it stayed
# when it moved by less than QUIET of it; anything between is noise we cannot judge.
MOVED = 0.5
QUIET = 0.25
# Rotations that keep the phase sequence (a motor on the charger turns the same way).
CYCLIC = ("RST", "STR", "TRS")


@dataclass(frozen=True)
class Step:
    """What the meter showed with the charger at 0 A and at `step` A."""

    step: float                 # A per phase the charger was allowed during the step
    before_current: Phases      # A per grid phase (magnitude) at 0 A
    during_current: Phases
    before_power: Phases        # W per grid phase, + import
    during_power: Phases


@dataclass(frozen=True)
class Finding:
    verdict: str                # ok | mismatch | undetermined | unclear | no-draw
    moved: tuple[int, ...]      # grid phase indices that moved
    rises: Phases               # A per grid phase
    candidates: tuple[str, ...]  # wirings that fit: rotations (3-phase charger) or "L1".."L3" (1-phase)
    suggested: str | None       # the wiring to configure when it is a mismatch
    inverted_ct: tuple[int, ...] = ()   # grid phases whose power fell while their current rose
    note: str = ""
    alternatives: tuple[str, ...] = field(default=())


def moved_phases(step: Step) -> tuple[tuple[int, ...], Phases, bool]:
    """-> (phases that moved, the rises, whether every phase is clearly moved or quiet)."""
    rises = tuple(round(d - b, 3) for d, b in zip(step.during_current, step.before_current))
    threshold = max(step.step, 1e-9)
    moved = tuple(i for i, r in enumerate(rises) if r >= MOVED * threshold)
    clear = all(r >= MOVED * threshold or abs(r) < QUIET * threshold for r in rises)
    return moved, (rises[0], rises[1], rises[2]), clear


def _fits(phases: int, wiring: str, moved: tuple[int, ...]) -> bool:
    mapping = phase_map(3, wiring) if phases == 3 else phase_map(1, phase=wiring)
    return set(mapping[:len(moved)]) == set(moved)


def decide(step: Step, *, charger_phases: int, configured: str) -> Finding:
    """The wiring the meter shows for a charger, against the configured one: its `rotation`
    for a 3-phase charger, its `phase` ("L1".."L3") for a 1-phase one."""
    moved, rises, clear = moved_phases(step)
    inverted = tuple(i for i in moved if step.during_power[i] - step.before_power[i] < 0)
    if not moved:
        return Finding("no-draw", moved, rises, (), None, inverted,
                       note=f"no grid phase rose by {MOVED * step.step:g} A or more: is a car connected and "
                            "charging, and does the charger follow its profiles?")
    if not clear:
        return Finding("unclear", moved, rises, (), None, inverted,
                       note="other loads changed during the step; try again when the building is quieter")
    if charger_phases == 1 and len(moved) > 1:
        return Finding("mismatch", moved, rises, (), None, inverted,
                       note=f"configured as a 1-phase charger, but {len(moved)} grid phases moved: "
                            "set phases = 3 and run again")
    if len(moved) == 3:
        return Finding("undetermined", moved, rises, ROTATIONS, None, inverted,
                       note="a 3-phase car draws the same on every phase, so the rotation cannot be seen; "
                            "run again with a 1-phase car to check it")
    options = ROTATIONS if charger_phases == 3 else NAMES
    candidates = tuple(w for w in options if _fits(charger_phases, w, moved))
    if configured in candidates:
        return Finding("ok", moved, rises, candidates, None, inverted)
    # Prefer the cyclic rotation (installers rotate cyclically to keep the field's direction);
    # a 1-phase charger has exactly one candidate.
    ranked = sorted(candidates, key=lambda w: (w not in CYCLIC, w))
    return Finding("mismatch", moved, rises, candidates, ranked[0], inverted,
                   alternatives=tuple(ranked[1:]),
                   note=f"the charger's L1 is on grid {NAMES[moved[0]]}" if len(moved) == 1 else
                        f"the charger's L1 and L2 are on grid {' and '.join(NAMES[i] for i in moved)}")


def config_lines(charger_id: str, charger_phases: int, finding: Finding) -> list[str]:
    """The lines to put in the charger's [[chargers]] table, for the report."""
    if finding.suggested is None:
        return []
    key = "rotation" if charger_phases == 3 else "phase"
    return ["[[chargers]]", f'id = "{charger_id}"', f'{key} = "{finding.suggested}"']
