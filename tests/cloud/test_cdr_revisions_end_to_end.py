"""Issue 14 end to end: a real edge closes a session while its charger is offline, the charger's
late StopTransaction revises the record, and both records travel through a real Mosquitto to the
real cloud service exactly once; the cloud's API and CSV give the latest and the history.
(SQLite and PostgreSQL.)"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ocpp.v16 import call

from edge.clock import ManualClock
from edge.config import parse_config
from tests.edge.cdr.helpers import START, next_cdr, record
from tests.edge.cdr.test_revisions import SITE, _closed_while_offline
from tests.edge.conftest import charger, running_edge, site_toml
from tests.edge.uplink.conftest import drained, uplink_toml


async def test_both_records_reach_the_cloud_once_and_it_shows_the_latest_and_the_history(make_cloud, broker,
                                                                                          tmp_path: Path):
    clock = ManualClock(START)
    config = parse_config(site_toml(tmp_path, extra=SITE + uplink_toml(broker)), "test.toml",
                          state_dir=str(tmp_path))
    async with make_cloud() as cloud:
        token = await cloud.add_operator("acme", "test-site")
        async with running_edge(config, clock) as edge:
            edge.charge_records.settle_s = 0.05
            records = edge.bus.subscribe()
            tx, first = await _closed_while_offline(edge, clock, records)
            clock.advance(3600)
            async with charger(edge) as cp:
                await cp.call(call.StopTransaction(meter_stop=416, timestamp="2026-06-01T06:40:00Z",
                                                   transaction_id=tx, reason="EVDisconnected"))
                second = await record(edge, (await next_cdr(records))["id"])
            await drained(edge)                 # every message left the outbox: the cloud's receipts came

        stored = await cloud.db.read(lambda c: c.all(
            "SELECT id, stream, seq FROM messages WHERE site = 'test-site' AND stream = 'cdr' ORDER BY seq"))
        assert [(m["id"], m["seq"]) for m in stored] == [(first["id"], 1), (second["id"], 2)]
        status, page = await cloud.get("/api/v1/sites/test-site/cdrs", token)
        assert status == 200 and [(r["id"], r["revision"], r["energy_kwh"], r["price_gross"])
                                  for r in page["items"]] == [(second["id"], 2, "0.416", "0.17")]
        status, history = await cloud.get(f"/api/v1/sites/test-site/cdrs/{first['id']}/revisions", token)
        assert [(r["id"], r["revision"], r["supersedes"], r["superseded_by"], r["energy_kwh"])
                for r in history["items"]] == [(first["id"], 1, None, second["id"], "0.078"),
                                               (second["id"], 2, first["id"], None, "0.416")]
        assert "late StopTransaction" in history["items"][1]["revision_reason"]
        async with cloud.http.get(f"{cloud.base}/api/v1/sites/test-site/cdrs", params={"format": "csv"},
                                  headers={"Authorization": f"Bearer {token}"}) as response:
            [row] = list(csv.DictReader(io.StringIO(await response.text())))
        assert (row["id"], row["revision"], row["supersedes"], row["energy_kwh"], row["status"]) == (
            second["id"], "2", first["id"], "0.416", "Successful")
