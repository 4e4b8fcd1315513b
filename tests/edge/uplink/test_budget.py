"""The disk budget during an outage: telemetry is thinned and the drop reported,
every CDR still arrives, and the cloud sees gapless seqs on every stream."""

from __future__ import annotations

import asyncio

from tests.edge.uplink.conftest import drained, eventually
from tests.edge.uplink.helpers import make_cdrs


async def test_outage_over_budget_thins_telemetry_and_keeps_every_cdr(make_uplinked_edge, cloud, live_broker):
    live_broker.stop()
    async with make_uplinked_edge(disk_budget_mb=0.05) as edge:        # 52 kB
        outbox = edge.uplink.outbox
        await asyncio.gather(*(outbox.add("telemetry", "telemetry", {"n": n, "circuits": [{"id": "grid"}] * 3})
                               for n in range(600)))
        ids = await make_cdrs(edge, 60)
        await outbox.enforce_budget()
        backlog = await outbox.backlog()
        # (the uplink checks the budget by itself too: one report per check that removed something)
        assert backlog["cdr"] == 60 and 0 < backlog["telemetry"] < 600 and backlog["alert"] >= 1
        live_broker.start()
        await eventually(lambda: len(cloud.up_messages("cdr")) >= 60, timeout=20, what="every record")
        await eventually(lambda: cloud.up_messages("alert"), what="the drop report")
        await drained(edge)
        status = await edge.uplink.status()

    assert [m["id"] for m in cloud.up_messages("cdr")] == ids
    telemetry = cloud.up_messages("telemetry")
    assert [m["seq"] for m in telemetry] == list(range(1, backlog["telemetry"] + 1))     # no gaps: seqs come at send
    kept = [m["body"]["n"] for m in telemetry]
    assert kept == sorted(kept) and kept[-1] >= 590
    reports = cloud.up_messages("alert")
    assert {r["type"] for r in reports} == {"alert.outbox_dropped"}
    assert {(r["body"]["stream"], r["body"]["reason"]) for r in reports} == {("telemetry", "disk budget")}
    assert sum(r["body"]["thinned"] + r["body"]["dropped"] for r in reports) == 600 - backlog["telemetry"]
    assert status["streams"]["telemetry"]["dropped"] == 600 - backlog["telemetry"]
    assert status["streams"]["cdr"]["dropped"] == 0
