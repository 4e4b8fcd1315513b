"""Storing what sites send: idempotent on (site, message id), projections only for new messages."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import NamedTuple, Sequence

from cloud import projections as p
from cloud.db import Connection
from cloud.store import certificates, telemetry
from contract.v1 import Ack, Message, SiteState, UpBatch

log = logging.getLogger(__name__)

class New(NamedTuple):
    """A message stored just now: its canonical time and its body as stored (JSON)."""
    message: Message
    at: str
    body: str


@dataclass
class UpOutcome:
    new: int = 0
    duplicates: int = 0
    gaps: list[tuple[int, int]] = field(default_factory=list)     # (first missing seq, last missing seq)


class Bookkeeping:
    """What a transaction learnt about its sites (when each was last seen) and streams (the seqs
    stored), written at its end (`apply`) with one statement per row: the `sites` and `streams`
    rows are the only rows two instances storing the same site both write, so they are locked
    for the last statements and the COMMIT only, not while a whole group of batches is stored."""

    def __init__(self) -> None:
        self.seen: dict[str, str] = {}
        self.seqs: dict[tuple[str, str], list[int]] = {}

    def site_seen(self, site: str, now: str) -> None:
        self.seen[site] = max(self.seen.get(site, ""), now)

    def stored(self, site: str, stream: str, seqs: list[int]) -> None:
        self.seqs.setdefault((site, stream), []).extend(seqs)

    def merge(self, other: "Bookkeeping") -> None:
        for site, now in other.seen.items():
            self.site_seen(site, now)
        for (site, stream), seqs in other.seqs.items():
            self.stored(site, stream, seqs)

    def apply(self, conn: Connection) -> dict[tuple[str, str], list[tuple[int, int]]]:
        """-> the gaps seen per (site, stream). Sites and then streams in key order, as every
        transaction does: two instances never wait on each other in a cycle."""
        for site, now in sorted(self.seen.items()):
            touch_site(conn, site, now)
        return {(site, stream): _note_sequence(conn, site, stream, seqs, self.seen[site])
                for (site, stream), seqs in sorted(self.seqs.items())}


def touch_site(conn: Connection, site: str, now: str) -> None:
    # DO NOTHING does not lock a row that is there; the UPDATE locks it only when it changes it.
    conn.run("INSERT INTO sites (site, first_seen, last_seen) VALUES (?, ?, ?) ON CONFLICT (site) DO NOTHING",
             (site, now, now))
    conn.run("UPDATE sites SET last_seen = ? WHERE site = ? AND last_seen < ?", (now, site, now))


def _insert_new(conn: Connection, batch: UpBatch, now: str) -> list[New]:
    """Inserts the batch's messages; -> the ones that were not stored before. Telemetry goes to
    its own table only (cloud/store/telemetry.py), the other streams to `messages`, kept for ever."""
    timed: dict[str, New] = {}
    for m in batch.messages:
        if m.id not in timed:         # the same id twice in one batch: the first counts
            timed[m.id] = New(m, p.when(m.at) or now, p.dumps(m.body))
    if batch.stream == "telemetry":
        fresh = telemetry.store(conn, batch.site, [telemetry.Point(m.id, m.seq, p.telemetry_at(m, at), body)
                                                   for m, at, body in timed.values()])
    else:
        inserted = conn.many_returning(
            "INSERT INTO messages (site, id, stream, seq, at, type, body, received_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (site, id) DO NOTHING RETURNING id",
            [(batch.site, m.id, batch.stream, m.seq, at, m.type, body, now) for m, at, body in timed.values()])
        fresh = {row["id"] for row in inserted}
    return [timed[i] for i in timed if i in fresh]


def _note_sequence(conn: Connection, site: str, stream: str, seqs: list[int], now: str) -> list[tuple[int, int]]:
    row = conn.one("SELECT last_seq FROM streams WHERE site = ? AND stream = ?", (site, stream))
    last = row["last_seq"] if row else 0
    gaps = []
    for seq in sorted(seqs):
        if seq > last + 1:
            gaps.append((last + 1, seq - 1))
        last = max(last, seq)
    conn.run("INSERT INTO streams (site, stream, last_seq, received, updated_at) VALUES (?, ?, ?, ?, ?) "
             "ON CONFLICT (site, stream) DO UPDATE SET "
             "last_seq = CASE WHEN excluded.last_seq > streams.last_seq THEN excluded.last_seq "
             "ELSE streams.last_seq END, received = streams.received + excluded.received, "
             "updated_at = excluded.updated_at", (site, stream, max(seqs), len(seqs), now))
    return gaps


def _chargers_seen(conn: Connection, site: str, seen: dict[str, str]) -> None:
    conn.many("INSERT INTO chargers (site, charger_id, first_seen, last_status_at) VALUES (?, ?, ?, ?) "
              "ON CONFLICT (site, charger_id) DO UPDATE SET last_status_at = excluded.last_status_at "
              "WHERE excluded.last_status_at > chargers.last_status_at",
              [(site, charger, at, at) for charger, at in sorted(seen.items())])


def _project_status(conn: Connection, site: str, messages: list[New]) -> None:
    connectors, connections, boots, seen = [], [], [], {}
    for m, at, _ in messages:
        update = p.status(m, at)
        if update is None:
            continue
        seen[update.charger_id] = max(seen.get(update.charger_id, ""), update.at)
        if isinstance(update, p.ConnectorStatus):
            connectors.append((site, update.charger_id, update.connector_id, update.status, update.error_code,
                               update.info, update.at, m.seq))
        elif isinstance(update, p.ChargerBoot):
            boots.append((update.vendor, update.model, update.serial_number, update.firmware_version, update.at,
                          site, update.charger_id, update.at))
        else:
            connections.append((site, update.charger_id, update.status, update.at, m.seq, update.at, update.at))
    if seen:
        _chargers_seen(conn, site, seen)
    if boots:
        conn.many("UPDATE chargers SET vendor = ?, model = ?, serial_number = ?, firmware_version = ?, booted_at = ? "
                  "WHERE site = ? AND charger_id = ? AND (booted_at IS NULL OR booted_at <= ?)",
                  sorted(boots, key=lambda row: (row[5], row[6])))
    # Out-of-order delivery (two cloud instances, redelivery) must not let an older status win: seq decides.
    if connectors:
        conn.many("INSERT INTO connectors (site, charger_id, connector_id, status, error_code, info, at, seq) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (site, charger_id, connector_id) DO UPDATE SET "
                  "status = excluded.status, error_code = excluded.error_code, info = excluded.info, "
                  "at = excluded.at, seq = excluded.seq WHERE excluded.seq > connectors.seq", sorted(connectors))
    if connections:
        conn.many("INSERT INTO chargers (site, charger_id, connection_status, connection_at, connection_seq, "
                  "first_seen, last_status_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (site, charger_id) "
                  "DO UPDATE SET connection_status = excluded.connection_status, "
                  "connection_at = excluded.connection_at, connection_seq = excluded.connection_seq "
                  "WHERE chargers.connection_seq IS NULL OR excluded.connection_seq > chargers.connection_seq",
                  sorted(connections))


_SESSION_STARTED = (
    "INSERT INTO sessions (site, session_id, charger_id, connector_id, id_tag, started_at, meter_start_wh, "
    "status, sort_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'active', ?, ?) "
    "ON CONFLICT (site, session_id) DO UPDATE SET started_at = excluded.started_at, "
    "meter_start_wh = excluded.meter_start_wh, sort_at = excluded.sort_at, updated_at = excluded.updated_at, "
    "charger_id = COALESCE(excluded.charger_id, sessions.charger_id), "
    "connector_id = COALESCE(excluded.connector_id, sessions.connector_id), "
    "id_tag = COALESCE(excluded.id_tag, sessions.id_tag)")
_SESSION_STOPPED = (
    "INSERT INTO sessions (site, session_id, charger_id, connector_id, id_tag, stopped_at, meter_stop_wh, "
    "stop_reason, started_at, meter_start_wh, status, sort_at, updated_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'stopped', ?, ?) "
    "ON CONFLICT (site, session_id) DO UPDATE SET stopped_at = excluded.stopped_at, "
    "meter_stop_wh = excluded.meter_stop_wh, stop_reason = excluded.stop_reason, status = 'stopped', "
    "updated_at = excluded.updated_at, "
    "started_at = COALESCE(sessions.started_at, excluded.started_at), "
    "meter_start_wh = COALESCE(sessions.meter_start_wh, excluded.meter_start_wh), "
    "sort_at = CASE WHEN sessions.started_at IS NULL THEN excluded.sort_at ELSE sessions.sort_at END, "
    "charger_id = COALESCE(sessions.charger_id, excluded.charger_id), "
    "connector_id = COALESCE(sessions.connector_id, excluded.connector_id), "
    "id_tag = COALESCE(sessions.id_tag, excluded.id_tag)")


def _project_sessions(conn: Connection, site: str, messages: list[New], now: str) -> None:
    seen: dict[str, str] = {}
    for m, at, _ in messages:
        event = p.session(m, at)
        if event is None:
            continue
        if event.charger_id:
            seen[event.charger_id] = max(seen.get(event.charger_id, ""), event.at)
        if event.started:
            conn.run(_SESSION_STARTED, (site, event.session_id, event.charger_id, event.connector_id, event.id_tag,
                                        event.at, event.meter_wh, event.at, now))
        else:
            conn.run(_SESSION_STOPPED, (site, event.session_id, event.charger_id, event.connector_id, event.id_tag,
                                        event.at, event.meter_wh, event.stop_reason, event.start_at,
                                        event.meter_start_wh, event.start_at or event.at, now))
    if seen:
        _chargers_seen(conn, site, seen)


def _project_cdrs(conn: Connection, site: str, messages: list[New], now: str) -> None:
    rows = []
    for m, at, body in messages:
        row = p.cdr(m, at)
        if row is not None:
            rows.append((site, row.id, row.charger_id, row.connector_id, row.transaction_id, row.start_time,
                         row.stop_time, row.status, row.energy_kwh, row.price_gross, row.currency, body, m.id, now,
                         row.revision, row.supersedes))
    if rows:
        # The CDR id is stable at the edge: the same record under another message id is still one record.
        # A revision is another record (another id) that names the one it supersedes: both are kept, in
        # whatever order they arrive; which is the latest is read from the links (views.cdrs).
        conn.many("INSERT INTO cdrs (site, id, charger_id, connector_id, transaction_id, start_time, stop_time, "
                  "status, energy_kwh, price_gross, currency, body, message_id, received_at, revision, supersedes) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (site, id) DO NOTHING", rows)


def store_up(conn: Connection, batch: UpBatch, now: str, book: Bookkeeping | None = None) -> UpOutcome:
    """Stores a batch; its bookkeeping goes to `book` (the caller applies it before its COMMIT), or
    is written here when there is none (the outcome's gaps are then known)."""
    alone = book is None
    book = book or Bookkeeping()
    book.site_seen(batch.site, now)
    new = _insert_new(conn, batch, now)
    outcome = UpOutcome(new=len(new), duplicates=len(batch.messages) - len(new))
    if new:
        book.stored(batch.site, batch.stream, [n.message.seq for n in new])
        _project(conn, batch, new, now)
    if alone:
        outcome.gaps = book.apply(conn).get((batch.site, batch.stream), [])
    return outcome


def _project(conn: Connection, batch: UpBatch, new: list[New], now: str) -> None:
    if batch.stream == "status":
        _project_status(conn, batch.site, new)
        certificates.note(conn, batch.site, [(m, at) for m, at, _ in new], now)    # CSRs to sign (issue 17)
    elif batch.stream == "session":
        _project_sessions(conn, batch.site, new, now)
    elif batch.stream == "cdr":
        _project_cdrs(conn, batch.site, new, now)
    elif batch.stream == "alert":
        conn.many("INSERT INTO alerts (site, message_id, seq, at, type, charger_id, body) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (site, message_id) DO NOTHING",
                  [(batch.site, m.id, m.seq, at, m.type, p.alert_charger(m), body) for m, at, body in new])


def store_state(conn: Connection, state: SiteState, now: str, fresh: bool) -> None:
    """Birth or last will. `fresh`: it was published just now (not a retained copy replayed on
    subscribe, and not the will the broker sends for a dead site), so the site was seen now.

    Kept only if it is not older than the stored state (several instances handle states at once):
    a higher connection counter wins; within one connection the offline state (goodbye or will)
    is the last word, and births go by their time. A state without a counter (an edge from before
    it), or a site without one stored, is taken as it comes."""
    at = p.when(state.at) or now
    conn.run(
        "INSERT INTO sites (site, online, state_at, state_received_at, software_version, backlog, first_seen, "
        "last_seen, state_connection) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (site) DO UPDATE SET "
        "online = excluded.online, state_at = excluded.state_at, state_received_at = excluded.state_received_at, "
        "state_connection = excluded.state_connection, "
        "software_version = CASE WHEN excluded.software_version <> '' THEN excluded.software_version "
        "ELSE sites.software_version END, "
        "backlog = CASE WHEN excluded.online = 1 THEN excluded.backlog ELSE sites.backlog END, "
        "last_seen = CASE WHEN excluded.last_seen > sites.last_seen THEN excluded.last_seen ELSE sites.last_seen END "
        "WHERE excluded.state_connection IS NULL OR sites.state_connection IS NULL "
        "OR excluded.state_connection > sites.state_connection "
        "OR (excluded.state_connection = sites.state_connection "
        "AND (excluded.online = 0 OR (sites.online = 1 AND excluded.state_at >= sites.state_at)))",
        (state.site, 1 if state.online else 0, at, now, state.software_version.replace("\x00", "")[:128],
         p.dumps(state.backlog), now, now if fresh and state.online else at, state.connection))


FINAL = ("applied", "rejected", "done", "failed")


def store_ack(conn: Connection, ack: Ack, now: str, book: Bookkeeping | None = None) -> bool:
    """-> False when no push of this site has the ack's id (an ack for something this cloud never sent)."""
    if book is None:
        touch_site(conn, ack.site, now)
    else:
        book.site_seen(ack.site, now)
    result = None if ack.result is None else p.dumps(ack.result)
    # published_at too: the site answered, so it was published, even if the instance that published it
    # died between the broker's PUBACK and writing that down.
    changed = conn.run(
        "UPDATE pushes SET status = ?, acked_at = ?, applied_version = ?, error = ?, result = ?, "
        "published_at = COALESCE(published_at, ?) "
        "WHERE id = ? AND site = ? AND kind = ? AND NOT (? = 'ignored' AND status IN (?, ?, ?, ?))",
        (ack.status, now, ack.applied_version, (ack.error or "")[:4096] or None, result, now, ack.id, ack.site, ack.kind,
         ack.status, *FINAL))
    if changed:
        return True
    # A duplicate delivery answered 'ignored' after the real outcome: known, nothing to change.
    return conn.one("SELECT 1 AS known FROM pushes WHERE id = ? AND site = ?", (ack.id, ack.site)) is not None


def count_rejections(conn: Connection, rows: Sequence[tuple[str, str, int, str, str]]) -> None:
    """rows: (site, reason, count, at, last error)."""
    conn.many("INSERT INTO rejections (site, reason, count, last_at, last_error) VALUES (?, ?, ?, ?, ?) "
              "ON CONFLICT (site, reason) DO UPDATE SET count = rejections.count + excluded.count, "
              "last_at = excluded.last_at, last_error = excluded.last_error", rows)
