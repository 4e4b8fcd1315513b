"""What the REST API reads. Every function takes a site the caller has already
checked the operator may see (cloud/api/access.py), except `operator_sites`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cloud.db import Connection
from cloud.store import telemetry
from cloud.projections import revision_chain as chain
from cloud.db.connection import Row
from contract.v1 import STREAMS

_SITE = ("a.site AS id, s.online, s.state_at, s.last_seen, s.first_seen, s.software_version, s.backlog")


@dataclass(frozen=True)
class Filter:
    since: str | None = None        # inclusive, canonical UTC text
    until: str | None = None        # exclusive
    charger: str | None = None
    status: str | None = None
    all_revisions: bool = False     # charge records: every revision, not only the latest of each session


def _site_view(row: Row) -> dict[str, Any]:
    online = row["online"]
    return {"id": row["id"], "online": None if online is None else bool(online), "state_at": row["state_at"],
            "last_seen": row["last_seen"], "first_seen": row["first_seen"],
            "software_version": row["software_version"] or None,
            "backlog": json.loads(row["backlog"]) if row["backlog"] else {}}


def operator_sites(conn: Connection, operator: str) -> list[dict[str, Any]]:
    rows = conn.all(f"SELECT {_SITE} FROM site_operators a LEFT JOIN sites s ON s.site = a.site "
                    "WHERE a.operator = ? ORDER BY a.site", (operator,))
    return [_site_view(r) for r in rows]


def site_of(conn: Connection, operator: str, site: str) -> dict[str, Any] | None:
    row = conn.one(f"SELECT {_SITE} FROM site_operators a LEFT JOIN sites s ON s.site = a.site "
                   "WHERE a.operator = ? AND a.site = ?", (operator, site))
    return _site_view(row) if row else None


def _gaps(conn: Connection, site: str, stream: str, limit: int = 20) -> list[list[int]]:
    """The missing seqs' runs among what is stored as sent. Telemetry kept only as aggregates is
    not listed (its seqs before the raw window are not gaps)."""
    if stream == "telemetry":
        source, args = "telemetry_raw WHERE site = ?", [site]
        leading = not telemetry.folded(conn, site)
    else:
        source, args, leading = "messages WHERE site = ? AND stream = ?", [site, stream], True
    row = conn.one(f"SELECT min(seq) AS lowest FROM {source}", args)
    lowest = row["lowest"] if row else None
    gaps = [[1, lowest - 1]] if leading and lowest and lowest > 1 else []
    rows = conn.all("SELECT prev + 1 AS first_seq, seq - 1 AS last_seq FROM (SELECT seq, LAG(seq) OVER "
                    f"(ORDER BY seq) AS prev FROM {source}) t WHERE seq - prev > 1 ORDER BY seq LIMIT ?",
                    (*args, limit))
    return (gaps + [[r["first_seq"], r["last_seq"]] for r in rows])[:limit]


def site_detail(conn: Connection, site: str) -> dict[str, Any]:
    streams = {}
    for r in conn.all("SELECT stream, last_seq, received, updated_at FROM streams WHERE site = ?", (site,)):
        missing = max(0, r["last_seq"] - r["received"])
        streams[r["stream"]] = {"last_seq": r["last_seq"], "received": r["received"], "missing": missing,
                                "last_received_at": r["updated_at"],
                                "gaps": _gaps(conn, site, r["stream"]) if missing else []}
    rejected = {r["reason"]: {"count": r["count"], "last_at": r["last_at"], "last_error": r["last_error"]}
                for r in conn.all("SELECT reason, count, last_at, last_error FROM rejections WHERE site = ?", (site,))}
    counts = conn.one("SELECT (SELECT count(*) FROM chargers WHERE site = ?) AS chargers, "
                      "(SELECT count(*) FROM sessions WHERE site = ? AND status = 'active') AS active_sessions",
                      (site, site)) or {}
    return {"streams": {s: streams[s] for s in STREAMS if s in streams}, "rejected": rejected,
            "chargers": counts.get("chargers", 0), "active_sessions": counts.get("active_sessions", 0)}


def chargers(conn: Connection, site: str) -> list[dict[str, Any]]:
    connectors: dict[str, list[dict[str, Any]]] = {}
    for r in conn.all("SELECT charger_id, connector_id, status, error_code, info, at FROM connectors WHERE site = ? "
                      "ORDER BY charger_id, connector_id", (site,)):
        connectors.setdefault(r.pop("charger_id"), []).append(r)
    out = []
    for r in conn.all("SELECT charger_id, connection_status, connection_at, vendor, model, serial_number, "
                      "firmware_version, booted_at, first_seen, last_status_at FROM chargers WHERE site = ? "
                      "ORDER BY charger_id", (site,)):
        mine = connectors.get(r["charger_id"], [])
        faulted = any(c["status"] == "Faulted" or c["error_code"] not in (None, "NoError") for c in mine)
        out.append({"id": r.pop("charger_id"), **r, "faulted": faulted, "connectors": mine})
    return out


def _where(site: str, time_column: str, flt: Filter, status_column: str | None) -> tuple[list[str], list[Any]]:
    where, args = ["site = ?"], [site]
    if flt.since:
        where.append(f"{time_column} >= ?")
        args.append(flt.since)
    if flt.until:
        where.append(f"{time_column} < ?")
        args.append(flt.until)
    if flt.charger:
        where.append("charger_id = ?")
        args.append(flt.charger)
    if flt.status and status_column:
        where.append(f"{status_column} = ?")
        args.append(flt.status)
    return where, args


def sessions(conn: Connection, site: str, flt: Filter, before: list | None, limit: int) -> list[dict[str, Any]]:
    where, args = _where(site, "sort_at", flt, "status")
    if before:
        where.append("(sort_at, session_id) < (?, ?)")
        args += before
    rows = conn.all("SELECT session_id, charger_id, connector_id, id_tag, started_at, stopped_at, meter_start_wh, "
                    "meter_stop_wh, stop_reason, status, sort_at FROM sessions WHERE " + " AND ".join(where)
                    + " ORDER BY sort_at DESC, session_id DESC LIMIT ?", (*args, limit))
    for r in rows:
        start, stop = r["meter_start_wh"], r["meter_stop_wh"]
        r["energy_wh"] = stop - start if start is not None and stop is not None else None
    return rows


# A record no other record of its site supersedes is the latest of its session.
_SUPERSEDED_BY = "(SELECT min(n.id) FROM cdrs n WHERE n.site = cdrs.site AND n.supersedes = cdrs.id)"
_CDR = f"id, start_time, body, received_at, revision, supersedes, {_SUPERSEDED_BY} AS superseded_by"


def cdrs(conn: Connection, site: str, flt: Filter, cursor: list | None, limit: int,
         ascending: bool = False) -> list[Row]:
    """Rows with the CDR as sent (body), its revision links, plus the keys for the cursor (start_time, id).
    Only the latest revision of each session unless flt.all_revisions."""
    where, args = _where(site, "start_time", flt, "status")
    if not flt.all_revisions:
        where.append("NOT EXISTS (SELECT 1 FROM cdrs n WHERE n.site = cdrs.site AND n.supersedes = cdrs.id)")
    if cursor:
        where.append(f"(start_time, id) {'>' if ascending else '<'} (?, ?)")
        args += cursor
    order = "ASC" if ascending else "DESC"
    return conn.all(f"SELECT {_CDR} FROM cdrs WHERE " + " AND ".join(where)
                    + f" ORDER BY start_time {order}, id {order} LIMIT ?", (*args, limit))


def cdr(conn: Connection, site: str, cdr_id: str) -> Row | None:
    return conn.one(f"SELECT {_CDR} FROM cdrs WHERE site = ? AND id = ?", (site, cdr_id))


def cdr_revisions(conn: Connection, site: str, cdr_id: str) -> list[Row]:
    """Every record of the session of record `cdr_id`, first to latest ([] for an unknown id)."""
    one = conn.one("SELECT transaction_id FROM cdrs WHERE site = ? AND id = ?", (site, cdr_id))
    if one is None:
        return []
    # Candidates: the same transaction (a Failed record has none: then only its own links).
    rows = conn.all(f"SELECT {_CDR} FROM cdrs WHERE site = ? AND (id = ? OR supersedes = ? OR transaction_id = ?)",
                    (site, cdr_id, cdr_id, one["transaction_id"]))
    return chain(rows, cdr_id)


def telemetry_points(conn: Connection, site: str, flt: Filter, after: list | None, limit: int) -> list[Row]:
    """Raw points where they are kept, 1-minute aggregates before (cloud/store/telemetry.py)."""
    return telemetry.read(conn, site, flt.since, flt.until, after, limit)


def alerts(conn: Connection, site: str, flt: Filter, before: list | None, limit: int) -> list[Row]:
    where, args = _where(site, "at", flt, None)
    if flt.status:                   # for alerts, "status" filters on the type (alert.failsafe, ...)
        where.append("type = ?")
        args.append(flt.status)
    if before:
        where.append("(at, message_id) < (?, ?)")
        args += before
    return conn.all("SELECT message_id, seq, at, type, charger_id, body FROM alerts WHERE " + " AND ".join(where)
                    + " ORDER BY at DESC, message_id DESC LIMIT ?", (*args, limit))
