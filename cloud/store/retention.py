"""Telemetry retention: raw for `raw_days`, 1-minute aggregates for `aggregate_days`.

One step at a time, each in its own short transaction (`step`), until there is nothing left to do:

1. PostgreSQL: a partition of `telemetry_raw` for every day from the raw horizon to DAYS_AHEAD days
   ahead. A day's points that arrived before its partition (in the default partition) move into it.
2. The oldest day of raw telemetry before the raw cutoff (today - raw_days, midnight UTC) is folded
   into `telemetry_1m`, then goes: PostgreSQL drops its partition (no row-by-row delete, no
   vacuum), SQLite deletes it. The horizon moves on first, in the same transaction, so a point of
   that day arriving later goes straight into its aggregate (cloud/store/telemetry.py).
3. Aggregates older than today - aggregate_days are deleted.

On PostgreSQL each step first takes an advisory lock (pg_try_advisory_xact_lock, keyed by the
schema too): with several
instances one runs a step and the others find it taken and leave it. Dropping a partition locks
the whole table for a moment; lock_timeout keeps that moment short, or the step waits for the
next round. Folding late points out of the default partition waits for the stores in flight and holds
new ones back (telemetry.HORIZON_LOCK), so none puts a point back after its raw copy was folded.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone

from cloud.db import Connection
from cloud.store import telemetry
from cloud.store.telemetry import Point

LOCK = 0x5C_7E1E
DAYS_AHEAD = 7
_PARTITION = re.compile(r"^telemetry_raw_(\d{8})$")


def day_text(day: date) -> str:
    return datetime.combine(day, time(), timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def partitions(conn: Connection) -> dict[date, str]:
    """PostgreSQL: the day partitions of telemetry_raw, by day."""
    rows = conn.all("SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "WHERE i.inhparent = 'telemetry_raw'::regclass")
    out = {}
    for row in rows:
        found = _PARTITION.match(row["name"])
        if found:
            out[datetime.strptime(found.group(1), "%Y%m%d").date()] = row["name"]
    return out


def _attach(conn: Connection, day: date) -> None:
    """A partition for `day`, with the day's points the default partition caught meanwhile."""
    name = f"telemetry_raw_{day:%Y%m%d}"
    low, high = day_text(day), day_text(day + timedelta(days=1))
    conn.run(f"CREATE TABLE {name} (LIKE telemetry_raw INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    conn.run(f"WITH moved AS (DELETE FROM telemetry_raw_default WHERE at >= ? AND at < ? RETURNING *) "
             f"INSERT INTO {name} SELECT * FROM moved", (low, high))
    conn.run(f"ALTER TABLE telemetry_raw ATTACH PARTITION {name} FOR VALUES FROM ('{low}') TO ('{high}')")


def _fold_day(conn: Connection, table: str, low: str, high: str, *, delete: bool) -> int:
    """Folds the raw points of [low, high) in `table` into their minutes' aggregates, site by site
    (a day of a whole fleet is not read at once), deleting them if `delete` (then exactly the rows
    folded go: a point committed meanwhile stays for the next run); -> how many points."""
    take = (f"DELETE FROM {table} WHERE site = ? AND at >= ? AND at < ? RETURNING at, seq, message_id, body"
            if delete else f"SELECT at, seq, message_id, body FROM {table} WHERE site = ? AND at >= ? AND at < ?")
    count = 0
    for site in (r["site"] for r in conn.all("SELECT site FROM sites ORDER BY site")):
        rows = conn.all(take, (site, low, high))
        telemetry.fold(conn, site, [Point(r["message_id"], r["seq"], r["at"], r["body"]) for r in rows])
        count += len(rows)
    return count


def _set_horizon(conn: Connection, value: str) -> None:
    conn.run("INSERT INTO maintenance (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET "
             "value = excluded.value WHERE excluded.value > maintenance.value", (telemetry.HORIZON, value))


def step(conn: Connection, today: date, raw_days: int, aggregate_days: int) -> str | None:
    """Does the next piece of retention work; -> what it did, None when there was nothing to do
    (or another instance holds the lock)."""
    if conn.dialect == "postgresql":
        # Keyed by schema too: advisory locks are per database, and two clouds may share one.
        if not conn.one("SELECT pg_try_advisory_xact_lock(?, hashtext(current_schema())) AS locked",
                        (LOCK,))["locked"]:
            return None
        conn.run("SET LOCAL lock_timeout = '5s'")
    raw_cutoff = today - timedelta(days=raw_days)
    cutoff = day_text(raw_cutoff)
    if conn.dialect == "postgresql":
        have = partitions(conn)
        wanted = (raw_cutoff + timedelta(days=n) for n in range(raw_days + DAYS_AHEAD + 1))
        missing = [day for day in wanted if day not in have]
        if missing:
            for day in missing:
                _attach(conn, day)
            return f"attached {len(missing)} day partition(s) from {missing[0]}"
        old = sorted(day for day in have if day < raw_cutoff)
        if old:
            _set_horizon(conn, day_text(old[0] + timedelta(days=1)))
            low, high = day_text(old[0]), day_text(old[0] + timedelta(days=1))
            # No insert into the day from here on (one waiting fails when the day is gone and is
            # retried: the horizon then sends it to the aggregates), so what is read is all there is.
            conn.run(f"LOCK TABLE {have[old[0]]} IN SHARE MODE")
            folded = _fold_day(conn, have[old[0]], low, high, delete=False)
            conn.run(f"DROP TABLE {have[old[0]]}")
            return f"folded {folded} point(s) of {old[0]} into aggregates and dropped its partition"
        late = conn.one("SELECT min(at) AS at FROM telemetry_raw_default WHERE at < ?", (cutoff,))["at"]
    else:
        late = conn.one("SELECT min(at) AS at FROM (SELECT (SELECT min(at) FROM telemetry_raw r "
                        "WHERE r.site = s.site) AS at FROM sites s) t WHERE at < ?", (cutoff,))["at"]
    if late is not None:
        # The oldest raw day before the cutoff (SQLite; on PostgreSQL points the default partition caught).
        day = datetime.strptime(late[:10], "%Y-%m-%d").date()
        low, high = day_text(day), day_text(min(day + timedelta(days=1), raw_cutoff))
        if conn.dialect == "postgresql":
            # No store between its reading of the horizon and its commit meanwhile: one that read the old
            # horizon would put a point back into the raw table after its copy is folded and deleted.
            conn.run("SELECT pg_advisory_xact_lock(?, hashtext(current_schema()))", (telemetry.HORIZON_LOCK,))
        _set_horizon(conn, high)
        table = "telemetry_raw_default" if conn.dialect == "postgresql" else "telemetry_raw"
        folded = _fold_day(conn, table, low, high, delete=True)
        return f"folded {folded} point(s) of {day} into aggregates and deleted them"
    _set_horizon(conn, cutoff)
    gone = conn.run("DELETE FROM telemetry_1m WHERE minute < ?", (day_text(today - timedelta(days=aggregate_days)),))
    return f"deleted {gone} aggregate(s) older than {aggregate_days} days" if gone > 0 else None
