"""Telemetry stored once, kept raw for its days, then as 1-minute aggregates, then gone; CDRs and
other messages kept. Real SQLite and PostgreSQL, explicit dates (no clock, no sleeps)."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

import psycopg
import pytest

from cloud.store import ingest as store, retention, views
from cloud.store.views import Filter
from contract.v1 import Message, UpBatch

TODAY = date(2026, 3, 31)


def point(seq: int, at: str, current: float, *, id: str | None = None) -> Message:
    return Message(id=id or f"t{seq}", seq=seq, at=at, type="telemetry", body={
        "interval_s": 20.0, "samples": 20, "circuits": [{"id": "main", "failsafe": current > 30,
                                                         "current_max_a": [current + 1, 0.0, 0.0],
                                                         "current_mean_a": [current, 0.0, 0.0],
                                                         "import_wh": 1000.0 + seq}]})


def up(stream: str, *messages: Message) -> UpBatch:
    return UpBatch(site="site-a", stream=stream, messages=list(messages))


async def scalar(db, sql: str, *args):
    row = await db.read(lambda conn: conn.one(sql, args))
    return list(row.values())[0]


async def run_retention(db, today: date, raw_days: int = 2, aggregate_days: int = 5) -> list[str]:
    done = []
    while (what := await db.write(retention.step, today, raw_days, aggregate_days)) is not None:
        done.append(what)
    return done


def days(first: date, count: int) -> list[date]:
    return [first + timedelta(days=n) for n in range(count)]


async def store_days(db, first: date, count: int) -> list[Message]:
    """Three points a minute (every 20 s) for 02:00-02:02 of each day."""
    seq, sent = itertools.count(1), []
    for day in days(first, count):
        for minute, second in itertools.product(range(2), (0, 20, 40)):
            n = next(seq)
            sent.append(point(n, f"{day}T02:{minute:02d}:{second:02d}.000Z", 10.0 + n % 7))
    for m in sent:
        await db.write(store.store_up, up("telemetry", m), m.at)
    return sent


async def test_telemetry_is_stored_once_in_its_own_table(db):
    sent = await store_days(db, TODAY - timedelta(days=1), 2)
    again = await db.write(store.store_up, up("telemetry", *sent[:3]), "2026-03-31T09:00:00.000Z")
    assert (again.new, again.duplicates) == (0, 3)
    assert await scalar(db, "SELECT count(*) AS n FROM telemetry_raw") == len(sent)
    assert await scalar(db, "SELECT count(*) AS n FROM messages") == 0
    assert await scalar(db, "SELECT received FROM streams WHERE site = 'site-a'") == len(sent)


async def test_retention_folds_old_days_into_minutes_and_reads_go_on_across_both(db):
    sent = await store_days(db, TODAY - timedelta(days=4), 5)           # 03-27 .. 03-31
    cdr = Message(id="c1", seq=1, at="2026-03-27T03:00:00.000Z", type="cdr",
                  body={"id": "cdr-1", "start_time": "2026-03-27T02:00:00Z", "status": "Successful"})
    await db.write(store.store_up, up("cdr", cdr), cdr.at)
    done = await run_retention(db, TODAY)
    assert any("folded 6 point(s) of 2026-03-27" in d for d in done) and any("2026-03-28" in d for d in done)

    # Raw telemetry from the cutoff (03-29) on; the two days before as one aggregate per minute.
    assert await scalar(db, "SELECT min(at) AS at FROM telemetry_raw") == "2026-03-29T02:00:00.000Z"
    assert await scalar(db, "SELECT count(*) AS n FROM telemetry_1m") == 4
    first = await db.read(lambda c: c.one("SELECT points, seqs, body FROM telemetry_1m ORDER BY minute LIMIT 1"))
    assert (first["points"], first["seqs"]) == (3, "1-3")
    if db.dialect == "postgresql":            # the old days' partitions are gone, not emptied row by row
        names = await db.read(retention.partitions)
        assert min(names) == date(2026, 3, 29) and max(names) == TODAY + timedelta(days=retention.DAYS_AHEAD)
    # The charge record is kept whatever its age.
    assert await scalar(db, "SELECT count(*) AS n FROM cdrs") == 1

    # The API's reads: aggregates where raw is gone, then raw, oldest first, page by page.
    rows, cursor = [], None
    while True:
        page = await db.read(views.telemetry_points, "site-a", Filter(since="2026-03-27T00:00:00.000Z"), cursor, 5)
        rows += page
        if len(page) < 5:
            break
        cursor = [page[-1]["at"], page[-1]["seq"]]
    assert [r["points"] for r in rows] == [3] * 4 + [None] * 18
    assert rows[0]["at"] == "2026-03-27T02:00:00.000Z" and rows[0]["seq"] == 3
    assert [r["at"] for r in rows] == sorted(r["at"] for r in rows)

    # A late copy of a folded point changes nothing; a point of that minute not seen before is added.
    late = await db.write(store.store_up, up("telemetry", sent[0]), "2026-03-31T10:00:00.000Z")
    assert (late.new, late.duplicates) == (0, 1)
    extra = point(99, "2026-03-27T02:00:50.000Z", 40.0)
    late = await db.write(store.store_up, up("telemetry", extra), "2026-03-31T10:00:00.000Z")
    assert late.new == 1
    minute = await db.read(lambda c: c.one("SELECT points, seqs FROM telemetry_1m ORDER BY minute LIMIT 1"))
    assert minute == {"points": 4, "seqs": "1-3,99"}
    assert await scalar(db, "SELECT count(*) AS n FROM telemetry_raw WHERE seq = 99") == 0

    # A year on (here: the aggregate days), the aggregates go too; the record stays.
    await run_retention(db, TODAY + timedelta(days=5))
    assert await scalar(db, "SELECT min(minute) AS m FROM telemetry_1m") >= "2026-03-31"
    assert await scalar(db, "SELECT count(*) AS n FROM cdrs") == 1


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_one_instance_at_a_time_runs_retention(db, database_url):
    await store_days(db, TODAY - timedelta(days=4), 1)
    with psycopg.connect(database_url, autocommit=True) as other:     # another instance, mid-run
        other.execute("SELECT pg_advisory_lock(%s, hashtext(current_schema()))", (retention.LOCK,))
        assert await run_retention(db, TODAY) == []
        other.execute("SELECT pg_advisory_unlock(%s, hashtext(current_schema()))", (retention.LOCK,))
    assert await run_retention(db, TODAY) != []


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_point_before_its_days_partition_waits_in_the_default_and_moves_in(db):
    far = point(1, "2026-05-01T00:00:00.000Z", 12.0)          # beyond the partitions made ahead
    await run_retention(db, TODAY)
    await db.write(store.store_up, up("telemetry", far), far.at)
    assert await scalar(db, "SELECT count(*) AS n FROM telemetry_raw_default") == 1
    await run_retention(db, date(2026, 4, 28))
    assert await scalar(db, "SELECT count(*) AS n FROM telemetry_raw_default") == 0
    assert await scalar(db, "SELECT count(*) AS n FROM telemetry_raw_20260501") == 1
    again = await db.write(store.store_up, up("telemetry", far), far.at)
    assert again.duplicates == 1
