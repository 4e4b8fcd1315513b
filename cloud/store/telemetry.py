"""Telemetry: stored once as sent (`telemetry_raw`), then as 1-minute aggregates (`telemetry_1m`).

A point's key is (site, time, message id): a redelivery (the same message, the same time) changes
nothing. A point older than the raw horizon (the time before which raw telemetry has been folded
into aggregates and dropped: cloud/store/retention.py) goes straight into its minute's aggregate,
which knows the seqs it holds, so a point sent again is still counted once.
"""

from __future__ import annotations

import json
from typing import NamedTuple

from cloud import downsample
from cloud.db import Connection
from cloud.db.connection import Row
from cloud.projections import dumps

HORIZON = "telemetry_raw_from"
FOLD_LOCK = 0x5C7E
# PostgreSQL: held shared by every store from its reading of the horizon to its commit, and exclusively
# by the retention step that folds late raw points and deletes them (cloud/store/retention.py). Without
# it, a store that read the old horizon could insert a point again just after the fold deleted its raw
# copy, and the point counted as new twice (two cloud instances given one redelivered batch).
HORIZON_LOCK = 0x5C7F


class PartitionsChanged(RuntimeError):
    """The partitions changed under an insert (PostgreSQL): the transaction is to be tried again."""


class Point(NamedTuple):
    message_id: str
    seq: int
    at: str                 # canonical UTC text
    body: str               # JSON as stored


def horizon(conn: Connection) -> str:
    """Raw telemetry before this time is gone (folded into aggregates); '' while nothing was."""
    row = conn.one("SELECT value FROM maintenance WHERE name = ?", (HORIZON,))
    return row["value"] if row else ""


def store(conn: Connection, site: str, points: list[Point]) -> set[str]:
    """-> the message ids of the points not stored before."""
    if conn.dialect == "postgresql":
        conn.run("SELECT pg_advisory_xact_lock_shared(?, hashtext(current_schema()))", (HORIZON_LOCK,))
    since = horizon(conn)
    raw = [p for p in points if p.at >= since]
    late = [p for p in points if p.at < since]
    try:
        inserted = conn.many_returning(
            "INSERT INTO telemetry_raw (site, at, seq, message_id, body) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (site, at, message_id) DO NOTHING RETURNING message_id",
            [(site, p.at, p.seq, p.message_id, p.body) for p in raw])
    except conn.data_errors as exc:
        # The table has no CHECK of its own: this is a row routed to the default partition while the
        # retention job attached its day's partition. Not the message's fault: the group is retried.
        if type(exc).__name__ == "CheckViolation":
            raise PartitionsChanged(str(exc)) from exc
        raise

    return {row["message_id"] for row in inserted} | fold(conn, site, late)


def fold(conn: Connection, site: str, points: list[Point]) -> set[str]:
    """Folds points into their minutes' aggregates; -> the message ids that were new to them (a
    seq an aggregate holds already, or a second point with one seq, is not)."""
    if not points:
        return set()
    if conn.dialect == "postgresql":
        # Two instances folding points of one site: the second reads what the first wrote.
        conn.run("SELECT pg_advisory_xact_lock(?, hashtext(current_schema() || '/' || ?))", (FOLD_LOCK, site))
    minutes: dict[str, list[Point]] = {}
    for point in sorted(points, key=lambda p: (p.at, p.seq)):
        minutes.setdefault(downsample.minute_of(point.at), []).append(point)
    existing = {r["minute"]: downsample.Aggregate(r["points"], downsample.runs_of(r["seqs"]), json.loads(r["body"]))
                for r in conn.all("SELECT minute, points, seqs, body FROM telemetry_1m WHERE site = ? "
                                  "AND minute >= ? AND minute <= ?", (site, min(minutes), max(minutes)))}
    fresh_ids, rows = set(), []
    for minute, group in minutes.items():
        before = existing.get(minute)
        fresh: dict[int, Point] = {}
        for point in group:
            if not (before and downsample.has(before.seqs, point.seq)):
                fresh.setdefault(point.seq, point)
        if not fresh:
            continue
        aggregate, _ = downsample.fold(before, [(p.seq, json.loads(p.body)) for p in fresh.values()])
        assert aggregate is not None
        rows.append((site, minute, aggregate.points, downsample.runs_text(aggregate.seqs), dumps(aggregate.values)))
        fresh_ids |= {p.message_id for p in fresh.values()}
    conn.many("INSERT INTO telemetry_1m (site, minute, points, seqs, body) VALUES (?, ?, ?, ?, ?) "
              "ON CONFLICT (site, minute) DO UPDATE SET points = excluded.points, seqs = excluded.seqs, "
              "body = excluded.body", rows)
    return fresh_ids


def read(conn: Connection, site: str, since: str | None, until: str | None, after: list | None,
         limit: int) -> list[Row]:
    """Points oldest first: raw where it is kept, the aggregates before. Rows: at, seq, body,
    points (None for a raw point), for the cursor (at, seq)."""
    parts, args = [], []
    for table, time, seq, points in (("telemetry_raw", "at", "seq", "NULL"),
                                     ("telemetry_1m", "minute", _last_seq(conn), "points")):
        where, more = ["site = ?"], [site]
        if since:
            where.append(f"{time} >= ?")
            more.append(since)
        if until:
            where.append(f"{time} < ?")
            more.append(until)
        if after:
            where.append(f"({time}, {seq}) > (?, ?)")
            more += after
        parts.append(f"SELECT {time} AS at, {seq} AS seq, body, {points} AS points FROM {table} "
                     f"WHERE {' AND '.join(where)}")
        args += more
    return conn.all(f"SELECT at, seq, body, points FROM ({parts[0]} UNION ALL {parts[1]}) t "
                    "ORDER BY at, seq LIMIT ?", (*args, limit))


def _last_seq(conn: Connection) -> str:
    """SQL for an aggregate's last seq, read from its runs (4-9,12 -> 12)."""
    if conn.dialect == "postgresql":
        return "CAST(regexp_replace(seqs, '^.*[-,]', '') AS BIGINT)"
    return "CAST(replace(seqs, rtrim(seqs, '0123456789'), '') AS INTEGER)"


def folded(conn: Connection, site: str) -> bool:
    """Whether some of the site's telemetry is kept only as aggregates (its seqs are not all listed)."""
    return conn.one("SELECT 1 AS folded FROM telemetry_1m WHERE site = ? LIMIT 1", (site,)) is not None
