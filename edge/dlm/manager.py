"""The load manager: the asyncio shell around `allocate` and `plan`.

It follows what happens at the site (events: sessions, status, meter values,
chargers coming and going) and the grid meters, evaluates the allocation on
every meter reading and event (and at least every `tick`), and sends the
resulting charging profiles. The decisions themselves are pure functions
(`allocate`, `plan`); this module only keeps track and talks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Callable, Protocol

from edge.clock import Clock
from edge.dlm.actuation import Order, Timing, default_limit, fit, held_after, plan, soften, tx_limit
from edge.dlm.allocate import allocate
from edge.dlm.caps import Cap, capped
from edge.dlm.config import LoadManagementSection
from edge.dlm.estimate import Bounds, Command, MeterReading, Reaction, allowed_over, estimate_site
from edge.dlm.estimate import bounds as bounds_at, sample_from_meter_values
from edge.dlm.model import Allocation, ConnectorState, EvseKey, Inputs, Topology
from edge.dlm.needs import Declared, register_wh, still_wanted
from edge.dlm.overload import OverloadWatch, reaction_window
from edge.dlm.phases import NAMES
from edge.dlm.planner import PLAN_PERIOD_S, Need, known_maxima, plan_cars, targets_now
from edge.dlm.sampling import MeterValuesSetup
from edge.dlm.series import SeriesRecorder
from edge.dlm.tracking import (DELIVERY_LAG, DRAWING, FIRST_WINDOW, SAMPLES_KEPT, Track, answered,
                               currents_from_samples, history, learn_phases, learn_take, paused_by_us, prune, resting,
                               takes, window)
from edge.events import Event, EventBus
from edge.journal import Journal
from edge.retries import RETRY_DELAYS, Later, next_delay
from edge.stations.control import StationControl
from edge.stations.model import Setting

log = logging.getLogger(__name__)

ACTOR = "load-management"
# A charger that refused a profile is tried again after this long (s).
RETRY_REFUSED_AFTER = 300.0
NOT_DRAWING = {"Available", "SuspendedEV", "SuspendedEVSE", "Finishing", "Faulted", "Unavailable"}
# Grid meter readings kept for attributing a rise to a car that was just raised (s).
READINGS_KEPT = SAMPLES_KEPT      # the cars' samples go back as far (tracking.prune)


class MeterSource(Protocol):
    """What the load manager needs of a meter poller (edge.meters.MeterPoller)."""

    latest: Any   # a reading with .current (A per site phase) and .at (monotonic s), or None
    config: Any   # with .period (s between polls)


@dataclass
class ChargerTrack:
    online: bool = False
    refused_at: float | None = None    # last refusal of a profile
    unit: str = "A"
    max_stack_level: int | None = None
    # The TxDefaultProfile limit the charger accepted on this connection. Until it
    # did, a car there draws whatever it likes: the charger is not controllable.
    default_sent: float | None = None
    prepare_attempts: int = 0          # retries of the default profile on this connection
    booted_at: float | None = None     # its last BootNotification: it forgot our TxProfiles then
    # The connector and transaction of the TxProfile it last refused: a refusal for a transaction
    # that was ending as the profile arrived (2.0.1 K01.FR.09) is forgiven when its end comes in.
    refused_for: tuple[EvseKey, int] | None = None


class LoadManager:
    def __init__(self, topology: Topology, settings: LoadManagementSection, *, bus: EventBus, clock: Clock,
                 control: StationControl | None = None, journal: Journal, meters: dict[str, MeterSource],
                 prioritised: Callable[[str], bool], is_known: Callable[[str], bool],
                 needs_of: Callable[[str], Declared | None] | None = None,
                 drew_of: Callable[[str], float] | None = None):
        self.topology = topology
        self.settings = settings
        self.meters = meters            # circuit id -> its meter
        self._bus = bus
        self._clock = clock
        # The site's StationControl (edge/ocpp/control.py picks each station's protocol adapter), so 1.6
        # and 2.0.1 stations are steered alike. None: the day bench, which calls `orders` and sends nothing.
        self._control: StationControl = control  # type: ignore[assignment]
        self._prioritised = prioritised
        self._is_known = is_known
        self._needs_of = needs_of
        # The most a token's car drew on a phase in its past sessions (history.TokenHistory.drew_of): a
        # session starts with it as Track.drew, so a car that drew its EVSE's maximum is planned at it.
        self._drew_of = drew_of
        self.timing = Timing(settings.hysteresis, settings.change_interval, settings.follow_time,
                             settings.tx_profile_duration)
        self.tracks: dict[EvseKey, Track] = {e.key: Track() for e in topology.evses}
        self.chargers: dict[str, ChargerTrack] = {e.charger_id: ChargerTrack() for e in topology.evses}
        self.safe_share = self._safe_shares()
        self.minimums = {e.key: e.min_current for e in topology.evses}
        self.allocation = Allocation()
        self.series = SeriesRecorder(journal, settings.series_interval, settings.series_keep_days)
        self._wake = asyncio.Event()
        self._inflight: dict[EvseKey, Order] = {}
        self._tasks: set[asyncio.Task] = set()
        self._last_decrease_at = -math.inf
        self._failsafe: set[str] = set()
        self._prepare_retries = Later("dlm-prepare-retry")
        self.retry_delays = RETRY_DELAYS
        self.evaluations = 0
        # Circuit id -> a cap from outside the config (the cloud's limits document); see edge.dlm.caps.
        self.caps: dict[str, Cap] = {}
        # EVSE -> the limit in A a system beside the edge holds it to (set_external_limit).
        self.external_limits: dict[EvseKey, float] = {}
        # EVSE -> the most its car said it takes (set_car_max), for the planner.
        self.car_max: dict[EvseKey, float] = {}
        self._capped: tuple[frozenset, Topology] = (frozenset(), topology)
        # Circuit phases measured over their limit beyond the reaction window (edge.dlm.overload).
        self.overload = OverloadWatch({c: reaction_window(settings.follow_time, m.config.period)
                                       for c, m in meters.items()})
        self.reaction = Reaction(follow=settings.follow_time)
        # Circuit id -> its meter's recent readings, for the rise after an increase (estimate.attribute_rises).
        self._readings: dict[str, deque[MeterReading]] = {}
        # The estimate at one instant, until something changes (events, answers, readings).
        self._changes = 0
        self._estimated: tuple[tuple[float, int], dict[EvseKey, Bounds]] = ((-math.inf, -1), {})
        self.sampling = MeterValuesSetup(self._control, settings.meter_values_interval, self._spawn)
        # `scheduled`: what each running session declared (transaction id -> departure and energy), and
        # the planner's targets, re-planned every PLAN_PERIOD_S and whenever sessions or needs change.
        self.needs: dict[int, Declared] = {}
        self._needs_version = 0
        self._targets: dict[EvseKey, float] | None = None
        self._planned: tuple[float, tuple, int] = (-math.inf, (), -1)

    # --- what the site looks like ------------------------------------------------------------------

    def _safe_shares(self) -> dict[EvseKey, float]:
        """Each EVSE's share if every EVSE charged at once with every meter at its
        failsafe load: what a charger may do on its own (TxDefaultProfile)."""
        states = tuple(ConnectorState(e.key, session=True, controllable=e.smart_charging, reserve=e.max_current)
                       for e in self.topology.evses)
        worst = allocate(Inputs(self.topology, {}, states, 0.0, "fixed"))
        return {k: d.limit for k, d in worst.decisions.items()}

    def charger_default(self, charger_id: str) -> tuple[float, int]:
        evses = [e for e in self.topology.evses if e.charger_id == charger_id]
        return (min(self.safe_share.get(e.key, 0.0) for e in evses), max(len(e.phase_map) for e in evses))

    def set_caps(self, caps: dict[str, Cap]) -> None:
        """Replace every cap at once; the next evaluation (now) applies them."""
        self.caps = dict(caps)
        self._wake.set()

    def set_external_limit(self, key: EvseKey, limit: float | None) -> None:
        """A limit the station holds `key` to on its own, from a system beside the edge (OCPP 2.0.1
        NotifyChargingLimit; None when ClearedChargingLimit ends it), in A per phase. The allocator gives
        that EVSE no more, so the rest goes to other cars; the next evaluation (now) applies it."""
        if key not in self.tracks:
            return
        if limit is None:
            self.external_limits.pop(key, None)
        else:
            self.external_limits[key] = max(0.0, float(limit))
        self._changes += 1
        self._wake.set()

    def set_car_max(self, key: EvseKey, amps: float | None) -> None:
        """The most the car at `key` said it takes, A per phase (OCPP 2.0.1 NotifyEVChargingNeeds' evMaxCurrent,
        needs.FromCar.max_per_phase; None: it said nothing): `scheduled` plans it at that maximum as known
        (planner.plan_cars' `said`) rather than guessing 16 A. Kept until its transaction stops (the car speaks
        before its transaction starts) and re-planned at once."""
        if key not in self.tracks:
            return
        if amps is None or not math.isfinite(amps) or amps <= 0:
            self.car_max.pop(key, None)
        else:
            self.car_max[key] = float(amps)
        self._needs_version += 1
        self._wake.set()

    def renegotiate(self, key: EvseKey) -> int | None:
        """Send the running transaction's TxProfile again at the next evaluation (woken now): its held profile
        is made due for renewal, so the limit it holds, or a new one if the allocation changed, goes out (OCPP
        2.0.1 K16: renegotiation after the car's needs or schedule). The load manager stays the only sender of
        TxProfiles. Returns the transaction's id, or None when no transaction of `key` is tracked (its first
        TxProfile follows its start anyway)."""
        track = self.tracks.get(key)
        if track is None or track.transaction_id is None:
            return None
        held = track.held
        if held is not None and held.transaction_id == track.transaction_id:
            track.held = replace(held, expires_at=min(held.expires_at, self._clock.monotonic()))
        self._changes += 1
        self._wake.set()
        return track.transaction_id

    def capped_topology(self) -> Topology:
        """The topology with the caps in force now (the same object while they do not change)."""
        now = self._clock.now()
        key = frozenset(c for c in self.caps.values() if c.active(now))
        if key != self._capped[0]:
            self._capped = (key, capped(self.topology, self.caps, now))
        return self._capped[1]

    def set_needs(self, transaction_id: int, departure: datetime | None, energy_wh: float | None,
                  source: str = "api") -> bool:
        """A running session's departure (wall, aware) and energy for the whole session (Wh):
        the next evaluation re-plans with it. False if no session with that id runs here."""
        if not any(t.transaction_id == transaction_id for t in self.tracks.values()):
            return False
        self.needs[transaction_id] = Declared(departure, energy_wh, source)
        self._needs_version += 1
        self._wake.set()
        return True

    def _needs_now(self, now: float) -> dict[EvseKey, Need]:
        """The planner's view of the declared needs: departure in monotonic s (through the
        injected clock), energy still wanted. A need already met is planned as none: that
        car then takes what is left after the others, as a car that said nothing."""
        wall = self._clock.now()
        out: dict[EvseKey, Need] = {}
        for key, track in self.tracks.items():
            declared = self.needs.get(track.transaction_id) if track.transaction_id is not None else None
            if declared is None:
                continue
            departure = (now + (declared.departure - wall).total_seconds() if declared.departure is not None
                         else math.inf)
            wanted = still_wanted(declared.energy_wh, track.start_wh, track.register_wh)
            if wanted > 0 and departure > now:
                out[key] = Need(departure, wanted)
        return out

    def _plan(self, states: tuple[ConnectorState, ...], meters: dict, now: float) -> dict[EvseKey, float] | None:
        """The `scheduled` strategy's targets: re-planned every PLAN_PERIOD_S, or at once when
        the sessions or their needs changed. The capacity is the allocator's own view now
        (building load from the estimator, reserves, margin), held over the horizon."""
        if self.settings.strategy != "scheduled":
            self._targets = None
            return None
        for s in states:
            if s.session and s.measured:
                track = self.tracks[s.key]
                track.drew = max(track.drew, *s.measured)
        topology = self.capped_topology()
        drew = {s.key: self.tracks[s.key].drew for s in states if s.session}
        took = {s.key: self.tracks[s.key].took for s in states if s.session}
        said = {s.key: self.car_max[s.key] for s in states if s.session and s.key in self.car_max}
        # Re-planned too when a car's maximum becomes known (it showed what it takes).
        sessions = (frozenset((s.key, self.tracks[s.key].transaction_id) for s in states if s.session),
                    known_maxima(plan_cars(topology, states, {}, drew, said, took)))
        at, seen, version = self._planned
        if now - at < PLAN_PERIOD_S and sessions == seen and version == self._needs_version:
            return self._targets
        needs = self._needs_now(now)
        if needs:
            free = allocate(Inputs(topology, meters, states, now, "fair", self.settings.rotate_after))
            # Only cars that said what they need get a target (the planner's order, early leavers
            # first); the allocator gives the others their minimum and shares the rest fairly.
            # (In the plan, cars without a need would take slot 0's rest in key order: first come.)
            planned = targets_now(topology, states, needs, free, now, drew=drew, took=took, said=said)
            self._targets = {k: a for k, a in planned.items() if k in needs}
        else:
            self._targets = None        # nobody said: `fair`
        self._planned = (now, sessions, self._needs_version)
        return self._targets

    def meter_reading(self, reading: Any = None) -> None:
        """A meter has a new reading: evaluate now."""
        self._wake.set()

    def _meter_currents(self, now: float) -> dict[str, tuple[float, float, float] | None]:
        out: dict[str, tuple[float, float, float] | None] = {}
        for circuit_id, meter in self.meters.items():
            reading = meter.latest
            fresh = (reading is not None
                     and now - reading.at <= self.settings.failsafe_after * meter.config.period + 1e-6)
            out[circuit_id] = tuple(reading.current) if fresh else None  # type: ignore[assignment]
        return out

    def _refused(self, charger: ChargerTrack, now: float) -> bool:
        return charger.refused_at is not None and now - charger.refused_at < RETRY_REFUSED_AFTER

    def _controllable(self, key: EvseKey, now: float) -> bool:
        # Fail closed: only a charger that accepted its default profile on this connection
        # is steered; before that its maximum is held for it (allocate), whatever it does.
        evse, track, charger = self.topology.evse_by_key[key], self.tracks[key], self.chargers[key[0]]
        return (evse.smart_charging and charger.online and charger.default_sent is not None
                and not self._refused(charger, now) and not track.over_limit)

    def _history(self, key: EvseKey, now: float, follows: bool | None = None):
        """The estimator's history of the car on `key`; `follows`: whether its charger
        applies our limits (default: it takes profiles and was not caught over its limit)."""
        evse, track, charger = self.topology.evse_by_key[key], self.tracks[key], self.chargers[key[0]]
        held = track.held
        if held is not None and held.transaction_id == track.transaction_id and not any(
                c.sent_at == held.sent_at for c in track.commands):
            # A limit held without its command (a simulation that applies its plans itself): accepted as sent.
            track.commands += (Command(held.limit, held.sent_at, held.sent_at, True),)
        initial = self.safe_share.get(key, 0.0) if charger.default_sent is not None else evse.max_current
        steered = evse.smart_charging and not self._refused(charger, now) and not track.over_limit
        if follows is not None:
            steered = follows
        return history(evse, track, initial=initial, steered=steered, now=now, booted_at=charger.booted_at)

    def estimates(self, now: float) -> dict[EvseKey, Bounds]:
        """Every running session's interval per charger phase (edge.dlm.estimate): `most` at
        `now` (what it may draw from now on), `least` without the limits sent after the meter
        reading the building's load is computed from (the least of those on its path, for nested
        meters). The building's load is that reading minus what the cars drew: a limit lowered
        after the reading does not count yet, or the lowered car's drop would be counted as
        building load before any reading could show it, and each decrease would call for the
        next (a cascade of 0.1 A decreases, or every car paused one after another, within a
        second of one building step). A change of the building after the reading is what the
        meter period of the reaction window is for. Computed once per instant and change."""
        if self._estimated[0] != (now, self._changes):
            cars = self._cars(now)
            estimated = self._estimate_of(cars, now)
            times = self._reading_times(now)
            # A reading taken after every limit sent so far (the one a reaction to a load step acts
            # on) has the estimate above as its own: only an older one needs a second pass.
            earlier = {t: self._estimate_of(sent_by(cars, t), now) for t in set(times.values())
                       if t < now and sent_after(cars, t)}
            if earlier:
                merged = {}
                for key, b in estimated.items():
                    path = [times[c] for c in self.topology.paths[self.topology.evse_by_key[key].circuit] if c in times]
                    leasts = [earlier[t][key].least if t in earlier and key in earlier[t] else b.least for t in path]
                    least = tuple(min(v) for v in zip(*leasts)) if leasts else b.least
                    merged[key] = Bounds(tuple(min(lo, hi) for lo, hi in zip(least, b.most)), b.most)
                estimated = merged
            self._estimated = ((now, self._changes), estimated)
        return self._estimated[1]

    def _cars(self, at: float) -> dict[EvseKey, Any]:
        """The estimator's history of every running session at `at`."""
        return {key: self._history(key, at) for key, track in self.tracks.items() if track.transaction_id is not None}

    def _estimate_of(self, cars: dict[EvseKey, Any], at: float) -> dict[EvseKey, Bounds]:
        readings = {c: tuple(r) for c, r in self._readings.items() if r}
        return estimate_site(self.topology, cars, readings, at, self.reaction)

    def _reading_times(self, now: float) -> dict[str, float]:
        """Circuit id -> the instant of its meter's reading in use (fresh, not after `now`)."""
        out = {}
        for circuit_id, meter in self.meters.items():
            reading = meter.latest
            if (reading is not None and reading.at <= now
                    and now - reading.at <= self.settings.failsafe_after * meter.config.period + 1e-6):
                out[circuit_id] = reading.at
        return out

    def record_reading(self, circuit_id: str, at: float, currents: tuple[float, ...]) -> None:
        """A circuit meter's reading (monotonic s), kept a while for estimate.attribute_rises."""
        kept = self._readings.setdefault(circuit_id, deque())
        if kept and at <= kept[-1].at:
            return
        kept.append(MeterReading(at, (currents[0], currents[1], currents[2])))
        while kept and kept[0].at < at - READINGS_KEPT:
            kept.popleft()
        self._changes += 1

    def _state(self, key: EvseKey, now: float, estimated: dict[EvseKey, Bounds] | None = None) -> ConnectorState:
        evse = self.topology.evse_by_key[key]
        track, charger = self.tracks[key], self.chargers[key[0]]
        refused = self._refused(charger, now)
        controllable = self._controllable(key, now)
        drawing = track.transaction_id is not None and track.status not in NOT_DRAWING
        # The building's load is the meter minus the least the car can be drawing now: never underestimated.
        est = (self.estimates(now) if estimated is None else estimated).get(key)
        measured = est.least if est is not None and track.transaction_id is not None else ()
        held = track.held
        demand = None
        if track.transaction_id is not None and (track.status == "SuspendedEV" or track.full_since is not None):
            # The car itself takes nothing (full, or waiting on its own timer): it keeps
            # its minimum so it can resume, the rest goes to the others; after a while it
            # is paused, and offered its minimum again from time to time (`resting`).
            demand = 0.0
        elif drawing and held is not None and held.transaction_id == track.transaction_id:
            demand = track.takes        # tracking.takes, at its latest sample
        reserve = max([evse.max_current, *track.measured])
        if (est is not None and not controllable and evse.smart_charging and not refused and not track.over_limit
                and held is not None and held.transaction_id == track.transaction_id and now < held.expires_at):
            # Offline (or back, before its default profile is confirmed again) with a TxProfile in force:
            # the car may draw what that profile allows until it runs out, no more.
            reserve = max(est.most, default=evse.max_current)
        return ConnectorState(
            key, session=track.transaction_id is not None, plugged=track.status == "Preparing",
            measured=measured, phases_in_use=track.phases, demand=demand, priority=track.priority,
            arrived=track.arrived, running_since=track.running_since, paused_since=track.paused_since,
            controllable=controllable, reserve=reserve,
            safe_share=self.safe_share.get(key, 0.0), why_uncontrollable=self._why_uncontrollable(
                evse.smart_charging, charger, refused, track.over_limit),
            ceiling=self.external_limits.get(key),
            resting=track.transaction_id is not None and resting(
                track.full_since, now, self.settings.full_pause_after, self.settings.rotate_after))

    @staticmethod
    def _why_uncontrollable(smart: bool, charger: ChargerTrack, refused: bool, over_limit: bool) -> str:
        if not smart:
            return "takes no charging profiles (smart_charging = false)"
        if not charger.online:
            return "offline"
        if refused:
            return "refused a charging profile"
        if over_limit:
            return "draws over its limit"
        if charger.default_sent is None:
            return "no default profile accepted yet"
        return ""

    # --- the loop ------------------------------------------------------------------------------------

    async def run(self) -> None:
        events = self._bus.subscribe()
        consumer = asyncio.create_task(self._consume(events), name="dlm-events")
        try:
            while True:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
                # cancellation that lands as the wait completes, and this loop would never stop.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.settings.tick):
                        await self._wake.wait()
                self._wake.clear()
                self.evaluate()
        finally:
            consumer.cancel()
            self._bus.unsubscribe(events)
            self._prepare_retries.cancel_all()
            self.sampling.cancel_all()
            for task in self._tasks:
                task.cancel()
            await self.series.flush()

    async def _consume(self, events) -> None:
        while True:
            self.on_event(await events.get())
            self._wake.set()

    def evaluate(self) -> Allocation:
        now = self._clock.monotonic()
        self.evaluations += 1
        meters = self._meter_currents(now)
        for circuit_id, meter in self.meters.items():
            if meter.latest is not None:
                self.record_reading(circuit_id, meter.latest.at, tuple(meter.latest.current))
        estimated = self.estimates(now)
        states = tuple(self._state(e.key, now, estimated) for e in self.topology.evses)
        targets = self._plan(states, meters, now)
        allocation = allocate(Inputs(self.capped_topology(), meters, states, now, self.settings.strategy,
                                     self.settings.rotate_after, targets))
        self._note_failsafe(allocation)
        for change in self.overload.observe(self.capped_topology(), {c: m.latest for c, m in self.meters.items()},
                                            allocation, now, self._clock.now()):
            log.log(change.level, change.message())
            self._alert("dlm.over_fuse", **change.data())
        self._note_turns(allocation, now)
        self.allocation = allocation
        last_decrease = now if any(o.kind == "decrease" for o in self._inflight.values()) else self._last_decrease_at
        for order in self.orders(allocation, states, meters, targets, now, last_decrease):
            inflight = self._inflight.get(order.key)
            if inflight is not None and not (order.kind == "decrease" and order.limit < inflight.limit):
                continue
            self._spawn(self._send(order), f"dlm-profile {order.key}")
        self.series.add(self._clock.now(), now, allocation)
        return allocation

    def orders(self, allocation: Allocation, states: tuple[ConnectorState, ...], meters: dict,
               targets: dict[EvseKey, float] | None, now: float, last_decrease: float | None) -> list[Order]:
        """What to send for `allocation`: decreases as computed, increases paced and aimed (_aimed).
        The one decision evaluate() acts on; bench/dlm_day.py calls it too, so the working day
        measures the edge's own pacing."""
        transactions = {k: t.transaction_id for k, t in self.tracks.items()
                        if t.transaction_id is not None and self._state_of(states, k).controllable}
        held = {k: t.held for k, t in self.tracks.items() if t.held is not None}
        # Increases are fitted to what the cars may draw at worst (fit), rather than held back
        # after every decrease on the site: one waits only when a car lowered within its follow
        # time leaves too little room on a phase it uses.
        orders = plan(allocation.decisions, transactions, held, self.safe_share, now, last_decrease, self.timing,
                      self.minimums, paced=False)
        if any(o.kind == "increase" for o in orders):
            orders = plan(allocation.decisions, transactions, held, self.safe_share, now, last_decrease, self.timing,
                          self.minimums, self._aimed(states, meters, targets, now), paced=False)
            room, most = self._worst_room(allocation, states, now)
            orders = fit(orders, room, most, self._in_force(states, on_the_way=False), self.minimums, self.timing)
        return self._softened(orders, allocation, states, meters, targets, now)

    def _softened(self, orders: list[Order], allocation: Allocation, states: tuple[ConnectorState, ...],
                  meters: dict, targets: dict[EvseKey, float] | None, now: float) -> list[Order]:
        """The orders with each decrease that only shares out room a phantom took held back.

        A car lowered within its follow time may still draw its old current, and the building's
        load counts what it draws above its new limit (the least it may draw) until the meter
        shows it fell: it may have fallen at once while the building rose as much. Sharing the
        room left by that estimate lowers the cars again (a cascade: every car paused or halved
        within seconds of one newcomer, each new decrease adding to the phantom), yet the room
        it makes cannot be given to anyone until the fall shows, as an increase must fit with
        every lowered car at its old limit (`fit`). So while such a car may still be following,
        a decrease goes no lower than the allocation with every car at the least it was known
        to draw before those decreases, provided the limits then in force still fit the room the
        estimate leaves, with the building at its most, on every circuit phase: the allocator's
        own safety rule. If they do not, every decrease goes as decided. Once the fall shows (or
        the follow time ends) the estimate is exact again and any decrease still due goes out."""
        decreases = {o.key: o for o in orders if o.kind == "decrease"}
        if not decreases:
            return orders
        cars = self._cars(now)
        following = [c.sent_at for car in cars.values() for c in _decreases(car)
                     if (now if c.answered_at is None else c.answered_at) + self.reaction.follow > now]
        if not following:
            return orders
        before = self._estimate_of(sent_by(cars, min(following) - 1e-6), now)
        estimated = self.estimates(now)
        hopeful = tuple(
            replace(s, measured=tuple(max(a, min(b, m)) for a, b, m in zip(
                s.measured, before[s.key].least, estimated[s.key].most)))
            if s.measured and s.key in before and s.key in estimated else s for s in states)
        sharing = allocate(Inputs(self.capped_topology(), meters, hopeful, now, self.settings.strategy,
                                  self.settings.rotate_after, targets)).decisions
        in_force = self._in_force(states)
        uses = {s.key: [r for _, r in self._uses(s)] for s in states if s.key in in_force}
        held = {key: t.held for key, t in self.tracks.items() if t.held is not None}
        return soften(orders, {k: d.limit for k, d in sharing.items()}, in_force, held, self._room(allocation),
                      uses, self.timing)

    def _in_force(self, states: tuple[ConnectorState, ...], on_the_way: bool = True) -> dict[EvseKey, float]:
        """Per steered car with a session, the limit it holds (its default profile's before the
        first); with `on_the_way`, the highest its charger may apply now: one on its way if higher."""
        out = {}
        for state in states:
            track = self.tracks.get(state.key)
            if not state.session or not state.controllable or track is None or track.transaction_id is None:
                continue
            held = track.held
            limit = (held.limit if held is not None and held.transaction_id == track.transaction_id
                     else self.safe_share.get(state.key, 0.0))
            inflight = self._inflight.get(state.key) if on_the_way else None
            out[state.key] = max(limit, inflight.limit) if inflight is not None else limit
        return out

    def _room(self, allocation: Allocation) -> dict:
        """Per circuit phase, what the steered cars may take: limit - margin - the building's load
        (from the least the cars draw) - what uncontrollable chargers may draw."""
        margin = self.capped_topology().margin
        return {(c, p): ph.limit - margin - ph.unmanaged - ph.reserved
                for c, load in allocation.circuits.items() for p, ph in enumerate(load.phases)}

    def _uses(self, state: ConnectorState, phases: int = 3) -> list[tuple[int, tuple[str, int]]]:
        """(charger phase, circuit phase) for every phase the car draws on and every circuit on its path."""
        topology = self.capped_topology()
        evse = topology.evse_by_key[state.key]
        n = max(1, min(state.phases_in_use or len(evse.phase_map), len(evse.phase_map), phases))
        return [(i, (c, evse.phase_map[i])) for i in range(n) for c in topology.paths[evse.circuit]]

    def _worst_room(self, allocation: Allocation, states: tuple[ConnectorState, ...], now: float
                    ) -> tuple[dict, dict[EvseKey, dict]]:
        """Per circuit phase, what is left with every steered car at the most it may draw now
        (estimate: a car lowered within its follow time at its old limit); and per car, that most
        on each circuit phase it uses. Uncontrollable chargers are in `reserved` already."""
        room = self._room(allocation)
        estimated = self.estimates(now)
        most: dict[EvseKey, dict] = {}
        for state in states:
            bounds = estimated.get(state.key)
            if not state.session or not state.controllable or bounds is None:
                continue
            mine: dict = {}
            for i, r in self._uses(state, len(bounds.most)):
                mine[r] = mine.get(r, 0.0) + bounds.most[i]
            for r, amps in mine.items():
                if r in room:
                    room[r] -= amps
            most[state.key] = {r: a for r, a in mine.items() if r in room}
        return room, most

    def _aimed(self, states: tuple[ConnectorState, ...], meters: dict, targets: dict[EvseKey, float] | None,
               now: float) -> dict[EvseKey, float]:
        """What increases aim at: the allocation with every car's least as it may be just
        before its next sample is in (_faded). Until then the evaluated limit stays at or above
        it, so an increase is not undone by the estimate's drift alone; a real rise of the
        building still lowers it at once."""
        faded = tuple(replace(s, measured=self._faded(s.key, s.measured, now)) if s.measured else s for s in states)
        aimed = allocate(Inputs(self.capped_topology(), meters, faded, now, self.settings.strategy,
                                self.settings.rotate_after, targets))
        return {k: d.limit for k, d in aimed.decisions.items()}

    def _faded(self, key: EvseKey, least: tuple[float, ...], now: float) -> tuple[float, ...]:
        """A car's least (`least`, now) as it may be just before its next sample is in: what
        its latest sample alone says then (estimate.bounds, the taper counted on), so a credit
        from the meter's rise that may lapse counts as fading too; at most the taper over two
        MeterValues intervals and the delivery lag below `least` (a car ramping up on its
        credit, before any sample shows it). The next sample is due a sample spacing after the
        latest (the configured interval, or the spacing seen when longer) and may come the
        delivery lag late; one overdue is taken to come a spacing from now. The least jumps back
        at each sample: fading every car by the whole two intervals from any instant, as
        increases once did, aimed each car up to a quarter of an ampere per car sharing its
        phases lower than the estimate's drift can take its decision."""
        interval = self.settings.meter_values_interval or FIRST_WINDOW
        most_fade = self.reaction.taper * (2 * interval + DELIVERY_LAG)
        track = self.tracks.get(key)
        if track is None or not track.samples:
            return tuple(max(0.0, a - most_fade) for a in least)
        latest = track.samples[-1]
        spacing = max(interval, min(FIRST_WINDOW, latest.interval - DELIVERY_LAG))
        due = latest.at + spacing + DELIVERY_LAG
        then = bounds_at(self._history(key, now), due if due > now else now + spacing, self.reaction).least
        return tuple(max(0.0, a - most_fade, min(a, b)) for a, b in zip(least, (*then, *([0.0] * len(least)))))

    @staticmethod
    def _state_of(states: tuple[ConnectorState, ...], key: EvseKey) -> ConnectorState:
        return next(s for s in states if s.key == key)

    def _note_failsafe(self, allocation: Allocation) -> None:
        now_failsafe = {c for c, load in allocation.circuits.items()
                        if load.failsafe and self.topology.by_id[c].meter is not None}
        for circuit in now_failsafe - self._failsafe:
            log.error("failsafe circuit=%s: meter %s has no valid reading; assuming its worst-case load",
                      circuit, self.topology.by_id[circuit].meter)
            self._alert("dlm.failsafe", circuit=circuit, active=True)
        for circuit in self._failsafe - now_failsafe:
            log.warning("failsafe over circuit=%s: meter readings are back", circuit)
            self._alert("dlm.failsafe", circuit=circuit, active=False)
        self._failsafe = now_failsafe

    def _note_turns(self, allocation: Allocation, now: float) -> None:
        for key, track in self.tracks.items():
            decision = allocation.decisions.get(key)
            if track.transaction_id is None or decision is None or not self._controllable(key, now):
                # A charger we cannot steer (offline, say) is not paused by us: its car keeps
                # its place in the admission order for when it is back.
                continue
            if track.full_since is not None and (track.running_since is not None or track.paused_since is not None):
                # A car that takes nothing, paused and offered again: not a turn taken or given. One that
                # said so from its start (a car preconditioning, or slow to ask) takes its first turn all
                # the same: offered its minimum, it is charging when it starts to draw, not a newcomer
                # waiting for fair's start margin.
                continue
            if decision.limit > 0 and track.running_since is None:
                track.running_since, track.paused_since = now, None
            elif decision.limit == 0 and track.paused_since is None:
                track.running_since, track.paused_since = None, now
                log.info("paused charger=%s connector=%s: %s", key[0], key[1], decision.reason)

    def _alert(self, kind: str, **data: Any) -> None:
        self._bus.publish(Event(kind, data.pop("charger_id", ""), self._clock.now_iso(), data))

    def status(self) -> dict[str, Any]:
        """The allocation as the API shows it: every circuit phase against its
        limit, and for every connector its limit and why it is not higher."""
        now = self._clock.monotonic()
        allocation = self.allocation
        circuits = []
        wall = self._clock.now()
        for circuit in self.capped_topology().circuits:
            load = allocation.circuits.get(circuit.id)
            cap = self.caps.get(circuit.id)
            circuits.append({
                "id": circuit.id, "limit": circuit.limit, "parent": circuit.parent, "meter": circuit.meter,
                "cap": ({"max_current": cap.max_current, "until": cap.until.isoformat() if cap.until else None,
                         "reason": cap.reason} if cap is not None and cap.active(wall) else None),
                "failsafe": bool(load and load.failsafe),
                "phases": [{"phase": NAMES[p], "metered": _round(ph.metered), "unmanaged": _round(ph.unmanaged),
                            "reserved": _round(ph.reserved), "allocated": _round(ph.allocated),
                            "over": self.overload.status((circuit.id, p)),
                            "headroom": _round(circuit.limit - self.topology.margin - ph.unmanaged - ph.reserved
                                               - ph.allocated)}
                           for p, ph in enumerate(load.phases)] if load else []})
        connectors = []
        estimated = self.estimates(now)
        for evse in self.topology.evses:
            track, state = self.tracks[evse.key], self._state(evse.key, now, estimated)
            est = estimated.get(evse.key)
            decision = allocation.decisions.get(evse.key)
            connectors.append({
                "charger_id": evse.charger_id, "connector_id": evse.connector_id,
                "transaction_id": track.transaction_id, "status": track.status, "priority": track.priority,
                "limit": decision.limit if decision else None, "phases": decision.phases if decision else None,
                "reason": decision.reason if decision else ("no car" if track.transaction_id is None else ""),
                "binding": ({"circuit": decision.binding[0], "phase": NAMES[decision.binding[1]]}
                            if decision and decision.binding else None),
                "held": track.held.limit if track.held else None,
                "needs": self._needs_status(track),
                "target": (_round(self._targets.get(evse.key)) if self._targets is not None
                           and evse.key in self._targets else None),
                "measured": [_round(a) for a in track.measured], "controllable": state.controllable,
                "estimate": ({"least": [_round(a) for a in est.least], "most": [_round(a) for a in est.most]}
                             if est is not None else None),
                "over_limit": track.over_limit, "safe_share": self.safe_share.get(evse.key, 0.0),
                "uncontrollable": state.why_uncontrollable or None})
        meters = []
        for circuit_id, meter in self.meters.items():
            reading = meter.latest
            meters.append({"circuit": circuit_id, "meter": self.topology.by_id[circuit_id].meter,
                           "age_s": _round(now - reading.at) if reading else None,
                           "current": [_round(a) for a in reading.current] if reading else None,
                           "failsafe": circuit_id in self._failsafe})
        return {"strategy": self.settings.strategy, "margin": self.topology.margin, "evaluations": self.evaluations,
                "circuits": circuits, "connectors": connectors, "meters": meters}

    def _needs_status(self, track: Track) -> dict[str, Any] | None:
        declared = self.needs.get(track.transaction_id) if track.transaction_id is not None else None
        if declared is None:
            return None
        wanted = still_wanted(declared.energy_wh, track.start_wh, track.register_wh)
        return {"departure": declared.departure.isoformat(timespec="seconds") if declared.departure else None,
                "energy_kwh": None if declared.energy_wh is None else round(declared.energy_wh / 1000, 3),
                "still_kwh": _round(wanted / 1000) if math.isfinite(wanted) else None, "source": declared.source}

    # --- talking to chargers -------------------------------------------------------------------------

    def _spawn(self, coro, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, order: Order) -> None:
        charger_id, connector_id = order.key
        charger = self.chargers[charger_id]
        self._inflight[order.key] = order
        sent_at = self._clock.monotonic()
        track = self.tracks[order.key]
        # The limit may be in force from the moment it leaves (estimate: sent, answered, accepted).
        command = Command(order.limit, sent_at)
        if track.transaction_id == order.transaction_id:
            track.commands += (command,)
            self._changes += 1
        try:
            limit = tx_limit(order, start=self._clock.now() - timedelta(seconds=1),
                             duration=self.settings.tx_profile_duration, stack_level=self._stack_level(charger),
                             unit=charger.unit)
            result = await self._control.set_charging_limit(
                charger_id, limit, actor=ACTOR, reason=f"{order.kind} to {order.limit:g} A: {order.reason}")
        finally:
            if self._inflight.get(order.key) is order:
                del self._inflight[order.key]
        track = self.tracks[order.key]
        if track.transaction_id == order.transaction_id:
            accepted = True if result.outcome == "ok" else (
                None if result.outcome in ("timeout", "not-connected") else False)
            track.commands = answered(track.commands, command, self._clock.monotonic(), accepted)
            prune(track, self._clock.monotonic(), self.reaction.follow)
            self._changes += 1
        if result.outcome == "ok":
            charger.refused_at = None
            if track.transaction_id == order.transaction_id:
                default = self.safe_share.get(order.key, 0.0) if charger.default_sent is not None else None
                track.held = held_after(order, track.held, sent_at, sent_at + self.settings.tx_profile_duration,
                                        default)
            if order.kind == "decrease":
                self._last_decrease_at = self._clock.monotonic()
        elif track.transaction_id == order.transaction_id and result.outcome != "not-connected":
            self._refuses(charger_id, f"{result.action} {result.outcome}: {result.response}")
            charger.refused_for = (order.key, order.transaction_id)
        self._wake.set()

    def _stack_level(self, charger: ChargerTrack) -> int:
        level = self.settings.stack_level
        return min(level, charger.max_stack_level) if charger.max_stack_level is not None else level

    def _refuses(self, charger_id: str, why: str) -> None:
        log.warning("charger=%s does not take charging profiles (%s): its maximum is held for it", charger_id, why)
        self.chargers[charger_id].refused_at = self._clock.monotonic()
        self.chargers[charger_id].refused_for = None
        self._alert("dlm.uncontrollable", charger_id=charger_id, reason=why)

    async def _prepare(self, charger_id: str) -> None:
        """When the charger is ready (booted, or its first frame after an edge
        restart): learn what profiles it takes, then give it its safe share as
        TxDefaultProfile, so it cannot overload the site even when this
        controller is gone. It is steered (controllable) only once it accepted
        that profile; a failure is retried with back-off (edge.retries)."""
        charger = self.chargers[charger_id]
        answer = await self._control.read_settings(
            charger_id, [Setting.CHARGING_RATE_UNITS, Setting.MAX_STACK_LEVEL],
            actor=ACTOR, reason="what charging profiles the charger takes")
        if answer.outcome == "ok":
            values = answer.value or {}
            charger.unit = rate_unit(values.get(Setting.CHARGING_RATE_UNITS))
            try:
                charger.max_stack_level = int(values[Setting.MAX_STACK_LEVEL])
            except (KeyError, TypeError, ValueError):
                charger.max_stack_level = None
        elif answer.outcome == "timeout":
            # It does not answer: the profile would wait out the same timeout.
            self._prepare_failed(charger_id, f"{answer.action} {answer.outcome}: {answer.response}")
            return
        limit, phases = self.charger_default(charger_id)
        result = await self._control.set_charging_limit(
            charger_id, default_limit(limit, phases, stack_level=self._stack_level(charger), unit=charger.unit),
            actor=ACTOR, reason=f"safe share {limit:g} A when the controller is not there")
        if result.outcome == "ok" and charger.online:
            charger.default_sent = limit
            charger.refused_at = None
            log.info("charger=%s accepted its default profile (%g A): it is steered from now", charger_id, limit)
        elif result.outcome != "not-connected":
            self._prepare_failed(charger_id, f"TxDefaultProfile {result.outcome}: {result.response}")
        self._wake.set()

    def _prepare_failed(self, charger_id: str, why: str) -> None:
        """Its maximum stays held for it (fail closed); ask again later."""
        self._refuses(charger_id, why)
        charger = self.chargers[charger_id]
        delay = next_delay(charger.prepare_attempts, self.retry_delays)
        if delay is None:
            log.error("charger=%s still has no default profile after %d retries: its maximum stays held for it "
                      "until it connects again", charger_id, charger.prepare_attempts)
            return
        charger.prepare_attempts += 1
        self._prepare_retries.call(charger_id, delay, lambda: self._prepare_again(charger_id))

    def _prepare_again(self, charger_id: str) -> None:
        if self.chargers[charger_id].online:
            self._spawn(self._prepare(charger_id), f"dlm-prepare {charger_id}")

    # --- following the site --------------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        charger = self.chargers.get(event.charger_id)
        if charger is None:
            return
        kind, data, now = event.kind, event.data, self._clock.monotonic()
        self._changes += 1
        if kind == "charger.connected" and self._is_known(event.charger_id):
            # Connected is not listening: nothing is sent before charger.ready, and
            # until it accepted its default profile its maximum is held (_state).
            charger.online, charger.default_sent = True, None
        elif kind == "charger.ready" and self._is_known(event.charger_id):
            charger.online, charger.prepare_attempts = True, 0
            self._prepare_retries.cancel(event.charger_id)
            self._spawn(self._prepare(event.charger_id), f"dlm-prepare {event.charger_id}")
            self.sampling.ready(event.charger_id)
        elif kind == "charger.disconnected" and not self._control.is_connected(event.charger_id):
            # (A charger that reconnected at once has its new connection already: that one counts.)
            charger.online, charger.default_sent = False, None
            self._prepare_retries.cancel(event.charger_id)
            self.sampling.gone(event.charger_id)
        elif kind == "charger.booted":
            # A rebooted charger forgets its TxProfiles.
            charger.booted_at = now
            for key, track in self.tracks.items():
                if key[0] == event.charger_id:
                    track.held = None
        track = self.tracks.get((event.charger_id, data.get("connector_id") or 0))
        if track is None:
            return
        if kind == "transaction.started":
            tag = data.get("id_tag") or ""
            start = data.get("meter_start")
            self.tracks[(event.charger_id, data["connector_id"])] = replace(
                Track(), transaction_id=data["transaction_id"], priority=self._prioritised(tag), arrived=now,
                drew=self._drew_of(tag) if self._drew_of is not None and tag else 0.0,
                status=track.status if track.status not in ("Available",) else "Charging",
                start_wh=float(start) if isinstance(start, (int, float)) and not isinstance(start, bool) else None)
            # Needs of sessions no longer on any connector (replaced without a stop) go with them.
            running = {t.transaction_id for t in self.tracks.values()}
            self.needs = {tx: d for tx, d in self.needs.items() if tx in running}
            default = self._needs_of(tag) if self._needs_of is not None and tag else None
            if default is not None and data["transaction_id"] not in self.needs:
                self.needs[data["transaction_id"]] = default
                self._needs_version += 1
        elif kind == "transaction.stopped":
            if self.needs.pop(data.get("transaction_id"), None) is not None:
                self._needs_version += 1
            key = (event.charger_id, data.get("connector_id") or 0)
            self.car_max.pop(key, None)         # the next car says its own (or nothing)
            if charger.refused_for == (key, data.get("transaction_id")):
                # It refused a TxProfile for a transaction that had ended already (the end was on its
                # way): that says nothing about the next one. Its TxDefaultProfile still holds.
                log.info("charger=%s connector=%s refused a limit for a transaction that ended: not held against it",
                         *key)
                charger.refused_at, charger.refused_for = None, None
            if track.transaction_id == data.get("transaction_id"):
                self.tracks[(event.charger_id, data["connector_id"])] = Track(status=track.status)
        elif kind == "connector.status":
            before, track.status = track.status, data.get("status", track.status)
            if track.status == "SuspendedEV" and track.full_since is None and track.transaction_id is not None:
                track.full_since = now
            elif track.status == "Charging":
                track.full_since = None
            evse = self.topology.evse_by_key.get((event.charger_id, data.get("connector_id") or 0))
            if track.status in NOT_DRAWING and not (evse is not None and paused_by_us(before, track, evse)):
                # The charger says the car stopped drawing: it may have been at 0 A for a while
                # already (the report lags), so its earlier samples no longer count (estimate).
                track.stopped_at = now
        elif kind == "meter.values" and track.transaction_id is not None \
                and data.get("transaction_id") == track.transaction_id:
            register = register_wh(data.get("samples", []))
            if register is not None:
                track.register_wh = max(register, track.register_wh or register)
            self._measured(event.charger_id, track, data.get("samples", []), now)

    def _measured(self, charger_id: str, track: Track, samples: list, now: float) -> None:
        evse = self.topology.evse_by_key.get((charger_id, samples[0].connector_id)) if samples else None
        if evse is None:
            return
        phases = len(evse.phase_map)
        sample = sample_from_meter_values(samples, phases, at=now, interval=window(track, now))
        if sample is not None:
            track.samples = (*track.samples, sample)
            prune(track, now, self.reaction.follow)
        parsed = currents_from_samples(samples, phases)
        if parsed is None:
            return
        currents, per_phase = parsed
        track.measured, track.measured_at = currents, now
        # The first sample with any current says which phases the car uses (a 2-phase car
        # mid-ramp: 0.7 A on two); an un-phased value says nothing about that.
        learned = learn_phases(currents) if per_phase else None
        if max(currents, default=0.0) >= DRAWING:
            track.full_since = None         # it draws again: it takes what it is offered
        if learned is not None:
            track.phases = max(track.phases or 0, learned)
        held = track.held
        track.takes = (takes(track, held.limit, currents, now, self.settings.follow_time)
                       if held is not None and held.transaction_id == track.transaction_id else None)
        # What it was found to take stays for the planner once `takes` forgets it (limited below it).
        track.took = learn_take(track.took, track.takes, evse.min_current)
        if sample is not None:
            self._follow_up(evse.key, track, sample, now)

    def _follow_up(self, key: EvseKey, track: Track, sample, now: float) -> None:
        """A car that keeps drawing over its limit after it had time to follow is
        reported and its charger's full share is held for it. A sample counts only
        against the highest limit that was in force during its window (and the
        follow time before it), so a stale or averaged sample is no strike."""
        held = track.held
        if held is None:
            return
        evse = self.topology.evse_by_key[key]
        car = self._history(key, now, follows=True)
        if not car.commands:
            return
        allowed = allowed_over(car, sample.at - sample.interval, sample.at, self.reaction)
        if sample.currents is not None:
            over = max(a for a in sample.currents) - allowed
        else:
            over = (sample.total or 0.0) / (track.phases or len(evse.phase_map)) - allowed
        if over > self.settings.over_limit_tolerance:
            track.strikes += 1
            if track.strikes >= 2 and not track.over_limit:
                track.over_limit = True
                log.error("charger=%s connector=%s draws %.1f A over its %.1f A limit: reported, its maximum is held",
                          key[0], key[1], over, held.limit)
                self._alert("dlm.over_limit", charger_id=key[0], connector_id=key[1], limit=held.limit,
                            measured=list(track.measured))
        else:
            track.strikes = 0
            if track.over_limit:
                log.warning("charger=%s connector=%s follows its limit again", *key)
                track.over_limit = False


def sent_by(cars: dict[EvseKey, Any], instant: float) -> dict[EvseKey, Any]:
    """The histories as if no limit had been sent after `instant` (a reading then cannot show
    them): the cars' samples and what was learned since still count."""
    return {key: replace(car, commands=tuple(c for c in car.commands if c.sent_at <= instant))
            for key, car in cars.items()}


def _decreases(car: Any) -> list[Command]:
    """A car's commands that lowered its limit (not rejected), in the order sent."""
    out, before = [], car.initial
    for c in car.commands:
        if c.accepted is False:
            continue
        if c.limit < before - 1e-9:
            out.append(c)
        before = c.limit
    return out


def sent_after(cars: dict[EvseKey, Any], instant: float) -> bool:
    return any(c.sent_at > instant for car in cars.values() for c in car.commands)


def rate_unit(units: str | None) -> str:
    """The unit a station's limits go in: amps when it takes them (1.6 ChargingScheduleAllowedChargingRateUnit
    "Current", 2.0.1 SmartChargingCtrlr.RateUnit "A"; a station that does not say is taken to), else watts."""
    members = {u.strip() for u in (units or "A").split(",")}
    return "A" if members & {"Current", "A"} else "W"


def _round(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, 2)
