"""The subscriber: stores each up-message once, refuses what breaks the contract,
tracks site state from birth and last will. Real Mosquitto, real SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import queue

import psycopg
import pytest

from contract.v1 import MAX_PAYLOAD_BYTES, state_topic, up_topic
from tests.cloud.conftest import POSTGRES_URL
from tests.cloud.fakes import AT, batch, message


async def until(predicate, *ingests, timeout: float = 10.0) -> None:
    """Until predicate() holds, woken by any of the ingests handling a group."""
    async def wait() -> None:
        while not predicate():
            waiters = [asyncio.ensure_future(i.changed.wait()) for i in ingests]
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
    await asyncio.wait_for(wait(), timeout)


async def count(cloud, sql: str, *args) -> int:
    row = await cloud.db.read(lambda conn: conn.one(sql, args))
    return list(row.values())[0]


async def test_a_redelivered_batch_is_stored_once(cloud, make_site):
    site = make_site()
    messages = [message(seq, "session.started", {"transaction_id": seq, "charger_id": "CP-1", "connector_id": 1,
                                                  "meter_start": 100, "start_time": AT}) for seq in (1, 2, 3)]
    await site.up("session", messages)
    await site.up("session", messages)                       # redelivered after a lost PUBACK
    await site.up("session", messages[1:] + [message(4, "session.stopped", {
        "transaction_id": 1, "meter_stop": 1100, "stop_time": "2026-03-01T11:00:00Z", "stop_reason": "Local"})])
    await cloud.wait_handled(3)

    assert await count(cloud, "SELECT count(*) AS n FROM messages WHERE site = ?", "site-a") == 4
    assert cloud.ingest.counts["stored"] == 4 and cloud.ingest.counts["duplicates"] == 5
    assert await count(cloud, "SELECT count(*) AS n FROM sessions WHERE site = ?", "site-a") == 3
    stream = await cloud.db.read(lambda c: c.one("SELECT last_seq, received FROM streams WHERE site = 'site-a'"))
    assert stream == {"last_seq": 4, "received": 4}


async def test_each_stored_batch_is_confirmed_to_its_site_after_the_commit(cloud, make_site):
    """The receipt is what lets a site forget a message: it comes only for what is in the database,
    again for a redelivery; a refused batch gets a receipt that says so (when its seqs can be read)."""
    site = make_site()
    await site.subscribe_down()
    first = [message(seq, "alert.fault") for seq in (1, 2, 3)]
    await site.up("alert", first)
    _, receipt = await site.next_down()
    assert receipt == {"v": 1, "site": "site-a", "stream": "alert", "first_seq": 1, "last_seq": 3,
                       "last_id": first[2]["id"], "status": "stored", "stored": 3, "duplicates": 0}
    assert await count(cloud, "SELECT count(*) AS n FROM messages WHERE site = ?", "site-a") == 3
    await site.up("alert", first[1:])                         # the receipt was lost: the site sends again
    _, again = await site.next_down()
    assert (again["first_seq"], again["last_seq"], again["stored"], again["duplicates"]) == (2, 3, 0, 2)
    # A refused batch whose messages can be made out: the site learns which seqs and why.
    bad = [message(4, "alert.fault"), {**message(5, "alert.fault"), "colour": "red"}, message(6, "alert.fault")]
    await site.publish(up_topic("site-a", "alert"), json.dumps(
        {"v": 1, "site": "site-a", "stream": "alert", "messages": bad}).encode())
    _, refused = await site.next_down()
    assert (refused["status"], refused["first_seq"], refused["last_seq"], refused["last_id"]) == \
        ("rejected", 4, 6, bad[2]["id"])
    assert refused["error"].startswith("schema: ") and "colour" in refused["error"]
    # One that cannot even be read that far: no receipt at all.
    await site.publish(up_topic("site-a", "alert"), b'{"v": 1, "site": "site-a", "stream": "alert"}')
    await cloud.wait_handled(4)
    with pytest.raises(queue.Empty):
        await site.next_down(timeout=0.5)
    assert await count(cloud, "SELECT count(*) AS n FROM messages WHERE site = ?", "site-a") == 3


async def test_the_same_message_again_changes_nothing_it_projected(cloud, make_site):
    site = make_site()
    status = message(1, "connector.status", {"charger_id": "CP-1", "connector_id": 1, "status": "Charging",
                                              "error_code": "NoError"})
    newer = message(2, "connector.status", {"charger_id": "CP-1", "connector_id": 1, "status": "Finishing",
                                             "error_code": "NoError"})
    await site.up("status", [status, newer])
    await site.up("status", [status])                        # an old status redelivered must not win
    await cloud.wait_handled(2)
    rows = await cloud.db.read(lambda c: c.all("SELECT status, seq FROM connectors WHERE site = 'site-a'"))
    assert rows == [{"status": "Finishing", "seq": 2}]


async def test_a_cloud_with_a_session_expiry_gets_what_was_published_meanwhile(make_cloud, make_site):
    site = make_site()
    async with make_cloud("cloud-1", session_expiry=600):
        pass                                                 # its session (and subscription) stays at the broker
    await site.up("cdr", [message(1, "cdr", {"id": "cdr-1", "start_time": AT})])
    async with make_cloud("cloud-1", session_expiry=600) as cloud:
        await cloud.wait_handled(1)
        assert await count(cloud, "SELECT count(*) AS n FROM cdrs") == 1


async def test_by_default_an_absent_cloud_keeps_no_session_at_the_broker(make_cloud, make_site):
    """A shared subscriber's session would keep taking its share while it is away (issue 18): by
    default the broker forgets an instance when it goes, and the site keeps what nobody took."""
    site = make_site()
    async with make_cloud("cloud-1"):
        pass
    await site.up("cdr", [message(1, "cdr", {"id": "cdr-1", "start_time": AT})])   # PUBACK: no matching subscribers
    async with make_cloud("cloud-1") as cloud:
        await site.up("cdr", [message(2, "cdr", {"id": "cdr-2", "start_time": AT})])
        await cloud.wait_handled(1)
        rows = await cloud.db.read(lambda conn: conn.all("SELECT id FROM cdrs"))
        assert [r["id"] for r in rows] == ["cdr-2"]           # a kept session would have handed cdr-1 first


async def test_gaps_in_a_stream_are_noted(cloud, make_site):
    site = make_site()
    await site.up("alert", [message(1, "alert.fault"), message(2, "alert.fault"), message(5, "alert.fault")])
    await cloud.wait_handled(1)
    token = await cloud.add_operator("acme", "site-a")
    status, detail = await cloud.get("/api/v1/sites/site-a", token)
    assert status == 200
    assert detail["streams"]["alert"] == {"last_seq": 5, "received": 3, "missing": 2, "gaps": [[3, 4]],
                                          "last_received_at": detail["streams"]["alert"]["last_received_at"]}
    await site.up("alert", [message(3, "alert.fault"), message(4, "alert.fault")])
    await cloud.wait_handled(2)
    status, detail = await cloud.get("/api/v1/sites/site-a", token)
    assert detail["streams"]["alert"]["missing"] == 0 and detail["streams"]["alert"]["gaps"] == []


async def test_bad_messages_are_refused_counted_and_never_stored(cloud, make_site):
    site = make_site()
    good = batch("site-a", "cdr", [message(1, "cdr", {"id": "cdr-1", "start_time": AT})])
    doc = json.loads(good)
    bad = {
        "not_json": b"{this is not json",
        "schema": json.dumps({**doc, "messages": [{"id": "x", "seq": 0}]}).encode(),
        "too_large": b'{"v":1,"pad":"' + b"x" * (MAX_PAYLOAD_BYTES + 10) + b'"}',
        "version": json.dumps({**doc, "v": 2}).encode(),
        "site_mismatch": batch("site-b", "cdr", [message(1, "cdr", {"id": "cdr-9"})]),   # another site's id
        "stream_mismatch": batch("site-a", "session", [message(1, "session.started")]),
        "deep": b'{"v":1,"site":"site-a","stream":"cdr","messages":' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    }
    for payload in bad.values():
        await site.publish(up_topic("site-a", "cdr"), payload)
    await site.publish(up_topic("site-a", "nonsense"), good)              # not a stream of the contract
    await site.publish(state_topic("site-a"), b'{"v":1,"site":"site-a"}')  # a state without online/at
    await site.publish(up_topic("site-a", "cdr"), good)                   # and the cloud still works
    await cloud.wait_handled(10)

    assert dict(cloud.ingest.rejected) == {"not_json": 2, "schema": 2, "too_large": 1, "version": 1,
                                           "site_mismatch": 1, "stream_mismatch": 1, "topic": 1}
    assert await count(cloud, "SELECT count(*) AS n FROM messages") == 1
    assert await count(cloud, "SELECT count(*) AS n FROM cdrs") == 1
    rows = await cloud.db.read(lambda c: c.all("SELECT reason, count FROM rejections WHERE site = 'site-a'"))
    assert {r["reason"]: r["count"] for r in rows}["schema"] == 2
    online = await cloud.db.read(lambda c: c.one("SELECT online FROM sites WHERE site = 'site-a'"))
    assert online == {"online": None}                                     # the broken state changed nothing


async def test_a_value_the_database_cannot_hold_is_refused_alone(cloud, make_site, database_url):
    site = make_site()
    await site.up("alert", [message(1, "alert.fault", {"info": "nul \u0000 byte"}, id="has-\u0000-nul")])
    await site.up("alert", [message(2, "alert.fault", {"info": "fine"})])
    await cloud.wait_handled(2)
    stored = await count(cloud, "SELECT count(*) AS n FROM messages")
    if database_url.startswith("postgresql"):          # PostgreSQL text cannot hold NUL: refused, the rest goes on
        assert stored == 1 and cloud.ingest.rejected["unstorable"] == 1
    else:
        assert stored == 2


async def test_site_online_from_birth_and_offline_from_last_will(cloud, make_site):
    token = await cloud.add_operator("acme", "site-a")
    site = make_site()
    await site.birth(software_version="2.0.1", backlog={"cdr": 12, "telemetry": 300})
    await cloud.wait_handled(1)
    status, sites = await cloud.get("/api/v1/sites", token)
    assert status == 200
    [view] = sites["items"]
    assert view["online"] is True and view["software_version"] == "2.0.1"
    assert view["backlog"] == {"cdr": 12, "telemetry": 300} and view["last_seen"] is not None

    site.vanish()                                            # no DISCONNECT: the broker publishes the will
    await cloud.wait_handled(2)
    status, sites = await cloud.get("/api/v1/sites", token)
    [view] = sites["items"]
    assert view["online"] is False and view["software_version"] == "2.0.1"


async def test_a_cloud_starting_later_gets_each_sites_retained_state(make_cloud, make_site):
    site = make_site("site-b")
    await site.birth()
    async with make_cloud("cloud-late") as cloud:
        await cloud.wait_handled(1)
        row = await cloud.db.read(lambda c: c.one("SELECT online, software_version FROM sites WHERE site = 'site-b'"))
        assert row == {"online": 1, "software_version": "1.2.3"}


async def test_two_instances_split_the_messages_without_duplicates(make_cloud, make_site):
    site = make_site()
    async with make_cloud("cloud-1") as one, make_cloud("cloud-2") as two:
        sent = 0
        for n in range(1, 31):
            await site.up("telemetry", [message(n, "telemetry", {"n": n})])
            sent += 1
        # a batch sent twice lands on the other instance: still stored once
        first = [message(100, "telemetry", {"n": 100}, id="again")]
        await site.up("telemetry", first)
        await site.up("telemetry", first)
        await until(lambda: one.ingest.handled + two.ingest.handled >= sent + 2, one.ingest, two.ingest)
        assert one.ingest.handled > 0 and two.ingest.handled > 0       # the broker split the load
        assert one.ingest.counts["stored"] + two.ingest.counts["stored"] == 31
        # These points are older than the raw retention: each instance folds its share into the minute's
        # aggregate, and the one sent twice is still counted once.
        assert await count(one, "SELECT (SELECT count(*) FROM telemetry_raw) + "
                                "(SELECT coalesce(sum(points), 0) FROM telemetry_1m) AS n") == 31
        assert await count(one, "SELECT count(*) AS n FROM messages") == 0      # telemetry is stored once


async def test_storage_failures_are_retried_and_nothing_is_acknowledged_before(cloud, make_site, monkeypatch):
    site = make_site()
    real_write = cloud.db.write
    failures = []

    async def flaky(fn, *args):
        if len(failures) < 2 and fn.__name__ == "_store_group":
            failures.append(fn)
            raise ConnectionError("database restarting")
        return await real_write(fn, *args)

    monkeypatch.setattr(cloud.db, "write", flaky)
    acked = []
    real_ack = cloud.service.link.ack
    monkeypatch.setattr(cloud.ingest, "_ack", lambda received: (acked.append(len(failures)), real_ack(received)))
    await site.up("cdr", [message(1, "cdr", {"id": "cdr-1", "start_time": AT})])
    await cloud.wait_handled(1)
    assert len(failures) == 2 and acked == [2]             # the PUBACK went only after the COMMIT
    assert await count(cloud, "SELECT count(*) AS n FROM cdrs") == 1


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)    # SQLite has no connection to lose
async def test_a_lost_database_connection_is_reopened_and_nothing_is_lost(cloud, make_site):

    pid = (await cloud.db.write(lambda c: c.one("SELECT pg_backend_pid() AS pid")))["pid"]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))     # PostgreSQL restarted under the writer
    site = make_site()
    await site.up("cdr", [message(1, "cdr", {"id": "cdr-1", "start_time": AT})])
    await cloud.wait_handled(1)
    assert await count(cloud, "SELECT count(*) AS n FROM cdrs") == 1
