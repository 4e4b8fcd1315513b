"""The bridge's state between the wallbox and the edge, and what follows from it.

Synchronous and without I/O but its store: the wallbox loop feeds it
readings (`observe`), the OCPP handlers feed it the edge's requests; both
then ask it what to do (`command` for the wallbox, `status` and the queued
messages for the edge). The decisions themselves are in
`firmware_bridge.decisions`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping

from edge.clock import Clock, iso, parse_iso
from firmware_bridge import decisions, metering
from firmware_bridge.config import BridgeConfig
from firmware_bridge.drivers.base import Identity, Pilot, WallboxState
from firmware_bridge.ocpp_keys import OcppKeys
from firmware_bridge.smart_charging import ChargingProfiles
from firmware_bridge.store import OpenTransaction, Store
from simulator import profiles

log = logging.getLogger(__name__)


class Signal:
    """Wakes everyone who subscribed; each subscriber clears its own event before looking."""

    def __init__(self) -> None:
        self._events: list[asyncio.Event] = []

    def subscribe(self) -> asyncio.Event:
        event = asyncio.Event()
        self._events.append(event)
        return event

    def unsubscribe(self, event: asyncio.Event) -> None:
        self._events.remove(event)

    def fire(self) -> None:
        for event in self._events:
            event.set()


@dataclass(frozen=True)
class PendingStart:
    """A remote start waiting for the vehicle to be plugged in."""

    id_tag: str
    expires: float  # monotonic seconds
    profile: Mapping[str, Any] | None = None


class Controller:
    def __init__(self, config: BridgeConfig, store: Store, clock: Clock) -> None:
        self.config, self.store, self.clock = config, store, clock
        self.keys = OcppKeys(store, meter_interval=config.metering.interval)
        self.profiles = ChargingProfiles(store)
        self.changed = Signal()              # anything the edge may want to hear about
        self.attention = asyncio.Event()     # the wallbox's settings may have to change
        self.operative: bool = store.setting("operative", True)
        self.scheduled_operative: bool | None = None  # applied when the running transaction ends
        self.transaction: OpenTransaction | None = store.open_transaction()
        self.pending: PendingStart | None = None
        self.stop_reason: str | None = None
        self.finishing = False
        self.reading: WallboxState | None = None
        self.identity: Identity | None = None
        self.link_problem: str | None = None  # the wallbox has not answered for a while: why
        self.online = False                   # connected to the edge and booted
        self.boot_pending = True              # a BootNotification is due (start, Reset)
        self.restart_wallbox = False
        self.max_current = config.wallbox.max_current
        self._last_meter: float | None = None
        if self.transaction:
            log.info("resuming transaction %s (local %d) of %s", self.transaction.transaction_id,
                     self.transaction.local_id, self.transaction.id_tag)

    def poke(self) -> None:
        """The wallbox loop should look again now, not at its next poll."""
        self.attention.set()
        self.changed.fire()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float | None) -> None:
        async def until() -> None:
            event = self.changed.subscribe()
            try:
                while not predicate():
                    event.clear()
                    await event.wait()
            finally:
                self.changed.unsubscribe(event)
        await asyncio.wait_for(until(), timeout)

    # ---- from the wallbox ----------------------------------------------------------------

    def wallbox_connected(self, identity: Identity) -> None:
        self.identity = identity
        hardware = identity.max_current or self.config.wallbox.max_current
        self.max_current = min(self.config.wallbox.max_current, hardware)
        if self.max_current < self.config.wallbox.max_current:
            log.warning("the wallbox allows only %s A; max_current %s A in the config is not reached",
                        hardware, self.config.wallbox.max_current)
        self.changed.fire()

    def wallbox_unreachable(self, problem: str, failures: int) -> None:
        if failures >= self.config.wallbox.fault_after and self.link_problem != problem:
            if self.link_problem is None:
                log.error("wallbox unreachable after %d attempts: %s", failures, problem)
            self.link_problem = problem
            self.changed.fire()

    def observe(self, state: WallboxState) -> None:
        """A fresh reading: start or stop the transaction, queue meter values."""
        if self.link_problem is not None:
            log.info("wallbox answers again")
        self.reading, self.link_problem = state, None
        now = self.clock.monotonic()
        if self.pending is not None and now >= self.pending.expires and not state.pilot.plugged:
            log.info("remote start for %s expired: no vehicle plugged in", self.pending.id_tag)
            self.pending = None
        if state.pilot == Pilot.A:
            self.finishing = False
        # A faulted wallbox cannot charge: an authorized start waits for the fault to clear.
        ready = self.pending is not None and state.fault is None
        step = decisions.transaction_step(
            pilot=state.pilot, transaction=self.transaction is not None,
            authorized_tag=self.pending.id_tag if ready and self.pending else None, stop_reason=self.stop_reason)
        if isinstance(step, decisions.Start):
            self._start(step.id_tag, state)
        elif isinstance(step, decisions.Stop):
            self._stop(step.reason, state)
        elif (self.transaction and state.pilot != Pilot.UNKNOWN  # a board starting up has no session to count
              and decisions.meter_due(self._last_meter, now, self.keys.number("MeterValueSampleInterval"))):
            self._last_meter = now
            self.store.enqueue("MeterValues", {"connector_id": 1, "meter_value": [
                self.meter_value(state, "Sample.Periodic")]}, self.transaction.local_id)
        self.changed.fire()

    def meter_value(self, state: WallboxState, context: str) -> dict:
        wallbox = self.config.wallbox
        return metering.meter_value(self.clock.now(), state, phases=wallbox.phases,
                                    nominal_voltage=wallbox.nominal_voltage, context=context)

    def _start(self, id_tag: str, state: WallboxState) -> None:
        started_at = iso(self.clock.now())
        local_id = self.store.start_transaction(id_tag, state.energy_wh, started_at, connector_id=1)
        self.transaction = OpenTransaction(local_id, id_tag, state.energy_wh, started_at, None)
        profile = self.pending.profile if self.pending else None
        self.pending, self.finishing, self._last_meter = None, False, self.clock.monotonic()
        log.info("transaction started (local %d) for %s at %d Wh", local_id, id_tag, state.energy_wh)
        if profile is not None:
            self.set_charging_profile(1, profile)

    def _stop(self, reason: str, state: WallboxState) -> None:
        tx = self.transaction
        assert tx is not None
        self.store.stop_transaction(tx.local_id, state.energy_wh, iso(self.clock.now()), reason)
        self.transaction, self.stop_reason, self.finishing = None, None, state.pilot.plugged
        self.profiles.end_of_transaction()
        if self.scheduled_operative is not None:
            self._set_operative(self.scheduled_operative)
            self.scheduled_operative = None
        self.store.forget_old_transactions()
        log.info("transaction %s stopped (%s) at %d Wh, %d Wh charged", tx.transaction_id, reason,
                 state.energy_wh, state.energy_wh - tx.meter_start)

    # ---- what the wallbox should do, what the edge hears ------------------------------------

    def tx_ref(self) -> profiles.TxRef | None:
        tx = self.transaction
        started = parse_iso(tx.started_at) if tx else None
        return profiles.TxRef(started, tx.transaction_id) if tx and started else None

    def command(self) -> decisions.WallboxCommand:
        wallbox = self.config.wallbox
        limit = None
        if self.transaction is not None:
            limit = self.profiles.limit(self.clock.now(), self.tx_ref(), voltage=wallbox.nominal_voltage,
                                        phases=wallbox.phases)
        return decisions.wallbox_command(operative=self.operative, transaction=self.transaction is not None,
                                         limit=limit, online=self.online, default_current=wallbox.default_current,
                                         max_current=self.max_current)

    def status(self) -> decisions.ConnectorStatus:
        r = self.reading
        return decisions.connector_status(
            pilot=r.pilot if r else None, mode=r.mode if r else None, fault=r.fault if r else None,
            link_problem=self.link_problem, operative=self.operative, transaction=self.transaction is not None,
            finishing=self.finishing, pending_start=self.pending is not None)

    def charge_point_status(self) -> decisions.ConnectorStatus:
        return decisions.charge_point_status(link_problem=self.link_problem, operative=self.operative)

    def set_online(self, online: bool) -> None:
        if online != self.online:
            log.info("edge %s", "online" if online else "offline: wallbox falls back to its default current")
            self.online = online
            self.poke()

    # ---- the edge's requests (from the OCPP handlers) ------------------------------------------

    def can_start(self) -> bool:
        return (self.transaction is None and self.operative and self.link_problem is None
                and not (self.reading and self.reading.fault))

    def authorize(self, id_tag: str, profile: Mapping[str, Any] | None = None) -> None:
        """A remote start: the transaction begins once a vehicle is (or is already) plugged in."""
        timeout = self.keys.number("ConnectionTimeOut")
        self.pending = PendingStart(id_tag, self.clock.monotonic() + timeout, profile)
        self.poke()

    def is_running(self, transaction_id: int) -> bool:
        return self.transaction is not None and self.transaction.transaction_id == transaction_id

    def request_stop(self, reason: str) -> None:
        if self.transaction is not None:
            self.stop_reason = reason
        self.poke()

    def started(self, local_id: int, transaction_id: int | None, status: str) -> None:
        """The edge's answer to a StartTransaction (transaction_id None: it refused the message)."""
        if transaction_id is not None:
            self.store.set_transaction_id(local_id, transaction_id)
        tx = self.transaction
        if tx is not None and tx.local_id == local_id:
            self.transaction = replace(tx, transaction_id=transaction_id)
            if transaction_id is not None:
                self.profiles.for_transaction(transaction_id)
            if status != "Accepted" and self.keys.flag("StopTransactionOnInvalidId"):
                log.warning("the edge answered %s for %s: stopping the transaction", status, tx.id_tag)
                self.request_stop("DeAuthorized")
        self.changed.fire()

    def change_availability(self, connector_id: int, operative: bool) -> str:
        if connector_id not in (0, 1):
            return "Rejected"
        if self.transaction is not None and not operative:
            self.scheduled_operative = False
            return "Scheduled"
        self.scheduled_operative = None
        self._set_operative(operative)
        return "Accepted"

    def _set_operative(self, operative: bool) -> None:
        self.operative = operative
        self.store.put_setting("operative", operative)

    def set_charging_profile(self, connector_id: int, data: Mapping[str, Any]) -> str:
        tx = self.transaction
        return self.profiles.install(connector_id, data, received=self.clock.now(),
                                     transaction_id=tx.transaction_id if tx else None, in_transaction=tx is not None)
