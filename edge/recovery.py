"""Auto-recovery: a charger Faulted or silent for a while is nudged back, one step at a time.

The steps (seed 004's "auto fault-recovery"): TriggerMessage(StatusNotification)
first (a charger whose fault has cleared but who never said so), then a soft
reset, then a hard reset; each only when the one before did not help within
`step_minutes`, and never more than `daily_cap` steps a day per charger, so a
charger broken for good is not rebooted all day. Every step goes through
the station control (the actions log, actor "edge:recovery") and onto the bus as
`recovery.step` (an alert to the cloud); the cap reached and the steps run out
are alerted too, once per trouble.

"Silent": connected, but no frame for `after_minutes` (hung firmware behind an
open socket). A charger that is not connected cannot be reached: nothing is sent.
`decide` is pure (time passed in); `AutoRecovery.run` is the shell.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from typing import Annotated, Awaitable, Callable

from pydantic import Field

from edge.clock import Clock, parse_iso
from edge.config_base import Strict
from edge.events import Event, EventBus
from edge.stations.control import CommandResult, StationControl
from edge.stations.model import ResetKind, Trigger

log = logging.getLogger(__name__)

ACTOR = "edge:recovery"

# The steps in order: (what is asked of the station, what it is for).
STEPS: tuple[tuple[Trigger | ResetKind, str], ...] = (
    (Trigger.STATUS, "ask for its status"),
    (ResetKind.SOFT, "soft reset"),
    (ResetKind.HARD, "hard reset"),
)


class RecoverySection(Strict):
    # Off by default: a reset ends a running session; the installer turns it on ([[chargers]] recovery
    # = false keeps it off for one charger).
    enabled: bool = False
    # Faulted or silent this long before the first step.
    after_minutes: Annotated[float, Field(ge=1, le=1440)] = 10.0
    # Between two steps, for the charger to come back.
    step_minutes: Annotated[float, Field(ge=1, le=1440)] = 10.0
    # Steps per charger per (UTC) day, over all its troubles.
    daily_cap: Annotated[int, Field(ge=1, le=100)] = 3
    # How often the edge looks (s).
    check_every: Annotated[float, Field(ge=1, le=600)] = 30.0


@dataclass(frozen=True)
class Health:
    """What the edge knows of one charger now."""

    connected: bool
    faulted: bool               # a connector (or the charge point) reports Faulted
    silent_s: float | None      # seconds since its last frame; None: never seen


@dataclass(frozen=True)
class State:
    """Per charger, kept in memory (a restart starts over: the cap is per edge run and day)."""

    trouble_since: float | None = None   # monotonic
    steps_done: int = 0                  # of this trouble
    last_step_at: float | None = None
    day: str = ""
    today: int = 0                       # steps on `day`
    told: str = ""                       # the last "gave up" alert of this trouble (cap | exhausted)


@dataclass(frozen=True)
class Decision:
    step: int | None            # index into STEPS to send now, or None
    alert: str | None           # "cap" | "exhausted" | None: said once per trouble
    why: str


def trouble(health: Health, after_s: float) -> str | None:
    if not health.connected:
        return None             # nothing can reach it; presence alerts cover an offline charger
    if health.faulted:
        return "Faulted"
    if health.silent_s is not None and health.silent_s >= after_s:
        return f"silent for {health.silent_s / 60:.0f} min"
    return None


def decide(health: Health, state: State, *, now: float, day: str, policy: RecoverySection
           ) -> tuple[Decision, State]:
    """The next step for one charger, and its new state."""
    after_s, step_s = policy.after_minutes * 60, policy.step_minutes * 60
    if state.day != day:
        state = replace(state, day=day, today=0)
    what = trouble(health, after_s)
    if what is None:
        if state.trouble_since is not None or state.steps_done:
            state = replace(state, trouble_since=None, steps_done=0, last_step_at=None, told="")
        return Decision(None, None, "well"), state
    if state.trouble_since is None:
        # A silent charger has been in trouble since its last frame; a fault since now.
        since = now - health.silent_s if not health.faulted and health.silent_s is not None else now
        state = replace(state, trouble_since=since)
    if now - state.trouble_since < after_s:
        return Decision(None, None, f"{what}; waiting"), state
    if state.last_step_at is not None and now - state.last_step_at < step_s:
        return Decision(None, None, f"{what}; waiting after step {state.steps_done}"), state
    if state.steps_done >= len(STEPS):
        alert = None if state.told == "exhausted" else "exhausted"
        return Decision(None, alert, f"{what}; every step tried"), replace(state, told="exhausted")
    if state.today >= policy.daily_cap:
        alert = None if state.told == "cap" else "cap"
        return Decision(None, alert, f"{what}; daily cap of {policy.daily_cap} reached"), replace(state, told="cap")
    step = state.steps_done
    return Decision(step, None, what), replace(state, steps_done=step + 1, last_step_at=now, today=state.today + 1)


class AutoRecovery:
    """The shell: looks every `check_every` seconds and sends what `decide` says."""

    def __init__(self, policy: RecoverySection, *, chargers: Callable[[], list[str]],
                 enabled_for: Callable[[str], bool], health: Callable[[str], Awaitable[Health]],
                 control: StationControl, bus: EventBus, clock: Clock):
        self.policy = policy
        self._chargers, self._enabled_for, self._health = chargers, enabled_for, health
        self._control, self._bus, self._clock = control, bus, clock
        self.states: dict[str, State] = {}

    async def run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self.policy.check_every)

    async def check(self) -> None:
        now, day = self._clock.monotonic(), self._clock.now().date().isoformat()
        for charger_id in self._chargers():
            if not self._enabled_for(charger_id):
                continue
            health = await self._health(charger_id)
            decision, self.states[charger_id] = decide(health, self.states.get(charger_id, State()),
                                                       now=now, day=day, policy=self.policy)
            if decision.alert:
                self._publish(charger_id, {"step": None, "gave_up": decision.alert, "why": decision.why})
                log.warning("recovery charger=%s gave up (%s): %s", charger_id, decision.alert, decision.why)
            if decision.step is not None:
                what, label = STEPS[decision.step]
                result = await self._step(charger_id, what, f"auto-recovery step {decision.step + 1} ({label}): "
                                                            f"{decision.why}")
                # The alert says what went to the station as the actions log has it.
                self._publish(charger_id, {"step": decision.step + 1, "action": result.action,
                                           "params": result.request,
                                           "why": decision.why, "outcome": result.outcome,
                                           "action_id": result.action_id})

    async def _step(self, charger_id: str, what: Trigger | ResetKind, reason: str) -> CommandResult:
        if isinstance(what, Trigger):
            return await self._control.trigger(charger_id, what, actor=ACTOR, reason=reason)
        return await self._control.reset(charger_id, what, actor=ACTOR, reason=reason)

    def _publish(self, charger_id: str, data: dict) -> None:
        self._bus.publish(Event("recovery.step", charger_id, self._clock.now_iso(), data))


def health_of(charger_id: str, *, connected: bool, faulted: bool, last_seen: str | None, clock: Clock) -> Health:
    seen = parse_iso(last_seen) if last_seen else None
    return Health(connected, faulted, (clock.now() - seen).total_seconds() if seen else None)
