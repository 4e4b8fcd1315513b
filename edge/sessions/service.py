"""Sessions: the edge side of OCPP transactions.

Every method journals first and returns after the commit, so the OCPP layer
answers the charger only once the record is on disk; each message costs one
commit (the authorization record of a StartTransaction or StopTransaction is
written in the same one). Which transactions a charger runs is decided by
`Connectors` (edge.sessions.connector) from everything the chargers say;
this service feeds it, journals what it decides and tells the bus, always
after the commit.

Events published: transaction.started (with `runs`: whether the charger runs
it, and `answered`: the status it was given), transaction.running (a refused
start the charger proved it runs), transaction.stopped (the charger's stop or
a close by the edge: `closed_by_edge` says why, `ended` how for closes decided
here), transaction.corrected (the charger's own data for a transaction the
edge had closed: `why` is "late StopTransaction" or "late MeterValues"),
meter.values.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any, Sequence

from edge.auth import AuthDecision
from edge.auth.authorizer import Authorization, Authorizer
from edge.cdr.energy import last_known
from edge.cdr.record import ENERGY, readings
from edge.clock import Clock, iso, parse_iso
from edge.events import Event, EventBus
from edge.journal import Journal, Sample, StopOutcome, Store
from edge.sessions.connector import (Close, Closed, Connectors, Decision, Metered, Proven, Session, Started,
                                     Status, Stopped, start_answer, superseded)

log = logging.getLogger(__name__)

# A StartTransaction whose start time is this much older than its arrival was
# queued by a charger that could not reach us.
LATE_AFTER_S = 60.0

LATE_STOP = "late StopTransaction"
LATE_VALUES = "late MeterValues"


@dataclass(frozen=True)
class StartResult:
    transaction_id: int
    decision: AuthDecision
    answered: str          # the status the charger is told (Accepted for a flagged start the site lets finish)
    remote_stop: bool      # the site's policy wants this session stopped


@dataclass(frozen=True)
class Ending:
    """Where a session the charger did not stop is closed: its last known values."""
    transaction_id: int
    meter_stop: int
    stop_time: str
    why: str


class Sessions:
    def __init__(self, journal: Journal, bus: EventBus, clock: Clock, authorizer: Authorizer,
                 unauthorized_start: str = "stop", free_vend_id_tag: str = "FREEVEND"):
        self.unauthorized_start = unauthorized_start
        self.free_vend_id_tag = free_vend_id_tag
        self._journal = journal
        self._bus = bus
        self._clock = clock
        self.authorizer = authorizer
        self.connectors = Connectors()

    async def load(self) -> None:
        rows = await self._journal.read(Store.active_transactions)
        self.connectors = Connectors([_session(row) for row in rows])

    def active(self) -> dict[int, tuple[str, int, str]]:
        """Open transactions (running, or refused and not ended yet): id -> (charger, connector, id tag)."""
        return {tx: (s.charger_id, s.connector_id, s.id_tag) for tx, s in self.connectors.open().items()}

    def running(self) -> dict[int, tuple[str, int, str]]:
        """The transactions chargers run: id -> (charger, connector, id tag)."""
        return {tx: (s.charger_id, s.connector_id, s.id_tag) for tx, s in self.connectors.running().items()}

    def _running_map(self) -> dict[str, tuple[str, int]]:
        # ConcurrentTx counts only what really runs: a refused start is no session.
        return self.authorizer.running_map((tag, charger, connector)
                                           for charger, connector, tag in self.running().values())

    async def authorize(self, charger_id: str, id_tag: str, connector_id: int | None = None,
                        method: str = "rfid") -> AuthDecision:
        decision = await self.authorizer.decide(charger_id=charger_id, connector_id=connector_id, id_tag=id_tag,
                                                method=method, running=self._running_map())
        if method == "rfid":
            # A driver tapped a card (OCPP Authorize): a start should follow (see edge.cdr.watch).
            self._bus.publish(Event("token.authorized", charger_id, self._clock.now_iso(), {
                "id_tag": id_tag, "status": decision.status, "user_group": decision.user_group}))
        return decision

    async def start(self, charger_id: str, connector_id: int, id_tag: str, meter_start: int, timestamp: str,
                    reservation_id: int | None, time_note: str | None = None) -> StartResult:
        """A StartTransaction always gets a transaction id (OCPP). One whose token
        is not Accepted (typically started offline from the charger's own list,
        arriving late) is recorded and flagged, and the site's policy says
        whether it is stopped remotely or left to finish. Whatever was open on
        the connector is closed: the charger started something new there. `time_note`: the
        boundary replaced the charger's time (its clock was not set); the record says so."""
        method = "free-vend" if id_tag == self.free_vend_id_tag else "start"
        authorization = self.authorizer.judge(charger_id=charger_id, connector_id=connector_id, id_tag=id_tag,
                                              method=method, running=self._running_map())
        decision = authorization.decision
        at = self._clock.now_iso()
        flag = None
        if decision.status != "Accepted":
            started = parse_iso(timestamp)
            late = started is not None and (self._clock.now() - started).total_seconds() > LATE_AFTER_S
            flag = (f"started {'late (charger offline?) ' if late else ''}with token {decision.status}: "
                    f"{decision.reason}; policy: {self.unauthorized_start}")
        answered = start_answer(decision.status, self.unauthorized_start)
        # Where the sessions open on this connector end, read before the one commit.
        ends = [await self._ending(s.transaction_id, "") for s in self.connectors.open_on(charger_id, connector_id)]
        stored_flag = "; ".join(note for note in (flag, time_note) if note) or None
        outcome, closed = await self._journal.write(
            _start, authorization, ends, charger_id, connector_id, id_tag, decision.status, meter_start, timestamp,
            reservation_id, at, decision.user_group, stored_flag, answered)
        tx = outcome.transaction_id
        if outcome.is_retry:
            log.info("start retry charger=%s connector=%s transaction=%s (same id returned)",
                     charger_id, connector_id, tx)
            known = self.connectors.get(tx)
            answered = known.answered if known else answered
        else:
            session = Session(tx, charger_id, connector_id, id_tag, meter_start, answered, answered == "Accepted")
            self._publish_closes(self.connectors.apply(Started(session)), closed, at)
            self._bus.publish(Event("transaction.started", charger_id, at, {
                "transaction_id": tx, "connector_id": connector_id, "id_tag": id_tag,
                "meter_start": meter_start, "timestamp": timestamp, "auth_status": decision.status,
                "user_group": decision.user_group, "answered": answered, "runs": session.runs}))
            log.info("transaction started charger=%s connector=%s transaction=%s tag=%s auth=%s runs=%s",
                     charger_id, connector_id, tx, id_tag, decision.status, session.runs)
        if flag:
            log.warning("transaction flagged charger=%s transaction=%s: %s", charger_id, tx, flag)
        if flag and answered == "Accepted":
            # Let it finish: answer Accepted so the charger does not stop it itself.
            return StartResult(tx, decision, "Accepted", remote_stop=False)
        return StartResult(tx, decision, decision.status, remote_stop=flag is not None)

    async def stop(self, charger_id: str, transaction_id: int, meter_stop: int, timestamp: str,
                   reason: str | None, id_tag: str | None, samples: list[Sample],
                   time_note: str | None = None,
                   problems: Sequence[str] = ()) -> tuple[StopOutcome, AuthDecision | None]:
        """The charger's stop. For a transaction the edge closed before
        (it was silent, offline too long, superseded, its connector said
        Available), the charger's own values correct the close: see Store.stop_transaction.
        `samples`: the readings the stop carried (their connector and transaction are set here, from the
        transaction's owner); `problems`: what the adapter could not read of them."""
        at = self._clock.now_iso()
        session = self.connectors.get(transaction_id)
        if session is not None:
            owner: tuple[str, int] | None = session.place
        else:
            owner = await self._journal.read(Store.transaction_owner, transaction_id)
        matched = owner is not None and owner[0] == charger_id
        samples = ([replace(s, connector_id=owner[1], transaction_id=transaction_id) for s in samples]
                   if owner is not None and matched else [])
        for problem in problems:
            log.warning("stop transaction data charger=%s transaction=%s: %s", charger_id, transaction_id, problem)
        authorization = None
        if id_tag:
            authorization = self.authorizer.judge(charger_id=charger_id, connector_id=owner[1] if matched else None,
                                                  id_tag=id_tag, method="stop", running=None)
        outcome = await self._journal.write(
            _stop, authorization, charger_id, transaction_id, meter_stop, timestamp, reason, id_tag, at,
            samples, time_note)
        if outcome.kind == "stopped":
            self.connectors.apply(Stopped(transaction_id))
            self._bus.publish(Event("transaction.stopped", charger_id, at, {
                "transaction_id": transaction_id, "connector_id": owner[1] if owner else None,
                "meter_stop": meter_stop, "timestamp": timestamp, "reason": reason, "id_tag": id_tag}))
        elif outcome.kind == "corrected":
            self._corrected(charger_id, transaction_id, at, LATE_STOP)
        log.info("stop transaction charger=%s transaction=%s outcome=%s reason=%s",
                 charger_id, transaction_id, outcome.kind, reason)
        return outcome, authorization.decision if authorization else None

    async def close(self, transaction_id: int, why: str) -> bool:
        """End a session the charger never stopped, from its last known values
        (it went silent, or rebooted and forgot it). False if it had ended already."""
        ending = await self._ending(transaction_id, why)
        closed = await self._journal.write(_close, [ending], self._clock.now_iso())
        self.connectors.apply(Closed(transaction_id))
        self._publish_closes([], closed, self._clock.now_iso())
        return bool(closed)

    async def connector_status(self, charger_id: str, connector_id: int, status: str) -> None:
        """A StatusNotification, after it is journaled: Available ends what is open on the
        connector, Charging proves a refused start runs."""
        await self._decided(self.connectors.apply(Status(charger_id, connector_id, status)))

    async def meter_values(self, charger_id: str, connector_id: int, transaction_id: int | None,
                           samples: list[Sample], problems: Sequence[str] = ()) -> list[str]:
        """A station's meter samples (read by its adapter; `problems`: what it could not read)."""
        at = self._clock.now_iso()
        problems = list(problems)
        session = self.connectors.get(transaction_id) if transaction_id is not None else None
        is_open = session is not None and session.place == (charger_id, connector_id)
        proven: list[Decision] = []
        if is_open and transaction_id is not None:
            register = _highest_register(samples)
            if register is not None:
                proven = self.connectors.apply(Metered(charger_id, connector_id, transaction_id, register))
        late = False
        if samples or proven:
            late = await self._journal.write(_meter_values, charger_id, connector_id, transaction_id, is_open,
                                             samples, at, [d for d in proven if isinstance(d, Proven)])
        if transaction_id is not None and not is_open and not late:
            problems.append(f"transactionId {transaction_id} is not running on connector {connector_id} of this "
                            "charger; samples kept without a transaction")
        kept_for = transaction_id if is_open or late else None
        if samples:
            self._bus.publish(Event("meter.values", charger_id, at, {
                "connector_id": connector_id, "transaction_id": kept_for,
                "samples": [replace(s, transaction_id=kept_for) for s in samples]}))
        self._publish_proven(proven, charger_id, at)
        if late and transaction_id is not None:
            self._corrected(charger_id, transaction_id, at, LATE_VALUES)
        for problem in problems:
            log.warning("meter values charger=%s: %s", charger_id, problem)
        return problems

    # -- the shell around the connectors' decisions ------------------------------------

    async def _ending(self, transaction_id: int, why: str) -> Ending:
        """The last known values of a session: the latest energy register continuing the rise
        from meterStart (the start itself when there is none); whole Wh, as meterStop is,
        rounded down so nothing unmeasured is billed."""
        tx, samples = await self._journal.read(Store.cdr_source, transaction_id)
        if tx is None:
            return Ending(transaction_id, 0, self._clock.now_iso(), why)
        received = parse_iso(tx["start_received_at"]) or self._clock.now()
        started = min(parse_iso(tx["start_time"]) or received, received)
        at, register = last_known(started, tx["meter_start"], readings(samples, ENERGY))
        return Ending(transaction_id, int(register), iso(at), why)

    async def _decided(self, decisions: list[Decision]) -> None:
        closes = [d for d in decisions if isinstance(d, Close)]
        proofs = [d for d in decisions if isinstance(d, Proven)]
        at = self._clock.now_iso()
        ends = [await self._ending(c.transaction_id, c.why) for c in closes]
        closed = await self._journal.write(_close, ends, at, proofs) if ends or proofs else []
        self._publish_closes(closes, closed, at)
        self._publish_proven(proofs, None, at)

    def _publish_closes(self, closes: list[Decision], closed: list[tuple[str, int, Ending]], at: str) -> None:
        how = {d.transaction_id: d.ended for d in closes if isinstance(d, Close)}
        for charger_id, connector_id, ending in closed:
            self._bus.publish(Event("transaction.stopped", charger_id, at, {
                "transaction_id": ending.transaction_id, "connector_id": connector_id,
                "meter_stop": ending.meter_stop, "timestamp": ending.stop_time, "reason": "Other", "id_tag": None,
                "closed_by_edge": ending.why, "ended": how.get(ending.transaction_id, "closed-by-edge")}))
            log.warning("transaction closed by the edge transaction=%s meter_stop=%s: %s",
                        ending.transaction_id, ending.meter_stop, ending.why)

    def _publish_proven(self, proofs: list[Decision], charger_id: str | None, at: str) -> None:
        for proof in proofs:
            session = self.connectors.get(proof.transaction_id)
            if not isinstance(proof, Proven) or session is None:
                continue
            self._bus.publish(Event("transaction.running", charger_id or session.charger_id, at, {
                "transaction_id": proof.transaction_id, "connector_id": session.connector_id, "why": proof.why}))
            log.warning("transaction runs transaction=%s charger=%s: %s", proof.transaction_id, session.charger_id,
                        proof.why)

    def _corrected(self, charger_id: str, transaction_id: int, at: str, why: str) -> None:
        """After the commit: the charger's own data changed a transaction the edge had closed."""
        self._bus.publish(Event("transaction.corrected", charger_id, at, {"transaction_id": transaction_id,
                                                                          "why": why}))
        log.warning("transaction corrected charger=%s transaction=%s: %s", charger_id, transaction_id, why)


def _session(row: dict[str, Any]) -> Session:
    """An open transaction as the journal keeps it."""
    answered = row.get("answered_status") or row["auth_status"]
    return Session(row["id"], row["charger_id"], row["connector_id"], row["id_tag"], row["meter_start"], answered,
                   answered == "Accepted" or row.get("proven_running") is not None)


def _highest_register(samples: list[Sample]) -> float | None:
    registers = [s.value for s in samples if s.measurand == ENERGY and not s.phase and s.unit in (None, "Wh")
                 and (s.location or "Outlet") == "Outlet"]
    return max(registers, default=None)


# -- journal writes: each runs inside one commit --------------------------------------------

def _close_all(store: Store, ends: list[Ending], at: str) -> list[tuple[str, int, Ending]]:
    closed = []
    for ending in ends:
        if store.close_transaction(ending.transaction_id, ending.meter_stop, ending.stop_time, at, ending.why):
            owner = store.transaction_owner(ending.transaction_id)
            if owner is not None:
                closed.append((owner[0], owner[1], ending))
    return closed


def _close(store: Store, ends: list[Ending], at: str,
           proofs: list[Proven] | None = None) -> list[tuple[str, int, Ending]]:
    for proof in proofs or []:
        store.prove_running(proof.transaction_id, proof.why)
    return _close_all(store, ends, at)


def _start(store: Store, authorization: Authorization, ends: list[Ending], charger_id: str, connector_id: int,
           id_tag: str, auth_status: str, meter_start: int, timestamp: str, reservation_id: int | None, at: str,
           user_group: str | None, flag: str | None, answered: str) -> tuple[Any, list[tuple[str, int, Ending]]]:
    # The authorization record, the start, and the close of what it supersedes: one commit.
    authorization.record(store)
    outcome = store.start_transaction(charger_id, connector_id, id_tag, auth_status, meter_start, timestamp,
                                      reservation_id, at, user_group, flag, answered)
    if outcome.is_retry:
        return outcome, []
    why = superseded(outcome.transaction_id, connector_id)
    return outcome, _close_all(store, [replace(e, why=why) for e in ends if e.transaction_id != outcome.transaction_id],
                               at)


def _stop(store: Store, authorization: Authorization | None, charger_id: str, transaction_id: int, meter_stop: int,
          timestamp: str, reason: str | None, id_tag: str | None, at: str, samples: list,
          time_note: str | None) -> StopOutcome:
    # The stop, its transactionData and the authorization record land in the same commit.
    outcome = store.stop_transaction(charger_id, transaction_id, meter_stop, timestamp, reason, id_tag, at)
    if outcome.kind in ("stopped", "corrected") and samples:
        store.record_samples(charger_id, samples, at)
    if outcome.kind in ("stopped", "corrected") and time_note:
        store.add_transaction_flag(transaction_id, time_note)
    if authorization is not None:
        authorization.record(store)
    return outcome


def _meter_values(store: Store, charger_id: str, connector_id: int, transaction_id: int | None, is_open: bool,
                  samples: list[Sample], at: str, proofs: list[Proven]) -> bool:
    """-> whether these are late values of a transaction the edge closed (kept with it,
    and its close corrected by them)."""
    for proof in proofs:
        store.prove_running(proof.transaction_id, proof.why)
    late = (not is_open and transaction_id is not None
            and store.closed_by_edge(transaction_id, charger_id, connector_id))
    if not is_open and not late:
        samples = [replace(s, transaction_id=None) for s in samples]
    if samples:
        store.record_samples(charger_id, samples, at)
    if late and transaction_id is not None:
        energy = [s for s in samples if s.measurand == ENERGY and not s.phase and s.unit in (None, "Wh")]
        if energy:
            highest = max(energy, key=lambda s: s.value)
            store.correct_from_values(transaction_id, int(highest.value), highest.timestamp, at)
    return late
