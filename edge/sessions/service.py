"""Sessions: the edge side of OCPP transactions.

Every method journals first and returns after the commit, so the OCPP layer
answers the charger only once the record is on disk.
"""

from __future__ import annotations

import logging
from typing import Any

from edge.auth import AuthDecision, TagPolicy, decide
from edge.clock import Clock
from edge.events import Event, EventBus
from edge.journal import Journal, StopOutcome, Store
from edge.sessions.meter_values import parse_meter_values

log = logging.getLogger(__name__)


class Sessions:
    def __init__(self, journal: Journal, bus: EventBus, clock: Clock, tag_policy: TagPolicy):
        self._journal = journal
        self._bus = bus
        self._clock = clock
        self._policy = tag_policy
        # transaction id -> (charger id, connector id) for running sessions;
        # MeterValues name a transaction and must belong to the charger sending them.
        self._active: dict[int, tuple[str, int]] = {}

    async def load(self) -> None:
        for row in await self._journal.read(Store.active_transactions):
            self._active[row["id"]] = (row["charger_id"], row["connector_id"])

    def active(self) -> dict[int, tuple[str, int]]:
        return dict(self._active)

    def authorize(self, charger_id: str, id_tag: str) -> AuthDecision:
        decision = decide(id_tag, self._policy)
        log.info("authorize charger=%s tag=%s status=%s reason=%r", charger_id, id_tag, decision.status, decision.reason)
        return decision

    async def start(self, charger_id: str, connector_id: int, id_tag: str, meter_start: int, timestamp: str,
                    reservation_id: int | None) -> tuple[int, AuthDecision]:
        decision = self.authorize(charger_id, id_tag)
        at = self._clock.now_iso()
        outcome = await self._journal.write(
            Store.start_transaction, charger_id, connector_id, id_tag, decision.status, meter_start, timestamp,
            reservation_id, at)
        tx = outcome.transaction_id
        if outcome.is_retry:
            log.info("start retry charger=%s connector=%s transaction=%s (same id returned)", charger_id, connector_id, tx)
        else:
            self._active[tx] = (charger_id, connector_id)
            self._bus.publish(Event("transaction.started", charger_id, at, {
                "transaction_id": tx, "connector_id": connector_id, "id_tag": id_tag,
                "meter_start": meter_start, "timestamp": timestamp, "auth_status": decision.status}))
            log.info("transaction started charger=%s connector=%s transaction=%s tag=%s auth=%s",
                     charger_id, connector_id, tx, id_tag, decision.status)
        return tx, decision

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
                "meter_stop": meter_stop, "timestamp": timestamp, "reason": reason}))
        log.info("stop transaction charger=%s transaction=%s outcome=%s reason=%s",
                 charger_id, transaction_id, outcome.kind, reason)
        return outcome, (self.authorize(charger_id, id_tag) if id_tag else None)

    async def meter_values(self, charger_id: str, connector_id: int, transaction_id: int | None,
                           meter_value: list[dict[str, Any]]) -> list[str]:
        at = self._clock.now_iso()
        problems: list[str] = []
        if transaction_id is not None and self._active.get(transaction_id) != (charger_id, connector_id):
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
