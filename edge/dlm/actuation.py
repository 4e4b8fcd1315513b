"""From decisions to SetChargingProfile requests (pure).

Which limits to send now:
- a decrease goes out at once, whatever its size: the fuse comes first;
- an increase waits until the connector's last change is `change_interval` old
  (a wallbox changes its pilot signal about once per 5 s) and until every
  decrease sent on the site has had `follow_time` to take hold (a car has 5 s
  to follow a lower limit), and is only sent when it is worth at least the
  hysteresis step, so currents do not chatter with every base-load flicker;
- with `paced=False` the caller checks increases itself against what the
  cars may draw at worst (`fit`): then an increase waits only for a decrease
  that leaves too little room, not for every decrease on the site;
- an increase goes no higher than the `aimed` limit, when given: the
  allocation with the estimate as it may be by the car's next samples (a
  sample's least fades with time), so a limit just raised is not lowered
  again by the estimate's own drift;
- an increase smaller than the hysteresis step is owed, not lost: it goes out
  once the connector's limit is `owed_after` old (10 s), so a car lowered by
  a few tenths at a time (the building's flicker, the estimate's fade) while
  small rises are held back is not ratcheted down to the lowest its decision
  touched (waiting for the renewal, 60 s: on the working day `fair` gave
  1.3 kWh more at 10 s, 1.2 at 20 s, 1.1 at 30 s, for 33 %, 20 % and 12 % more
  profiles; `scheduled` 1.8 kWh more at 10 s than at 20 s);
- an increase from a limit the car cannot charge at (below its minimum) is
  always worth sending;
- a limit is renewed before its TxProfile runs out (the dead man's switch: a
  controller that hangs stops renewing, and the charger falls back to its
  TxDefaultProfile, the safe share, on its own).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime

from edge.clock import iso
from edge.dlm.model import Decision, EvseKey, Resource
from edge.stations.model import WHOLE_STATION, ChargingLimit, LimitPurpose

TX_DEFAULT_PROFILE_ID = 1
# TxProfiles use one id per connector, so a new one replaces the last.
TX_PROFILE_ID_BASE = 100
NOMINAL_VOLTAGE = 230.0


@dataclass(frozen=True)
class Held:
    """The limit a connector's charger holds from us."""

    limit: float
    phases: int
    transaction_id: int
    sent_at: float          # monotonic
    expires_at: float       # monotonic: the TxProfile's end
    # Since when the change interval counts for the next increase (None: `sent_at`), and whether
    # this limit is an increase `fit` cut short: held_after.
    changed_at: float | None = None
    cut: bool = False

    @property
    def paced_from(self) -> float:
        return self.sent_at if self.changed_at is None else self.changed_at


@dataclass(frozen=True)
class Timing:
    hysteresis: float = 1.0
    change_interval: float = 5.0
    follow_time: float = 5.0
    duration: float = 120.0
    owed_after: float = 10.0    # s: a small increase goes out once the limit is this old

    @property
    def renew_before(self) -> float:
        # Renew at half time: one lost or late renewal still leaves time for the next.
        return self.duration / 2


@dataclass(frozen=True)
class Order:
    key: EvseKey
    limit: float
    phases: int
    transaction_id: int
    kind: str               # decrease | increase | renew
    reason: str
    cut: bool = False       # an increase `fit` cut to what fits with every car at its most


def plan(decisions: dict[EvseKey, Decision], transactions: dict[EvseKey, int], held: dict[EvseKey, Held],
         safe_share: dict[EvseKey, float], now: float, last_decrease_at: float, timing: Timing,
         minimums: dict[EvseKey, float] | None = None, aimed: dict[EvseKey, float] | None = None,
         paced: bool = True) -> list[Order]:
    """The SetChargingProfile requests to send now, decreases first. `paced`: increases wait
    until every decrease on the site had `follow_time` (False: the caller fits them, `fit`)."""
    minimums = minimums or {}
    aimed = aimed or {}
    orders: list[Order] = []
    increases_allowed = not paced or now - last_decrease_at >= timing.follow_time
    for key, tx in sorted(transactions.items()):
        decision = decisions.get(key)
        if decision is None:
            continue
        target = decision.limit
        current = held.get(key)
        if current is not None and current.transaction_id != tx:
            current = None
        # Until our first TxProfile, the charger runs on its TxDefaultProfile.
        in_force = current.limit if current else safe_share.get(key, 0.0)
        phases_change = current is not None and current.phases != decision.phases and target <= in_force
        if target < in_force - 1e-9 or (current is None and target <= in_force) or phases_change:
            orders.append(Order(key, target, decision.phases, tx, "decrease", decision.reason))
            continue
        target = min(target, aimed.get(key, target))
        rise = target - in_force
        if rise > 1e-9 and increases_allowed and (current is None or now - current.paced_from >= timing.change_interval):
            stuck = in_force < minimums.get(key, 0.0) - 1e-9 or in_force == 0
            owed = current is not None and now - current.sent_at >= timing.owed_after
            if rise >= timing.hysteresis - 1e-9 or stuck or current is None or owed:
                orders.append(Order(key, target, decision.phases, tx, "increase", decision.reason))
                continue
        if current is not None and current.expires_at - now <= timing.renew_before:
            orders.append(Order(key, current.limit, current.phases, tx, "renew", "renewing the limit"))
    if paced and any(o.kind == "decrease" for o in orders):
        # The cars being lowered need their follow time before anyone is raised.
        orders = [o for o in orders if o.kind != "increase"]
    orders.sort(key=lambda o: (("decrease", "renew", "increase").index(o.kind), o.key))
    return orders


def held_after(order: Order, previous: Held | None, sent_at: float, expires_at: float,
               default: float | None = None) -> Held:
    """The limit a connector holds once its charger accepted `order`, sent at `sent_at`. An
    increase `fit` cut short (a car lowered within its follow time still counted at its old
    limit) does not restart the change interval: the rest follows as soon as that room is free,
    not a whole interval later (a car started at 6.4 A waited 5 s for its 12 A in the real-time
    `second_step`, and a car at 7 A for 13 A in `step_in_ramp`). Only once: the increase after a
    cut one restarts it, whatever it is. A renewal changes nothing, nor does a session's first
    limit when it is the one the charger's default profile (`default`) held already: the car's
    pilot did not change (a car arriving at a full site is held at 0 A by both, and once room
    came it waited 5 s more for nothing: the real-time `phases`)."""
    mine = previous if previous is not None and previous.transaction_id == order.transaction_id else None
    if order.kind == "renew" and mine is not None:
        return Held(order.limit, order.phases, order.transaction_id, sent_at, expires_at, mine.paced_from, mine.cut)
    if mine is None and default is not None and abs(order.limit - default) < 1e-9:
        return Held(order.limit, order.phases, order.transaction_id, sent_at, expires_at, -math.inf)
    if order.kind == "increase" and order.cut and (mine is None or not mine.cut):
        return Held(order.limit, order.phases, order.transaction_id, sent_at, expires_at,
                    -math.inf if mine is None else mine.paced_from, True)
    return Held(order.limit, order.phases, order.transaction_id, sent_at, expires_at)


def fit(orders: list[Order], room: dict[Resource, float], most: dict[EvseKey, dict[Resource, float]],
        in_force: dict[EvseKey, float], minimums: dict[EvseKey, float], timing: Timing) -> list[Order]:
    """The orders with each increase cut to what fits with every car at the most it may draw.

    `room`: per circuit phase, limit - margin - building load (from the least the cars draw) -
    reserved - the most every steered car may draw now (a car lowered within its follow time
    still at its old limit); `most`: per car, the most it may draw on each circuit phase it
    uses. An increase raises what a car may draw at once, so it must fit in that room: then
    no phase can go over its limit even if the cars just lowered have not followed yet (the
    check that replaces waiting `follow_time` after every decrease on the site). Increases
    are fitted in turn, cars held below their minimum first. A cut increase still has to be
    worth sending (the hysteresis step, or it lets a car at its minimum charge); one that
    cannot reach the car's minimum is not sent. Decreases and renewals pass as they are."""
    room = dict(room)
    out = [o for o in orders if o.kind != "increase"]
    increases = sorted((o for o in orders if o.kind == "increase"),
                       key=lambda o: (in_force.get(o.key, 0.0) >= minimums.get(o.key, 0.0), o.key))
    for order in increases:
        uses = most.get(order.key, {})
        if not uses:
            continue
        top = min(room[r] + m for r, m in uses.items())
        limit = min(order.limit, math.floor(top * 10 + 1e-6) / 10)
        before = in_force.get(order.key, 0.0)
        minimum = minimums.get(order.key, 0.0)
        if limit <= before + 1e-9 or limit < minimum - 1e-9:
            continue
        if limit < order.limit - 1e-9 and limit - before < timing.hysteresis - 1e-9 and before >= minimum - 1e-9:
            continue
        for r, m in uses.items():
            room[r] -= max(0.0, limit - m)
        out.append(order if limit >= order.limit - 1e-9 else replace(order, limit=limit, cut=True))
    out.sort(key=lambda o: (("decrease", "renew", "increase").index(o.kind), o.key))
    return out


def soften(orders: list[Order], sharing: dict[EvseKey, float], in_force: dict[EvseKey, float],
           held: dict[EvseKey, Held], room: dict[Resource, float], uses: dict[EvseKey, list[Resource]],
           timing: Timing) -> list[Order]:
    """The orders with each decrease raised toward `sharing` (what the allocation gives each car
    with every car at the least it was known to draw before the decreases it may still be
    following), never above the limit in force, kept there when less than the hysteresis step
    below it; but only if the limits then in force fit `room` (per circuit phase, what the
    steered cars may take with the building at its most) on every circuit phase each car `uses`,
    else the orders as they are. `in_force`: every steered car with a session, the highest limit
    its charger may apply now. Increases are not counted: `fit` sent them only where they fit
    with every car at the most it may draw, which is at least the limit it holds."""
    softer: dict[EvseKey, float] = {}
    for order in orders:
        key, mine = order.key, held.get(order.key)
        if (order.kind != "decrease" or key not in sharing or key not in in_force or mine is None
                or mine.transaction_id != order.transaction_id or mine.phases != order.phases):
            continue
        limit = min(in_force[key], max(order.limit, sharing[key]))
        if in_force[key] - limit < timing.hysteresis - 1e-9:
            limit = in_force[key]       # not worth a change of the pilot, nor another follow time
        if limit > order.limit + 1e-9:
            softer[key] = limit
    if not softer:
        return orders
    left = dict(room)
    after = dict(in_force)
    after.update({o.key: softer.get(o.key, o.limit) for o in orders if o.kind == "decrease"})
    for key, amps in after.items():
        for r in uses.get(key, ()):
            if r in left:
                left[r] -= amps
    if any(v < -1e-6 for v in left.values()):
        return orders
    out = []
    for order in orders:
        if order.key in softer:
            if softer[order.key] >= in_force[order.key] - 1e-9:
                continue
            order = replace(order, limit=softer[order.key])
        out.append(order)
    return out


def _schedule(limit: float, phases: int, unit: str) -> dict:
    period: dict = {"startPeriod": 0, "numberPhases": phases}
    if unit == "W":
        period["limit"] = round(limit * NOMINAL_VOLTAGE * phases, 1)
    else:
        period["limit"] = round(limit, 1)
    return {"chargingRateUnit": unit, "chargingSchedulePeriod": [period]}


def tx_profile(order: Order, *, start: datetime, duration: int, stack_level: int, unit: str = "A") -> dict:
    """OCPP 1.6 SetChargingProfile parameters (camelCase) for a running session: what the load manager sent
    before it spoke StationControl (it sends `tx_limit` now). Kept as the reference the 1.6 adapter's
    wording of `tx_limit` is pinned to, byte for byte (tests/edge/dlm/test_limits_on_the_wire.py)."""
    schedule = _schedule(order.limit, order.phases, unit)
    schedule.update(duration=duration, startSchedule=iso(start))
    return {"connectorId": order.key[1], "csChargingProfiles": {
        "chargingProfileId": TX_PROFILE_ID_BASE + order.key[1], "transactionId": order.transaction_id,
        "stackLevel": stack_level, "chargingProfilePurpose": "TxProfile", "chargingProfileKind": "Absolute",
        "chargingSchedule": schedule}}


def tx_default_profile(limit: float, phases: int, *, stack_level: int, unit: str = "A") -> dict:
    """The per-connector fallback, on connector 0 so every connector gets it, as OCPP 1.6 parameters: the
    reference for `default_limit`'s 1.6 wording, as `tx_profile` is for `tx_limit`."""
    return {"connectorId": 0, "csChargingProfiles": {
        "chargingProfileId": TX_DEFAULT_PROFILE_ID, "stackLevel": stack_level,
        "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Relative",
        "chargingSchedule": _schedule(limit, phases, unit)}}


def tx_limit(order: Order, *, start: datetime, duration: int, stack_level: int, unit: str = "A") -> ChargingLimit:
    """A running session's limit in domain words, for StationControl.set_charging_limit: one profile per
    connector (a new one replaces the last), Absolute from `start` for `duration` s (the dead man's switch);
    the adapter names the transaction as the station knows it (2.0.1: its transactionId)."""
    return ChargingLimit(profile_id=TX_PROFILE_ID_BASE + order.key[1], purpose=LimitPurpose.TX, limit=order.limit,
                         stack_level=stack_level, evse=order.key[1], phases=order.phases,
                         transaction_id=order.transaction_id, unit=unit, start=start, duration_s=duration)


def default_limit(limit: float, phases: int, *, stack_level: int, unit: str = "A") -> ChargingLimit:
    """The fallback for every EVSE (EVSE 0, Relative: from each session's start, until replaced): what a
    car may draw when the controller is not there to say more."""
    return ChargingLimit(profile_id=TX_DEFAULT_PROFILE_ID, purpose=LimitPurpose.TX_DEFAULT, limit=limit,
                         stack_level=stack_level, evse=WHOLE_STATION, phases=phases, unit=unit)
