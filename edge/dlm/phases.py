"""Phases and phase rotation: which site phase each charger phase sits on.

A site has three phases L1, L2, L3 (R, S, T in the rotation names installers
use). A 3-phase charger's terminals L1/L2/L3 may be wired to the site's phases
in any of six orders to spread single-phase cars over the site; a 1-phase
charger sits on one site phase. Everything in load management is kept per
*site* phase; this module is the one place that maps between the two.
"""

from __future__ import annotations

Phases = tuple[float, float, float]
ZERO: Phases = (0.0, 0.0, 0.0)
NAMES = ("L1", "L2", "L3")

# Rotation "STR": the charger's L1 is on the site's S (L2), its L2 on T (L3), its L3 on R (L1).
ROTATIONS = ("RST", "RTS", "SRT", "STR", "TRS", "TSR")


def phase_map(phases: int, rotation: str = "RST", phase: str = "L1") -> tuple[int, ...]:
    """Site phase index (0..2) of each charger phase, the charger's L1 first."""
    if phases == 1:
        return (NAMES.index(phase),)
    return tuple("RST".index(letter) for letter in rotation)


def to_site(charger_currents: tuple[float, ...], mapping: tuple[int, ...]) -> Phases:
    """Per-charger-phase currents -> per-site-phase currents."""
    site = [0.0, 0.0, 0.0]
    for current, site_phase in zip(charger_currents, mapping):
        site[site_phase] += current
    return (site[0], site[1], site[2])


def phases_in_use(charger_currents: tuple[float, ...], threshold: float = 1.0) -> int | None:
    """How many of the charger's phases a car draws on, learned from its measured
    currents: a 1-phase car on a 3-phase charger draws on the charger's L1 only.
    None while the car draws too little to tell."""
    drawing = [i for i, current in enumerate(charger_currents) if current >= threshold]
    if not drawing:
        return None
    return max(drawing) + 1
