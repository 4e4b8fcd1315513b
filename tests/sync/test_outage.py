"""A long outage of the uplink (the edge cannot tell a 10 s outage from a 48 h one but by the size
of its backlog; the sessions are short so that the backlog is large): charging goes on as before,
undisturbed, and after the outage the backlog drains to the cloud, in order, each CDR once. The site is
mixed: two OCPP 1.6 chargers and a 2.0.1 station, driven alike (tests/stations.py).

Two outages: the site's link cut (a relay between the edge and the broker is closed; the broker and
the cloud stay up), and the broker stopped and started again (the edge and the cloud both lose it)."""

from __future__ import annotations

import asyncio
import json
import random
import time
from pathlib import Path

from tests.edge.uplink.conftest import Cloud as Observer
from tests.sync.harness import CHARGERS, CloudProcess, Driver, EdgeProcess, LinkCut, make_broker, wait_until

# Ten seconds: each charger charges about ten sessions in it (the test asks for three), a backlog of dozens.
OUTAGE_S = 10


def first_seen(messages: list[dict]) -> list[dict]:
    seen, out = set(), []
    for m in messages:
        if m["id"] not in seen:
            seen.add(m["id"])
            out.append(m)
    return out


async def test_link_outage_charging_goes_on_and_the_backlog_drains_in_order(tmp_path: Path) -> None:
    await outage(tmp_path, "link")


async def test_broker_outage_charging_goes_on_and_the_backlog_drains_in_order(tmp_path: Path) -> None:
    await outage(tmp_path, "broker")


async def outage(tmp_path: Path, how: str) -> None:
    rng = random.Random(48)
    broker = make_broker(tmp_path).start()
    cloud = CloudProcess(tmp_path, broker)
    link = LinkCut(broker.port)
    await link.up()
    edge = EdgeProcess(tmp_path, broker, broker_port=link.port)
    # A mixed site: the last charger is an OCPP 2.0.1 station, the others 1.6 (the same driver, tests/stations.py).
    drivers = [Driver(c, edge.ocpp_port, random.Random(rng.random()), session_s=(0.3, 1.0), idle_s=(0.05, 0.3),
                      version="2.0.1" if c == CHARGERS[-1] else "1.6")
               for c in CHARGERS]
    tasks: list[asyncio.Task] = []
    # A second, plain subscriber with a persistent session: it sees the order in which batches arrive.
    # It sends no receipts: only the real cloud may tell the edge that a batch is stored.
    observer = Observer(broker, client_id="outage-observer", filters=("sc/v1/sites/test-site/up/#",),
                        receipts=False)
    try:
        cloud.setup_operator()
        await cloud.start_ready()
        observer.start()
        await edge.start_ready()
        tasks = [asyncio.create_task(d.run()) for d in drivers]
        await wait_until(lambda: len(edge.rows("SELECT id FROM cdrs")) >= 3, 30, "CDRs before the outage")
        before = {r["id"] for r in edge.rows("SELECT id FROM cdrs")}

        if how == "broker":
            broker.stop()
        else:
            await link.down()
        outage_start = time.monotonic()
        sessions_before = [len(d.sessions) for d in drivers]
        await asyncio.sleep(OUTAGE_S)
        for d in drivers:
            d.stopping = True
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
        outage_s = time.monotonic() - outage_start
        during = [r for d, n in zip(drivers, sessions_before) for r in d.sessions[n + 1:]]   # begun in the outage

        # -- charging never paused ------------------------------------------------------------------
        assert len(during) >= 3 * len(CHARGERS), len(during)
        for r in during:
            assert "error" not in r and r["online_at_start"], r
            # The edge answered, not the charger's offline rules.
            assert r["auth"] == "Accepted" and r["tx"], r
            assert max(r["auth_s"], r["start_s"], r.get("stop_s", 0)) < 2.0, r
        statuses = [e for d in drivers for name, e in d.sim.events if name == "authorize"]
        # Decided online: by the edge, or from the list it pushed (a 2.0.1 station pre-authorizes from it, C10,
        # and the edge checks the token in the TransactionEvent), never by the charger's offline rules.
        assert statuses and all(e["status"] == "Accepted" and e["source"] != "offline" for e in statuses), \
            [e for e in statuses if e["status"] != "Accepted" or e["source"] == "offline"][:5]
        assert {d.station.version for d in drivers if len(d.sessions) > 3} == {"1.6", "2.0.1"}
        backlog = edge.outbox_backlog()
        made_in_outage = {r["id"] for r in edge.rows("SELECT id FROM cdrs")} - before
        assert backlog.get("cdr", 0) >= len(made_in_outage) >= len(during), (backlog, len(made_in_outage))
        assert backlog.get("session", 0) >= 2 * len(during)

        # -- the broker is back: the backlog drains in order ----------------------------------------
        if how == "broker":
            broker.start()
        else:
            await link.up()
        t0 = time.monotonic()
        await wait_until(lambda: not any(edge.outbox_backlog().values()), 60, "the outbox to drain")
        drain_s = time.monotonic() - t0
        edge_cdrs = edge.rows("SELECT id, document FROM cdrs ORDER BY seq")
        await wait_until(lambda: len(cloud.rows("SELECT id FROM cdrs")) >= len(edge_cdrs), 30,
                         "the cloud to store every CDR")
        cloud_cdrs = {r["id"]: json.loads(r["body"]) for r in cloud.rows("SELECT id, body FROM cdrs")}
        assert set(cloud_cdrs) == {r["id"] for r in edge_cdrs}
        assert all(cloud_cdrs[r["id"]] == json.loads(r["document"]) for r in edge_cdrs)

        # The observer (only a witness of the order) kept its session over the broker's restart: what the edge
        # sent before the observer was back and subscribed again was queued for it, not lost.
        if how == "broker":
            await wait_until(lambda: len(observer.sessions_present) >= 2, 15, "the observer to reconnect")
        assert all(observer.sessions_present[1:]), observer.sessions_present
        await wait_until(lambda: {m["id"] for m in observer.up_messages("cdr")} >= set(cloud_cdrs), 15,
                         "the observer to see every CDR")
        for stream in ("cdr", "session"):
            arrived = first_seen(observer.up_messages(stream))
            seqs = [m["seq"] for m in arrived]
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), (stream, seqs)   # oldest first, no gap
        cdr_order = [m["id"] for m in first_seen(observer.up_messages("cdr"))]
        assert cdr_order == [r["id"] for r in edge_cdrs][-len(cdr_order):]          # the journal's order
        print(f"outage {outage_s:.1f} s: {len(during)} sessions charged, backlog {backlog}, "
              f"drained in {drain_s:.2f} s; {len(edge_cdrs)} CDRs in the cloud")
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if broker.running:
            observer.stop()
        # Off the event loop: it runs the relay, through which the edge says its goodbye to the broker.
        await asyncio.to_thread(edge.terminate)
        cloud.terminate()
        await link.down()
        broker.stop()
