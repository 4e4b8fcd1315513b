"""Sessions: the edge side of OCPP transactions.

Every method journals first and returns after the commit, so the OCPP layer
answers the charger only once the record is on disk.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from edge.auth import AuthDecision
from edge.auth.authorizer import Authorizer
from edge.clock import Clock, parse_iso
from edge.events import Event, EventBus
from edge.journal import Journal, StopOutcome, Store
from edge.sessions.meter_values import parse_meter_values

log = logging.getLogger(__name__)

# A StartTransaction whose start time is this much older than its arrival was
# queued by a charger that could not reach us.
LATE_AFTER_S = 60.0


@dataclass(frozen=True)
class StartResult:
    transaction_id: int
    id_tag_info: dict
    remote_stop: bool      # the site's policy wants this session stopped


class Sessions:
    def __init__(self, journal: Journal, bus: EventBus, clock: Clock, authorizer: Authorizer,
                 unauthorized_start: str = "stop", free_vend_id_tag: str = "FREEVEND"):
        self.unauthorized_start = unauthorized_start
        self.free_vend_id_tag = free_vend_id_tag
        self._journal = journal
        self._bus = bus
        self._clock = clock
        self.authorizer = authorizer
        # transaction id -> (charger id, connector id, id tag) for running sessions;
        # MeterValues name a transaction and must belong to the charger sending them.
        self._active: dict[int, tuple[str, int, str]] = {}

    async def load(self) -> None:
        for row in await self._journal.read(Store.active_transactions):
            self._active[row["id"]] = (row["charger_id"], row["connector_id"], row["id_tag"])

    def active(self) -> dict[int, tuple[str, int, str]]:
        return dict(self._active)

    def _running(self, except_tx: int | None = None) -> dict[str, tuple[str, int]]:
        return self.authorizer.running_map(
            (tag, charger, connector) for tx, (charger, connector, tag) in self._active.items() if tx != except_tx)

    async def authorize(self, charger_id: str, id_tag: str, connector_id: int | None = None,
                        method: str = "rfid") -> AuthDecision:
        decision = await self.authorizer.decide(charger_id=charger_id, connector_id=connector_id, id_tag=id_tag,
                                                method=method, running=self._running())
        if method == "rfid":
            # A driver tapped a card (OCPP Authorize): a start should follow (see edge.cdr.watch).
            self._bus.publish(Event("token.authorized", charger_id, self._clock.now_iso(), {
                "id_tag": id_tag, "status": decision.status, "user_group": decision.user_group}))
        return decision

    async def start(self, charger_id: str, connector_id: int, id_tag: str, meter_start: int, timestamp: str,
                    reservation_id: int | None) -> StartResult:
        """A StartTransaction always gets a transaction id (OCPP). One whose token
        is not Accepted (typically started offline from the charger's own list,
        arriving late) is recorded and flagged, and the site's policy says
        whether it is stopped remotely or left to finish."""
        method = "free-vend" if id_tag == self.free_vend_id_tag else "start"
        decision = await self.authorize(charger_id, id_tag, connector_id, method)
        at = self._clock.now_iso()
        flag = None
        if decision.status != "Accepted":
            started = parse_iso(timestamp)
            late = started is not None and (self._clock.now() - started).total_seconds() > LATE_AFTER_S
            flag = (f"started {'late (charger offline?) ' if late else ''}with token {decision.status}: "
                    f"{decision.reason}; policy: {self.unauthorized_start}")
        outcome = await self._journal.write(
            Store.start_transaction, charger_id, connector_id, id_tag, decision.status, meter_start, timestamp,
            reservation_id, at, decision.user_group, flag)
        tx = outcome.transaction_id
        if outcome.is_retry:
            log.info("start retry charger=%s connector=%s transaction=%s (same id returned)", charger_id, connector_id, tx)
        else:
            self._active[tx] = (charger_id, connector_id, id_tag)
            self._bus.publish(Event("transaction.started", charger_id, at, {
                "transaction_id": tx, "connector_id": connector_id, "id_tag": id_tag,
                "meter_start": meter_start, "timestamp": timestamp, "auth_status": decision.status,
                "user_group": decision.user_group}))
            log.info("transaction started charger=%s connector=%s transaction=%s tag=%s auth=%s",
                     charger_id, connector_id, tx, id_tag, decision.status)
        if flag:
            log.warning("transaction flagged charger=%s transaction=%s: %s", charger_id, tx, flag)
        if flag and self.unauthorized_start == "finish":
            # Let it finish: answer Accepted so the charger does not stop it itself.
            return StartResult(tx, {**decision.id_tag_info(), "status": "Accepted"}, remote_stop=False)
        return StartResult(tx, decision.id_tag_info(), remote_stop=flag is not None)

    async def stop(self, charger_id: str, transaction_id: int, meter_stop: int, timestamp: str,
                   reason: str | None, id_tag: str | None,
                   transaction_data: list[dict[str, Any]] | None) -> tuple[StopOutcome, AuthDecision | None]:
        at = self._clock.now_iso()
        owner = self._active.get(transaction_id)
        matched = owner is not None and owner[0] == charger_id
        samples, problems = parse_meter_values(
            owner[1] if matched else 0, transaction_id if matched else None, transaction_data or [], at)
        for problem in problems:
            log.warning("stop transaction data charger=%s transaction=%s: %s", charger_id, transaction_id, problem)
        outcome = await self._journal.write(
            _stop, charger_id, transaction_id, meter_stop, timestamp, reason, id_tag, at, samples if matched else [])
        if outcome.kind == "stopped":
            self._active.pop(transaction_id, None)
            self._bus.publish(Event("transaction.stopped", charger_id, at, {
                "transaction_id": transaction_id, "connector_id": owner[1] if owner else None,
                "meter_stop": meter_stop, "timestamp": timestamp, "reason": reason, "id_tag": id_tag}))
        log.info("stop transaction charger=%s transaction=%s outcome=%s reason=%s",
                 charger_id, transaction_id, outcome.kind, reason)
        decision = None
        if id_tag:
            decision = await self.authorizer.decide(charger_id=charger_id, connector_id=owner[1] if matched else None,
                                                    id_tag=id_tag, method="stop", running=None)
        return outcome, decision

    async def close(self, transaction_id: int, meter_stop: int, stop_time: str, why: str) -> bool:
        """End a session the charger never stopped, from its last known values
        (it went silent, or rebooted and forgot it). False if it had ended already."""
        at = self._clock.now_iso()
        if not await self._journal.write(Store.close_transaction, transaction_id, meter_stop, stop_time, at, why):
            return False
        owner = self._active.pop(transaction_id, None)
        self._bus.publish(Event("transaction.stopped", owner[0] if owner else "", at, {
            "transaction_id": transaction_id, "connector_id": owner[1] if owner else None, "meter_stop": meter_stop,
            "timestamp": stop_time, "reason": "Other", "id_tag": None, "closed_by_edge": why}))
        log.warning("transaction closed by the edge transaction=%s meter_stop=%s: %s", transaction_id, meter_stop, why)
        return True

    async def meter_values(self, charger_id: str, connector_id: int, transaction_id: int | None,
                           meter_value: list[dict[str, Any]]) -> list[str]:
        at = self._clock.now_iso()
        problems: list[str] = []
        if transaction_id is not None and self._active.get(transaction_id, ())[:2] != (charger_id, connector_id):
            problems.append(f"transactionId {transaction_id} is not running on connector {connector_id} of this charger;"
                            " samples kept without a transaction")
            transaction_id = None
        samples, parse_problems = parse_meter_values(connector_id, transaction_id, meter_value, at)
        problems += parse_problems
        if samples:
            await self._journal.write(Store.record_samples, charger_id, samples, at)
            self._bus.publish(Event("meter.values", charger_id, at, {
                "connector_id": connector_id, "transaction_id": transaction_id, "samples": samples}))
        for problem in problems:
            log.warning("meter values charger=%s: %s", charger_id, problem)
        return problems


def _stop(store: Store, charger_id: str, transaction_id: int, meter_stop: int, timestamp: str, reason: str | None,
          id_tag: str | None, at: str, samples: list) -> StopOutcome:
    # The stop and its transactionData land in the same commit.
    outcome = store.stop_transaction(charger_id, transaction_id, meter_stop, timestamp, reason, id_tag, at)
    if outcome.kind == "stopped" and samples:
        store.record_samples(charger_id, samples, at)
    return outcome
