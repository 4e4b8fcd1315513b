"""Chaos: chargers charge continuously while the broker, the cloud and the edge are SIGKILLed and
started again at random moments (fixed seed, six kills: each of the three twice). At the end every
CDR of the edge's journal is in the cloud's database exactly once with the same content, and every
configuration push was applied and acked, or cleanly rejected."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from pathlib import Path

from tests.sync.harness import CHARGERS, CloudProcess, Driver, EdgeProcess, make_broker, wait_until

SEED = 20260701
KILLS = ["broker", "cloud", "edge"] * 2

VALID_TARIFFS = {"tariffs": [{"id": "flat", "type": "flat", "price_per_session": "5.00"}],
                 "tariff_groups": [{"id": "all", "base": "flat", "evses": list(CHARGERS)}]}
# Valid for the contract (the cloud publishes it), wrong for the site (the edge rejects it).
BROKEN_TARIFFS = {"tariffs": VALID_TARIFFS["tariffs"],
                  "tariff_groups": [{"id": "g", "base": "nope", "evses": ["CP-9"]}]}
TERMINAL = {"applied", "rejected", "ignored", "done", "failed", "expired"}


async def push_configs(cloud: CloudProcess, rng: random.Random, stop: asyncio.Event, pushes: list[dict]) -> None:
    """One configuration push at a time, each awaited until the site's ack (across kills)."""
    n = 0
    while not stop.is_set():
        n += 1
        broken = n % 3 == 0
        document = BROKEN_TARIFFS if broken else \
            {**VALID_TARIFFS, "tariffs": [{**VALID_TARIFFS["tariffs"][0], "price_per_session": f"{n}.00"}]}
        record = {"n": n, "broken": broken, "id": None, "status": None}
        while record["id"] is None:             # the cloud may be down right now
            try:
                status, body = await cloud.request("POST", "/config/tariffs", {"document": document})
                assert status == 202, (status, body)
                record["id"], record["version"] = body["id"], body["version"]
            except (OSError, asyncio.TimeoutError):
                await asyncio.sleep(0.3)
        pushes.append(record)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                status, body = await cloud.request("GET", f"/pushes/{record['id']}")
                record["status"], record["error"] = body.get("status"), body.get("error")
                record["applied_version"] = body.get("applied_version")
                if record["status"] in TERMINAL:
                    break
            except (OSError, asyncio.TimeoutError):
                pass
            await asyncio.sleep(0.3)
        else:
            return                               # the final check reports it
        await asyncio.sleep(rng.uniform(0.5, 2.0))


async def test_chaos_every_cdr_once_and_every_push_answered(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    broker = make_broker(tmp_path).start()
    cloud = CloudProcess(tmp_path, broker)
    edge = EdgeProcess(tmp_path, broker)
    drivers = [Driver(c, edge.ocpp_port, random.Random(rng.random())) for c in CHARGERS]
    tasks: list[asyncio.Task] = []
    try:
        cloud.setup_operator()
        await cloud.start_ready()
        await edge.start_ready()
        tasks = [asyncio.create_task(d.run()) for d in drivers]
        stop_pushing = asyncio.Event()
        pushes: list[dict] = []
        pusher = asyncio.create_task(push_configs(cloud, random.Random(rng.random()), stop_pushing, pushes))

        order = KILLS[:]
        rng.shuffle(order)
        log = []
        for target in order:
            await asyncio.sleep(rng.uniform(1.0, 3.0))
            down = rng.uniform(0.2, 2.0)
            log.append((round(time.monotonic(), 2), target, round(down, 2)))
            if target == "broker":
                broker.kill()
                await asyncio.sleep(down)
                broker.start()
            elif target == "cloud":
                cloud.kill()
                await asyncio.sleep(down)
                await cloud.start_ready()
            else:
                edge.kill()
                await asyncio.sleep(down)
                await edge.start_ready()
        await asyncio.sleep(2)

        # Calm: the drivers finish their sessions, the pusher its push; then everything drains.
        for d in drivers:
            d.stopping = True
        stop_pushing.set()
        calm = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
        drivers_done = time.monotonic() - calm
        await asyncio.wait_for(pusher, 70)
        pusher_done = time.monotonic() - calm
        await wait_until(lambda: not any(edge.outbox_backlog().get(s) for s in ("cdr", "session")),
                         60, "the edge's cdr and session outbox to drain")
        edge_ids = {r["id"] for r in edge.rows("SELECT id FROM cdrs")}
        await wait_until(lambda: {r["id"] for r in cloud.rows("SELECT id FROM cdrs")} >= edge_ids,
                         30, "the cloud to store every CDR")

        # -- every CDR exactly once, identical -------------------------------------------------------
        edge_cdrs = edge.rows("SELECT seq, id, session_key, transaction_id, document FROM cdrs ORDER BY seq")
        cloud_cdrs = cloud.rows("SELECT site, id, body FROM cdrs")
        sessions = sum(len(d.sessions) for d in drivers)
        summary = (f"kills {log}; {sessions} sessions, {len(edge_cdrs)} edge CDRs, {len(cloud_cdrs)} cloud CDRs; "
                   f"driver errors {[e for d in drivers for e in d.errors][:10]}")
        outcomes = Counter((r.get("auth"), "tx" in r, "stop_s" in r, r.get("tx", 0) > 0 if "tx" in r else None)
                           for d in drivers for r in d.sessions)
        summary += f"; outcomes (auth, started, stopped, online tx) {dict(outcomes)}"
        summary += (f"; calm: drivers {drivers_done:.1f} s, pusher {pusher_done:.1f} s, "
                    f"all {time.monotonic() - calm:.1f} s")
        summary += f"; pushes {[(p['version'], p['broken'], p['status']) for p in pushes]}"
        print(summary)
        assert len(edge_cdrs) >= 10, summary
        assert edge.starts == 3 and cloud.starts == 3 and broker.starts == 3, summary
        cloud_ids = [r["id"] for r in cloud_cdrs]
        assert len(cloud_ids) == len(set(cloud_ids)), "a CDR stored twice in the cloud"
        assert {r["site"] for r in cloud_cdrs} == {"test-site"}
        assert set(cloud_ids) == edge_ids, (f"missing in the cloud: {edge_ids - set(cloud_ids)}; "
                                            f"unknown to the edge: {set(cloud_ids) - edge_ids}")
        by_id = {r["id"]: json.loads(r["body"]) for r in cloud_cdrs}
        for r in edge_cdrs:
            assert by_id[r["id"]] == json.loads(r["document"]), f"CDR {r['id']} differs"
        # One record per charging session: no session (charger, connector, start, stop, meters) twice.
        keys = [r["session_key"] for r in edge_cdrs if r["session_key"] is not None]
        assert len(keys) == len(set(keys)), "a session has two CDRs"
        txs = [r["transaction_id"] for r in edge_cdrs if r["transaction_id"] is not None]
        assert len(txs) == len(set(txs))

        # -- every push applied and acked, or cleanly rejected ---------------------------------------
        assert len(pushes) >= 3, pushes
        for p in pushes:
            if p["broken"]:
                assert p["status"] == "rejected" and 'base tariff "nope" does not exist' in (p["error"] or ""), p
            else:
                assert p["status"] == "applied" and p["applied_version"] == p["version"], p
        applied = [p for p in pushes if p["status"] == "applied"]
        in_force = edge.rows("SELECT version, message_id FROM downlink_documents WHERE kind = 'tariffs'")
        assert [(r["version"], r["message_id"]) for r in in_force] == [(applied[-1]["version"], applied[-1]["id"])]
        rejected_log = edge.rows("SELECT message_id FROM downlink_log WHERE status = 'rejected'")
        assert {p["id"] for p in pushes if p["broken"]} <= {r["message_id"] for r in rejected_log}
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        edge.terminate()
        cloud.terminate()
        broker.stop()
