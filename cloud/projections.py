"""What the API shows, derived from up-messages (pure: no I/O, no clock).

`at` is the message's own time in canonical form (the caller falls back to the
time it arrived when the edge sent something that is not a time).

The contract fixes the envelope (id, seq, at, type) and leaves each stream's
`body` to the edge; these functions read the fields listed in docs/cloud.md
("What the cloud reads from message bodies") and tolerate anything else: a
body they cannot use is still stored as the message, it only adds nothing to
the views.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pydantic_core

from contract.v1 import Message, cdr_revision
from edge.clock import iso, parse_iso


def when(value: Any) -> str | None:
    """An ISO 8601 time in the one form the database compares as text, or None."""
    if not isinstance(value, str):
        return None
    moment = parse_iso(value)
    return iso(moment) if moment else None


def text(value: Any, limit: int = 256) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value).replace("\x00", "")[:limit]


def integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and -2**63 <= value < 2**63:
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) < 19:
        return int(value)
    return None


def number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    result = float(value)
    return result if result == result and abs(result) != float("inf") else None


def dumps(value: Any) -> str:
    """Compact JSON. pydantic's Rust serializer is about 3.5 times faster than json.dumps (it matters
    on the ingest's one writer thread); what it cannot write (a lone surrogate) goes the slow way."""
    try:
        return pydantic_core.to_json(value).decode()
    except (pydantic_core.PydanticSerializationError, UnicodeDecodeError):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=True)


@dataclass(frozen=True)
class ConnectorStatus:
    charger_id: str
    connector_id: int
    status: str | None
    error_code: str | None
    info: str | None
    at: str


@dataclass(frozen=True)
class ChargerConnection:
    charger_id: str
    status: str
    at: str


@dataclass(frozen=True)
class ChargerBoot:
    charger_id: str
    vendor: str | None
    model: str | None
    serial_number: str | None
    firmware_version: str | None
    at: str


def status(message: Message, at: str) -> ConnectorStatus | ChargerConnection | ChargerBoot | None:
    """A status-stream message: a charger's boot (charger.booted: vendor, model, firmware), a
    connector's OCPP status (body has connector_id), or else the charger's connection status
    (charger.presence: Available, TemporarilyUnavailable, LongTermUnavailable)."""
    body = message.body
    charger_id = text(body.get("charger_id"))
    if not charger_id:
        return None
    at = when(body.get("timestamp")) or at
    if message.type.endswith("booted"):
        return ChargerBoot(charger_id, text(body.get("vendor")), text(body.get("model")),
                           text(body.get("serial_number")), text(body.get("firmware_version")), at)
    connector_id = integer(body.get("connector_id"))
    if connector_id is not None:
        return ConnectorStatus(charger_id, connector_id, text(body.get("status")), text(body.get("error_code")),
                               text(body.get("info"), 1024), at)
    state = text(body.get("status") or body.get("connection_status"))
    return ChargerConnection(charger_id, state, at) if state else None


@dataclass(frozen=True)
class SessionEvent:
    session_id: str
    started: bool                  # False: stopped
    charger_id: str | None
    connector_id: int | None
    id_tag: str | None
    at: str                        # start or stop time
    meter_wh: float | None         # meter start or stop
    stop_reason: str | None
    start_at: str | None = None    # a stop that also tells the start (the edge's session.stopped does)
    meter_start_wh: float | None = None


def session(message: Message, at: str) -> SessionEvent | None:
    """session.started / session.stopped (also transaction.started / .stopped); keyed by the
    body's session_id, else its transaction_id."""
    body = message.body
    kind = message.type.rsplit(".", 1)[-1]
    if kind not in ("started", "stopped"):
        return None
    key = text(body.get("session_id")) or text(body.get("transaction_id"))
    if not key:
        return None
    started = kind == "started"
    at = when(body.get("start_time" if started else "stop_time")) or when(body.get("timestamp")) or at
    meter_start = number(body.get("meter_start"))
    meter_start = number(body.get("meter_start_wh")) if meter_start is None else meter_start
    meter_stop = number(body.get("meter_stop"))
    meter_stop = number(body.get("meter_stop_wh")) if meter_stop is None else meter_stop
    if started:
        return SessionEvent(key, True, text(body.get("charger_id")), integer(body.get("connector_id")),
                            text(body.get("id_tag")), at, meter_start, None)
    return SessionEvent(key, False, text(body.get("charger_id")), integer(body.get("connector_id")),
                        text(body.get("id_tag")), at, meter_stop, text(body.get("stop_reason") or body.get("reason")),
                        when(body.get("start_time")), meter_start)


@dataclass(frozen=True)
class CdrRow:
    id: str
    charger_id: str | None
    connector_id: int | None
    transaction_id: int | None
    start_time: str
    stop_time: str | None
    status: str | None
    energy_kwh: str | None
    price_gross: str | None
    currency: str | None
    revision: int = 1                # a corrected session's record comes again: 2, 3, ...
    supersedes: str | None = None    # the id of the record this one replaces (kept)


def cdr(message: Message, at: str) -> CdrRow | None:
    """A charge detail record: the body is the edge's Cdr (edge/cdr/record.py) as a dict."""
    body = message.body
    cdr_id = text(body.get("id"), 128)
    if not cdr_id:
        return None
    link = cdr_revision(body)
    return CdrRow(cdr_id, text(body.get("charger_id")), integer(body.get("connector_id")),
                  integer(body.get("transaction_id")),
                  when(body.get("start_time")) or when(body.get("stop_time")) or at,
                  when(body.get("stop_time")), text(body.get("status")), text(body.get("energy_kwh")),
                  text(body.get("price_gross")), text(body.get("currency")),
                  link.revision if link else 1, link.supersedes if link else None)


def revision_chain(rows: list[dict[str, Any]], cdr_id: str) -> list[dict[str, Any]]:
    """The records linked to `cdr_id` by `supersedes` (back to the first, on to the latest), first
    to latest, out of the candidates `rows` (the same session's records: id, supersedes, revision)."""
    by_id = {r["id"]: r for r in rows}
    successor = {r["supersedes"]: r for r in rows if r["supersedes"]}
    if cdr_id not in by_id:
        return []
    first, seen = by_id[cdr_id], {cdr_id}
    while first["supersedes"] in by_id and first["supersedes"] not in seen:    # a loop ends the walk
        first = by_id[first["supersedes"]]
        seen.add(first["id"])
    chain = [first]
    while chain[-1]["id"] in successor and successor[chain[-1]["id"]]["id"] not in {r["id"] for r in chain}:
        chain.append(successor[chain[-1]["id"]])
    return chain


def telemetry_at(message: Message, at: str) -> str:
    return when(message.body.get("at")) or at


def alert_charger(message: Message) -> str | None:
    return text(message.body.get("charger_id"))
