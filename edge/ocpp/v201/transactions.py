"""OCPP 2.0.1 block E: TransactionEvent Started/Updated/Ended into the site's sessions.

The same domain calls as 1.6's StartTransaction, MeterValues and StopTransaction
(edge/ocpp/v16/session.py): Sessions.start with the same authorization decision,
Sessions.meter_values with the same samples, Sessions.stop, after which the charge
record is made from the bus as for 1.6. What is 2.0.1's own is here:

- The station names a transaction with a string (transactionId); the site's are the
  journal's integers. `station_transactions` maps one to the other, per station.
- Every event applied is kept by (transactionId, seqNo): a redelivery (the answer got
  lost) is answered as before (the same idTokenInfo: status, group, cache expiry) and
  changes nothing.
- A Started under a new transactionId that repeats another transaction of the station (the
  same EVSE, idToken, timestamp and meter start: what the site's journal tells a session by)
  is no second session and no redelivery either: it is answered with a CALLERROR
  GenericError naming both transactionIds, and nothing of it is stored (`Conflict`). It used
  to cost an InternalError (the site returned the first session, which the journal lets map
  to one transactionId only).
- Events are applied in the order they arrive; a station sends its queue (offline=true)
  in seqNo order after its boot, so a transaction that started and ended while the edge
  was unreachable is started and then stopped, in order.
- A Started without idToken (TxStartPoint EVConnected) waits: its start values are kept,
  and the session starts at the first event that names the token (or at the Ended).
- A refused token is answered with its 2.0.1 status in idTokenInfo; the station ends the
  transaction itself (StopTxOnInvalidId, E05/E06), so no RequestStopTransaction is sent.

Choices where the issue is silent are in docs/ocpp-201.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Mapping

from ocpp.exceptions import GenericError
from ocpp.v201 import call as call201

from edge.auth import AuthDecision
from edge.events import Event
from edge.cdr.record import ENERGY
from edge.journal import Sample, Store
from edge.ocpp import signed_values
from edge.ocpp.v16.meter_values import parse_meter_values

if TYPE_CHECKING:
    from edge.ocpp.site import Site

log = logging.getLogger(__name__)

# 2.0.1's ReasonEnumType -> the site's stop reasons (1.6's words, which the records carry). Reasons
# 1.6 has no word for read as Other; the 2.0.1 reason is in the log line of the stop.
STOP_REASONS: dict[str, str] = {
    "DeAuthorized": "DeAuthorized", "EmergencyStop": "EmergencyStop", "EVDisconnected": "EVDisconnected",
    "ImmediateReset": "HardReset", "Local": "Local", "PowerLoss": "PowerLoss", "Reboot": "Reboot",
    "Remote": "Remote",
}

# A running transaction's chargingState as the site's connector status (1.6's words), for an EVSE the
# station reports Occupied: energy flowing or suspended by whom, as a 1.6 charger says it. Connected or
# idle without energy is Preparing, as an Occupied EVSE without transaction reads (translate.py).
CHARGING_STATES: dict[str, str] = {
    "Charging": "Charging", "SuspendedEV": "SuspendedEV", "SuspendedEVSE": "SuspendedEVSE",
    "EVConnected": "Preparing", "Idle": "Preparing",
}
# After a transaction's Ended, an EVSE still Occupied reads as 1.6's Finishing (the cable still in).
AFTER_ENDED = "Finishing"
# How long a held event waits for its transaction's queued events once the station said some are queued,
# and how often the edge asks again meanwhile (GetTransactionStatus).
HOLD_S = 120.0
ASK_AGAIN_S = 5.0


class Conflict(GenericError):
    """A TransactionEvent that contradicts what the edge holds of the station's transactions: answered with
    this CALLERROR (its description says what and why), nothing of it applied or stored."""


@dataclass(frozen=True)
class Applied:
    """What one TransactionEvent did: the idTokenInfo to answer with, the site's connector (EVSE) of its
    transaction, the site status its chargingState tells (None: it tells none: offline, out of order, no
    chargingState), and whether it was held back (an offline event before its turn)."""
    id_token_info: dict[str, Any] | None
    evse_id: int | None = None
    status: str | None = None
    held: bool = False


@dataclass(frozen=True)
class Reading:
    """A TransactionEvent's meterValue, read: the samples, what could not be read, the 1.6-shaped
    list signed_values keeps the signed readings from, and the energy register (whole Wh) if any."""
    samples: list[Sample]
    problems: list[str]
    as_v16: list[dict[str, Any]]
    register: int | None
    lowest: int | None


def stop_reason(stopped_reason: str | None) -> str | None:
    if stopped_reason is None:
        return None
    return STOP_REASONS.get(stopped_reason, "Other")


def id_tag(id_token: Mapping[str, Any] | None, free_vend_id_tag: str) -> str | None:
    """The site's id tag of a 2.0.1 idToken: its value; NoAuthorization (free vend) is the site's
    free-vend tag, so the same policy decides it as for a 1.6 free-vend charger."""
    if not id_token:
        return None
    if id_token.get("type") == "NoAuthorization":
        return free_vend_id_tag
    return str(id_token.get("id_token", ""))


def id_token_info(decision: AuthDecision, status: str | None = None) -> dict[str, Any]:
    """An authorization decision as 2.0.1's IdTokenInfo (snake_case). 1.6's statuses (Accepted, Blocked,
    Expired, Invalid, ConcurrentTx) are all 2.0.1 AuthorizationStatus values; a parent tag is the
    groupIdToken (a Central token: the site made it)."""
    info: dict[str, Any] = {"status": status or decision.status}
    if decision.expiry_date:
        info["cache_expiry_date_time"] = decision.expiry_date
    if decision.parent_id_tag:
        info["group_id_token"] = {"id_token": decision.parent_id_tag, "type": "Central"}
    return info


def as_v16_meter_values(meter_value: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """2.0.1 MeterValues (numbers, unitOfMeasure with a power-of-ten multiplier, signedMeterValue) in
    the 1.6 shape the shared readers take: values as decimal text in the unit, and a signed reading as
    a SignedData sampled value beside its plain one."""
    out = []
    for entry in meter_value or []:
        sampled = []
        for sv in entry.get("sampled_value") or []:
            unit = (sv.get("unit_of_measure") or {}).get("unit")
            multiplier = (sv.get("unit_of_measure") or {}).get("multiplier") or 0
            plain = {k: sv[k] for k in ("measurand", "phase", "context", "location") if sv.get(k) is not None}
            value = sv.get("value")
            number = value * 10.0 ** multiplier if isinstance(value, (int, float)) else value
            sampled.append({**plain, "value": repr(number) if isinstance(number, float) else str(number),
                            **({"unit": unit} if unit else {})})
            signed = sv.get("signed_meter_value")
            if isinstance(signed, dict) and signed.get("signed_meter_data"):
                sampled.append({**plain, **signed_values.as_signed_data(signed)})
        out.append({"timestamp": entry.get("timestamp", ""), "sampled_value": sampled})
    return out


def read_meter_values(evse_id: int, meter_value: list[dict[str, Any]] | None, received_at: str) -> Reading:
    as_v16 = as_v16_meter_values(meter_value)
    samples, problems = parse_meter_values(evse_id, None, as_v16, received_at)
    registers = [s.value for s in samples
                 if s.measurand == ENERGY and not s.phase and s.unit in (None, "Wh")
                 and (s.location or "Outlet") == "Outlet" and math.isfinite(s.value) and s.value >= 0]
    # Whole Wh rounded down, as meterStart/meterStop are: nothing unmeasured is billed.
    return Reading(samples, problems, as_v16, int(max(registers)) if registers else None,
                   int(min(registers)) if registers else None)


# -- the shell ------------------------------------------------------------------------------------

# One station's events apply one at a time (held ones may be released from a task meanwhile); per event
# loop, as an asyncio.Lock belongs to one.
_locks: dict[tuple[int, str], asyncio.Lock] = {}
# (station, transactionId, connection) -> set when held events of it were applied (while settle_held runs).
_released: dict[tuple[str, str, int], asyncio.Event] = {}


def _lock(charger_id: str) -> asyncio.Lock:
    return _locks.setdefault((id(asyncio.get_running_loop()), charger_id), asyncio.Lock())


def missing_before(seen: list[int], seq_no: int) -> bool:
    """Whether events of the transaction before `seq_no` have not arrived: none at all yet (its Started
    may be queued behind), or a gap between the lowest applied and `seq_no`."""
    if not seen:
        return True
    lower = seen[0]
    return sum(1 for n in seen if lower <= n < seq_no) < seq_no - lower


# Two facts in one trip to the journal's thread (a TransactionEvent Updated is the frequent message).
def _order_of(store: Store, charger_id: str, station_tx: str) -> tuple[list[int], list[dict[str, Any]]]:
    return (store.transaction_seq_nos(charger_id, station_tx),
            store.held_transaction_events(charger_id, station_tx))


def _known_and_seen(store: Store, charger_id: str, station_tx: str, seq_no: int) -> tuple[Any, bool]:
    return (store.station_transaction(charger_id, station_tx),
            store.transaction_event_seen(charger_id, station_tx, seq_no))


async def _refuse_repeat(site: "Site", charger_id: str, station_tx: str, event_type: str, seq_no: int,
                         evse_id: int, tag: str, start_time: str, meter_start: int) -> None:
    """Raise Conflict when starting `station_tx`'s session would give it another transactionId's session."""
    other = await site.journal.read(Store.started_as, charger_id, station_tx, evse_id, tag, start_time, meter_start)
    if other is None:
        return
    log.warning("transaction event refused charger=%s transaction=%s seq_no=%s (%s): it starts as transaction %s "
                "of this station did (evse=%s tag=%s start=%s meter_start=%s); not applied", charger_id, station_tx,
                seq_no, event_type, other, evse_id, tag, start_time, meter_start)
    raise Conflict(description=(
        f"transactionId {station_tx[:36]} starts exactly as transactionId {other[:36]} of this station did (EVSE "
        f"{evse_id}, same idToken, timestamp {start_time[:40]} and meter start {meter_start} Wh): one EVSE cannot "
        "start two transactions at once, so it is neither a new transaction nor a redelivery; not applied"),
        details={"transactionId": station_tx[:36], "conflictsWith": other[:36], "seqNo": seq_no})


async def transaction_event(site: "Site", charger_id: str, event_type: str, timestamp: str, seq_no: int,
                            transaction_info: dict[str, Any], evse: dict[str, Any] | None,
                            id_token: dict[str, Any] | None, meter_value: list | None,
                            offline: bool) -> Applied:
    """Apply one TransactionEvent in its transaction's seqNo order: an offline Updated or Ended that arrives
    before events of its transaction with a lower seqNo (none applied yet, or a gap) is answered and held
    (`held`) until they arrived or the station says none is queued (`settle_held`)."""
    station_tx = transaction_info["transaction_id"]
    journal = site.journal
    arrived = _arrivals.get((id(asyncio.get_running_loop()), charger_id))
    if arrived is not None:
        arrived.set()
    async with _lock(charger_id):
        seen, held_rows = await journal.read(_order_of, charger_id, station_tx)
        held = {h["seq_no"] for h in held_rows}
        if event_type != "Started" and offline and seq_no not in seen and (seq_no in held or
                                                                            missing_before(seen, seq_no)):
            if seq_no not in held:
                event = {"event_type": event_type, "timestamp": timestamp, "seq_no": seq_no,
                         "transaction_info": transaction_info, "evse": evse, "id_token": id_token,
                         "meter_value": meter_value, "offline": offline}
                await journal.write(Store.hold_transaction_event, charger_id, station_tx, seq_no,
                                    json.dumps(event, default=str), site.clock.now_iso())
                log.info("transaction event held charger=%s transaction=%s seq_no=%s: events before it (applied %s) "
                         "not here yet", charger_id, station_tx, seq_no, _span(seen))
            answer = None
            if id_token:   # decided as any token on a running session, nothing applied
                tag = id_tag(id_token, site.sessions.free_vend_id_tag)
                answer = id_token_info(await site.sessions.authorize(charger_id, tag or "",
                                                                     (evse or {}).get("id") or 1,
                                                                     method="transaction"))
            return Applied(answer, held=True)
        answer, evse_id = await _apply(site, charger_id, event_type, timestamp, seq_no, transaction_info, evse,
                                       id_token, meter_value, offline)
        state = transaction_info.get("charging_state")
        status = None
        if event_type == "Ended":
            status = AFTER_ENDED
        elif not offline and (not seen or seq_no > seen[-1]) and state in CHARGING_STATES and \
                (answer is None or answer.get("status") == "Accepted"):
            # A state from before a refusal is not one to act on: the station ends that transaction itself.
            status = CHARGING_STATES[state]
        if held:
            await _release_in_turn(site, charger_id, station_tx)
    return Applied(answer, evse_id, status)


def _span(seen: list[int]) -> str:
    return f"{seen[0]}..{seen[-1]} ({len(seen)})" if seen else "none"


async def _release_in_turn(site: "Site", charger_id: str, station_tx: str, *, anyway: str | None = None) -> int:
    """Apply the transaction's held events whose turn has come (all of them with `anyway`, the reason);
    the caller holds the station's lock. -> how many were applied."""
    applied = 0
    for held in await site.journal.read(Store.held_transaction_events, charger_id, station_tx):
        seen = await site.journal.read(Store.transaction_seq_nos, charger_id, station_tx)
        if anyway is None and missing_before(seen, held["seq_no"]):
            continue
        event = json.loads(held["event"])
        log.info("transaction event released charger=%s transaction=%s seq_no=%s: %s", charger_id, station_tx,
                 held["seq_no"], anyway or f"the events before it are here (applied {_span(seen)})")
        await _apply(site, charger_id, event["event_type"], event["timestamp"], event["seq_no"],
                     event["transaction_info"], event["evse"], event["id_token"], event["meter_value"],
                     event["offline"])
        await site.journal.write(Store.release_transaction_event, charger_id, station_tx, held["seq_no"])
        applied += 1
    if applied:
        for key, done in list(_released.items()):
            if key[:2] == (charger_id, station_tx):
                done.set()
    return applied


async def release_held(site: "Site", charger_id: str, station_tx: str, why: str) -> int:
    async with _lock(charger_id):
        return await _release_in_turn(site, charger_id, station_tx, anyway=why)


async def ask_status(site: "Site", charger_id: str, station_tx: str | None) -> tuple[bool | None, bool | None, str]:
    """GetTransactionStatus (E14) for one transaction (None: without a transactionId, whether the station holds
    transaction messages at all, E14.FR.06), logged and published (`transaction.status`): -> (messagesInQueue,
    ongoingIndicator, the request's outcome); (None, None, outcome) without an answer. Without a transactionId the
    station names no ongoingIndicator (TC_E_34), and none is read into its answer."""
    commands = site.commands
    if commands is None:
        return None, None, "not-connected"
    result = await commands.deliver(charger_id, "GetTransactionStatus",
                                    {} if station_tx is None else {"transactionId": station_tx},
                                    call201.GetTransactionStatus(transaction_id=station_tx), actor="edge",
                                    reason="transaction messages still queued? (E14)")
    if result.outcome != "ok" or not isinstance(result.response, dict):
        log.warning("transaction status charger=%s transaction=%s: %s %s", charger_id, station_tx or "(any)",
                    result.outcome, result.response)
        return None, None, result.outcome
    queued = result.response.get("messagesInQueue")
    ongoing = result.response.get("ongoingIndicator") if station_tx is not None else None
    lost = ongoing is False and not queued
    log.log(logging.WARNING if lost else logging.INFO,
            "transaction status charger=%s transaction=%s messages_in_queue=%s ongoing=%s%s", charger_id,
            station_tx or "(any)", queued, ongoing, " (ended at the station, nothing more to come)" if lost else "")
    site.bus.publish(Event("transaction.status", charger_id, site.clock.now_iso(), {
        "station_transaction_id": station_tx, "messages_in_queue": queued, "ongoing": ongoing}))
    return queued, ongoing, result.outcome


# A station whose BootNotification the edge answered this recently when it became ready booted on this connection.
BOOTED_WITHIN_S = 10.0


# station -> set at each TransactionEvent it sends, while `queue_status` waits for its queue to drain.
_arrivals: dict[tuple[int, str], asyncio.Event] = {}
# While a station says messages are queued, it is asked again once events stopped arriving for this long (or
# ASK_AGAIN_S passed): not once per event of a long queue.
QUIET_S = 0.5


async def queue_status(site: "Site", charger_id: str, closed: asyncio.Event | None = None) -> bool | None:
    """E14 without a transactionId (E14.FR.06, TC_E_33/34): a station of which the edge holds no transaction open
    is asked whether it has transaction messages queued (a transaction it ran while the edge could not hear it).
    None queued (TC_E_34): that is all. Some (TC_E_33): they come now, after its boot; the station is asked again as
    they arrive until it says none is left, and warned about if some are still queued after HOLD_S. -> its last
    messagesInQueue (None: no answer, or the station went away)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + HOLD_S
    key = (id(loop), charger_id)
    arrived = _arrivals[key] = asyncio.Event()
    try:
        while True:
            arrived.clear()
            queued, _, _ = await ask_status(site, charger_id, None)
            if not queued or (closed is not None and closed.is_set()):
                return queued
            if loop.time() >= deadline:
                log.warning("charger=%s still says transaction messages are queued after %.0f s; they count as late "
                            "when they come", charger_id, HOLD_S)
                return True
            await _first_of(arrived, closed, timeout=min(ASK_AGAIN_S, max(0.0, deadline - loop.time())))
            while arrived.is_set() and loop.time() < deadline:   # quiet first: the station is still sending
                arrived.clear()
                await _first_of(arrived, closed, timeout=QUIET_S)
            if closed is not None and closed.is_set():
                return None
    finally:
        if _arrivals.get(key) is arrived:
            del _arrivals[key]


async def _first_of(event: asyncio.Event, closed: asyncio.Event | None, *, timeout: float) -> None:
    waits = [asyncio.ensure_future(event.wait())]
    if closed is not None:
        waits.append(asyncio.ensure_future(closed.wait()))
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()


async def settle_held(site: "Site", charger_id: str, station_tx: str, closed: asyncio.Event | None = None) -> None:
    """After an event was held: ask the station (E14) whether events of the transaction are still queued;
    none (or an error for an answer): the held events apply now; some: they apply in turn as the missing
    ones arrive, the station asked again every ASK_AGAIN_S (a station counting seqNo across its EVSEs leaves
    gaps nothing fills), and after HOLD_S they apply anyway. The station gone (`closed`, or not connected):
    they stay held for its next connection (`transaction_status`). One such task per transaction."""
    # One task per transaction and connection: a new connection's does not wait for the old one's to end.
    key = (charger_id, station_tx, id(closed))
    if key in _released:
        return
    done = _released[key] = asyncio.Event()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + HOLD_S
    try:
        while await site.journal.read(Store.held_transaction_events, charger_id, station_tx):
            queued, _, outcome = await ask_status(site, charger_id, station_tx)
            if outcome == "not-connected" or (closed is not None and closed.is_set()):
                return
            if not queued:
                await release_held(site, charger_id, station_tx, "the station has nothing of it queued"
                                   if queued is False else f"GetTransactionStatus: {outcome}")
                return
            if loop.time() >= deadline:
                log.warning("transaction %s charger=%s: its queued events did not come within %.0f s; the held "
                            "ones apply without them (they count as late if they come)", station_tx, charger_id,
                            HOLD_S)
                await release_held(site, charger_id, station_tx, "waited for its events")
                return
            done.clear()
            waits = [asyncio.ensure_future(done.wait())]
            if closed is not None:
                waits.append(asyncio.ensure_future(closed.wait()))
            try:
                await asyncio.wait(waits, timeout=min(ASK_AGAIN_S, max(0.0, deadline - loop.time())),
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiting in waits:
                    waiting.cancel()
            if closed is not None and closed.is_set():
                return
    finally:
        _released.pop(key, None)


async def transaction_status(site: "Site", charger_id: str, closed: asyncio.Event | None = None) -> None:
    """E14 once a station is ready on a connection: per transaction the edge holds open on it, whether it
    still runs and whether messages of it are queued; its held events settle as after their arrival. The
    edge closes nothing else on the answer (a session the station ended comes with its queued Ended). With
    none open or held, a station that has just booted is asked without a transactionId (`queue_status`)."""
    open_ids = await site.journal.read(Store.open_station_transactions, charger_id)
    held_ids = {h["station_tx_id"] for h in await site.journal.read(Store.held_transaction_events, charger_id)}
    if not open_ids and not held_ids:
        # Nothing to name. Just booted (its queue comes after a boot): does it hold messages of a transaction
        # unknown here? A connection without a boot (a blip, the edge restarted) is not asked.
        if await site.journal.read(Store.booted_since, charger_id, site.clock.now() - timedelta(seconds=BOOTED_WITHIN_S)):
            await queue_status(site, charger_id, closed)
        return
    for station_tx in [*open_ids, *sorted(held_ids - set(open_ids))]:   # held ones may have nothing applied yet
        if station_tx in held_ids:
            await settle_held(site, charger_id, station_tx, closed)   # asks, and applies them in turn or at last
            continue
        queued, _, _ = await ask_status(site, charger_id, station_tx)
        if queued is None:
            return


async def _apply(site: "Site", charger_id: str, event_type: str, timestamp: str, seq_no: int,
                 transaction_info: dict[str, Any], evse: dict[str, Any] | None, id_token: dict[str, Any] | None,
                 meter_value: list | None, offline: bool) -> tuple[dict[str, Any] | None, int | None]:
    """Apply one TransactionEvent; -> the idTokenInfo to answer with (None: the answer carries none), and the
    site's connector of its transaction."""
    station_tx = transaction_info["transaction_id"]
    journal, sessions = site.journal, site.sessions
    at = site.clock.now_iso()
    known, again = await journal.read(_known_and_seen, charger_id, station_tx, seq_no)
    if again:
        log.info("transaction event again charger=%s transaction=%s seq_no=%s: answered, nothing applied",
                 charger_id, station_tx, seq_no)
        return await _answer_again(site, known, id_token), (known or {}).get("evse_id")

    evse_id = (evse or {}).get("id") or (known or {}).get("evse_id")
    if evse_id is None:
        evse_id = 1   # an event without evse names the transaction's EVSE only in its first (E01.FR.16)
    reading = read_meter_values(evse_id, meter_value, at)
    tag = id_tag(id_token, sessions.free_vend_id_tag)
    starts_now = tag is not None or event_type == "Ended"
    checked = False   # _refuse_repeat asked already, with the start the session gets
    if known is None:
        # The first event of this transaction (a Started, or the first that survived if it did not).
        if starts_now:   # asked before anything of it is stored
            await _refuse_repeat(site, charger_id, station_tx, event_type, seq_no, evse_id, tag or "", timestamp,
                                 reading.lowest if reading.lowest is not None else 0)
            checked = True
        await journal.write(Store.open_station_transaction, charger_id, station_tx, evse_id,
                            reading.lowest if reading.lowest is not None else 0, timestamp, at)
        known = await journal.read(Store.station_transaction, charger_id, station_tx)
        if reading.lowest is None:
            log.warning("transaction %s charger=%s: no energy register in its first event; meter start 0",
                        station_tx, charger_id)
    elif event_type == "Started" and known["transaction_id"] is None and reading.lowest is not None:
        # Its Started after a later event (a station's queue out of order): the start is the Started's.
        if await journal.write(Store.restart_station_transaction, charger_id, station_tx, reading.lowest, timestamp):
            known = await journal.read(Store.station_transaction, charger_id, station_tx)
    answer: dict[str, Any] | None = None
    transaction_id = known["transaction_id"]
    if transaction_id is None and starts_now:
        if not checked:
            await _refuse_repeat(site, charger_id, station_tx, event_type, seq_no, known["evse_id"], tag or "",
                                 known["start_time"], known["meter_start"])
        result = await sessions.start(charger_id, known["evse_id"], tag or "", known["meter_start"],
                                      known["start_time"], None, None)
        transaction_id = result.transaction_id
        await journal.write(Store.map_station_transaction, charger_id, station_tx, transaction_id)
        if id_token:
            answer = id_token_info(result.decision, result.answered)
        tag = None   # the start's: not a stop's token

    await signed_values.received(site, charger_id, known["evse_id"], transaction_id, reading.as_v16)
    if event_type == "Ended" and transaction_id is not None:
        meter_stop = reading.register if reading.register is not None else await _last_register(site, known,
                                                                                                 transaction_id)
        reason = transaction_info.get("stopped_reason")
        _, decision = await sessions.stop(charger_id, transaction_id, meter_stop, timestamp, stop_reason(reason),
                                          tag, reading.samples, None, reading.problems)
        if decision is not None and id_token:
            answer = id_token_info(decision)
        log.info("transaction ended charger=%s transaction=%s (%s) reason=%s", charger_id, transaction_id,
                 station_tx, reason)
    elif reading.samples or reading.problems:
        samples = [replace(s, transaction_id=transaction_id) for s in reading.samples]
        if transaction_id is not None and samples:
            # Once per (transaction, seqNo) even when a crash came between the samples (one journal write) and
            # the event's mark below: the redelivered event finds every one of its samples stored, to the
            # value, and stores none again. An event sharing only some values with earlier ones is new.
            stored = await journal.read(Store.stored_sample_keys, transaction_id, {s.timestamp for s in samples})
            if all(sample_key(s) in stored for s in samples):
                log.info("transaction event charger=%s transaction=%s seq_no=%s: its %d samples are stored already "
                         "(redelivered after a restart): kept once", charger_id, station_tx, seq_no, len(samples))
                samples = []
        if samples or reading.problems:
            await sessions.meter_values(charger_id, known["evse_id"], transaction_id, samples, reading.problems)
    if answer is None and id_token and tag is not None:
        # A token named after the start (a driver's card on a running session): the same decision.
        answer = id_token_info(await sessions.authorize(charger_id, tag, known["evse_id"], method="transaction"))
    await journal.write(Store.record_transaction_event, charger_id, station_tx, seq_no, event_type, offline, at)
    return answer, known["evse_id"]


def sample_key(s: Sample) -> tuple:
    """What tells a stored sample apart (edge/journal/station_events.py, stored_sample_keys)."""
    return (s.timestamp, s.measurand, s.phase, s.location, s.context, s.value)


# The decisions whose idTokenInfo carries the token's expiry (edge/auth/decide.py): the others name none.
WITH_EXPIRY = ("Accepted", "Expired", "ConcurrentTx")


async def _answer_again(site: "Site", known: dict[str, Any] | None, id_token: dict | None) -> dict | None:
    """The answer to a redelivered event: the idTokenInfo its token got the first time, rebuilt from the
    transaction's record (nothing is decided again): the status it was answered, its group (the token's user
    group, the decision's parent), and the token's cache expiry where the decision carried one."""
    if not id_token or known is None or known["transaction_id"] is None:
        return None
    rows = await site.journal.read(Store.transactions, limit=1, before_id=known["transaction_id"] + 1)
    if not rows or rows[0]["id"] != known["transaction_id"]:
        return None
    row = rows[0]
    info: dict[str, Any] = {"status": row.get("answered_status") or row["auth_status"]}
    token = site.sessions.authorizer.model.find(row["id_tag"]) if row.get("user_group") else None
    if token is not None and token.expiry is not None and row["auth_status"] in WITH_EXPIRY:
        info["cache_expiry_date_time"] = token.expiry.isoformat()
    if row.get("user_group"):
        info["group_id_token"] = {"id_token": row["user_group"], "type": "Central"}
    return info


async def _last_register(site: "Site", known: dict[str, Any], transaction_id: int) -> int:
    """An Ended without an energy register: the highest the transaction's samples reached (its start's
    when it has none), so the record bills what was measured and no more."""
    _, samples = await site.journal.read(Store.cdr_source, transaction_id)
    registers = [s["value"] for s in samples if s["measurand"] == ENERGY and not s.get("phase")]
    return int(max([known["meter_start"], *registers]))
