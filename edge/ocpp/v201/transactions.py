"""OCPP 2.0.1 block E: TransactionEvent Started/Updated/Ended into the site's sessions.

The same domain calls as 1.6's StartTransaction, MeterValues and StopTransaction
(edge/ocpp/v16/session.py): Sessions.start with the same authorization decision,
Sessions.meter_values with the same samples, Sessions.stop, after which the charge
record is made from the bus as for 1.6. What is 2.0.1's own is here:

- The station names a transaction with a string (transactionId); the site's are the
  journal's integers. `station_transactions` maps one to the other, per station.
- Every event applied is kept by (transactionId, seqNo): a redelivery (the answer got
  lost) is answered as before and changes nothing.
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

import logging
import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Mapping

from edge.auth import AuthDecision
from edge.cdr.record import ENERGY
from edge.journal import Sample, Store
from edge.ocpp import signed_values
from edge.ocpp.v16.meter_values import parse_meter_values

if TYPE_CHECKING:
    from edge.ocpp.server import Site

log = logging.getLogger(__name__)

# 2.0.1's ReasonEnumType -> the site's stop reasons (1.6's words, which the records carry). Reasons
# 1.6 has no word for read as Other; the 2.0.1 reason is in the log line of the stop.
STOP_REASONS: dict[str, str] = {
    "DeAuthorized": "DeAuthorized", "EmergencyStop": "EmergencyStop", "EVDisconnected": "EVDisconnected",
    "ImmediateReset": "HardReset", "Local": "Local", "PowerLoss": "PowerLoss", "Reboot": "Reboot",
    "Remote": "Remote",
}


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
                sampled.append({**plain, "format": "SignedData", "value": signed["signed_meter_data"]})
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

async def transaction_event(site: "Site", charger_id: str, event_type: str, timestamp: str, seq_no: int,
                            transaction_info: dict[str, Any], evse: dict[str, Any] | None,
                            id_token: dict[str, Any] | None, meter_value: list | None,
                            offline: bool) -> dict[str, Any] | None:
    """Apply one TransactionEvent; -> the idTokenInfo to answer with (None: the answer carries none)."""
    station_tx = transaction_info["transaction_id"]
    journal, sessions = site.journal, site.sessions
    at = site.clock.now_iso()
    known = await journal.read(Store.station_transaction, charger_id, station_tx)
    if await journal.read(Store.transaction_event_seen, charger_id, station_tx, seq_no):
        log.info("transaction event again charger=%s transaction=%s seq_no=%s: answered, nothing applied",
                 charger_id, station_tx, seq_no)
        return await _answer_again(site, known, id_token)

    evse_id = (evse or {}).get("id") or (known or {}).get("evse_id")
    if evse_id is None:
        evse_id = 1   # an event without evse names the transaction's EVSE only in its first (E01.FR.16)
    reading = read_meter_values(evse_id, meter_value, at)
    if known is None:
        # The first event of this transaction (a Started, or the first that survived if it did not).
        await journal.write(Store.open_station_transaction, charger_id, station_tx, evse_id,
                            reading.lowest if reading.lowest is not None else 0, timestamp, at)
        known = await journal.read(Store.station_transaction, charger_id, station_tx)
        if reading.lowest is None:
            log.warning("transaction %s charger=%s: no energy register in its first event; meter start 0",
                        station_tx, charger_id)
    answer: dict[str, Any] | None = None
    transaction_id = known["transaction_id"]
    tag = id_tag(id_token, sessions.free_vend_id_tag)
    if transaction_id is None and (tag is not None or event_type == "Ended"):
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
        await sessions.meter_values(charger_id, known["evse_id"], transaction_id, samples, reading.problems)
    if answer is None and id_token and tag is not None:
        # A token named after the start (a driver's card on a running session): the same decision.
        answer = id_token_info(await sessions.authorize(charger_id, tag, known["evse_id"], method="transaction"))
    await journal.write(Store.record_transaction_event, charger_id, station_tx, seq_no, event_type, offline, at)
    return answer


async def _answer_again(site: "Site", known: dict[str, Any] | None, id_token: dict | None) -> dict | None:
    """The answer to a redelivered event: the status its token got (nothing is decided again)."""
    if not id_token or known is None or known["transaction_id"] is None:
        return None
    rows = await site.journal.read(Store.transactions, limit=1, before_id=known["transaction_id"] + 1)
    if not rows or rows[0]["id"] != known["transaction_id"]:
        return None
    return {"status": rows[0].get("answered_status") or rows[0]["auth_status"]}


async def _last_register(site: "Site", known: dict[str, Any], transaction_id: int) -> int:
    """An Ended without an energy register: the highest the transaction's samples reached (its start's
    when it has none), so the record bills what was measured and no more."""
    _, samples = await site.journal.read(Store.cdr_source, transaction_id)
    registers = [s["value"] for s in samples if s["measurand"] == ENERGY and not s.get("phase")]
    return int(max([known["meter_start"], *registers]))
