"""Offline is not inactivity, the records side: a session the edge closed while its charger was
away gets its record revised when the charger's real StopTransaction (or its queued MeterValues)
arrives. The revision is a new record that supersedes the old one, which is kept; the API, edgectl
and the CSV show the latest. Replayed through real OCPP frames on loopback, issue 14's figures."""

from __future__ import annotations

import asyncio
import csv
import io
import json

from ocpp.v16 import call

from edge.cli import main
from edge.clock import ManualClock
from edge.journal import Journal, Store
from tests.edge.cdr.helpers import START, next_cdr, record
from tests.edge.conftest import api_call, charger, site_toml, wait_for

SITE = '''
[charge_records]
currency = "EUR"
vat_percent = 0

[session_timeouts]
finish_after_inactivity = 120
finish_after_offline = 120

[[tariffs]]
id = "energy"
type = "duration-energy"
price_per_kwh = 0.40

[[tariff_groups]]
id = "ac"
base = "energy"
evses = ["CP-1"]
'''


def _values(clock: ManualClock, transaction_id: int, wh: int) -> call.MeterValues:
    return call.MeterValues(connector_id=1, transaction_id=transaction_id, meter_value=[
        {"timestamp": clock.now_iso(), "sampled_value": [{"value": str(wh), "context": "Sample.Periodic"}]}])


async def _closed_while_offline(edge, clock: ManualClock, records) -> tuple[int, dict]:
    """Issue 14's reproduction: 78 Wh metered, then the LAN goes down for longer than the offline
    limit; the edge closes the session from the last values. -> transaction id, its first record."""
    async with charger(edge) as cp:
        started = await cp.call(call.StartTransaction(connector_id=1, id_tag="TAG-OK", meter_start=0,
                                                      timestamp=clock.now_iso()))
        tx = started.transaction_id
        clock.advance(300)
        await cp.call(_values(clock, tx, 78))
        await wait_for(lambda: edge.session_watch.running[tx].register_wh == 78, what="the meter values")
    await wait_for(lambda: "CP-1" in edge.session_watch._offline, what="the charger gone")
    clock.advance(120 * 60)
    await edge.session_watch.check()
    return tx, await record(edge, (await next_cdr(records))["id"])


async def test_the_chargers_late_stop_revises_the_record_the_edge_made_when_it_closed_the_session(
        make_edge, tmp_path, capsys):
    clock = ManualClock(START)
    async with make_edge(clock=clock, extra=SITE) as edge:
        edge.charge_records.settle_s = 0.05
        records = edge.bus.subscribe()
        tx, first = await _closed_while_offline(edge, clock, records)
        # Below the site's 0.2 kWh minimum: not billed at all, though the car took 0.416 kWh.
        assert (first["energy_kwh"], first["status"], first["price_gross"], first["revision"]) == (
            "0.078", "Exclusion", "0.00", 1)
        assert first["supersedes"] is None and first["superseded_by"] is None
        assert first["stopped_by_edge"].startswith("closed after the offline limit")
        clock.advance(3600)
        async with charger(edge) as cp:                   # the LAN is back: the queued stop arrives
            answer = await cp.call(call.StopTransaction(meter_stop=416, timestamp="2026-06-01T06:40:00Z",
                                                        transaction_id=tx, reason="EVDisconnected"))
            assert answer.id_tag_info is None or answer.id_tag_info["status"] == "Accepted"
            second = await record(edge, (await next_cdr(records))["id"])
            # The charger sends it again (its answer was lost): nothing more is made.
            await cp.call(call.StopTransaction(meter_stop=416, timestamp="2026-06-01T06:40:00Z",
                                               transaction_id=tx, reason="EVDisconnected"))
        assert (second["transaction_id"], second["energy_kwh"], second["status"], second["price_gross"]) == (
            tx, "0.416", "Successful", "0.17")                # 0.416 kWh x 0.40 = 0.1664
        assert (second["revision"], second["supersedes"], second["superseded_by"]) == (2, first["id"], None)
        assert second["id"] != first["id"] and "late StopTransaction" in second["revision_reason"]
        assert (second["stop_time"], second["stop_reason"]) == ("2026-06-01T06:40:00.000Z", "EVDisconnected")
        kept = await record(edge, first["id"])             # the first is kept as it was, pointing at the next
        assert kept["superseded_by"] == second["id"] and kept["energy_kwh"] == "0.078"
        assert [r["id"] for r in await edge.journal.read(Store.cdrs, all_revisions=True)] == [first["id"],
                                                                                               second["id"]]
        # The local API: the latest by default, all with ?revisions=all, the history of either id.
        assert [r["id"] for r in await api_call(edge, "GET", "/cdrs")] == [second["id"]]
        assert [r["revision"] for r in await api_call(edge, "GET", "/cdrs?revisions=all")] == [1, 2]
        for either in (first["id"], second["id"]):
            history = await api_call(edge, "GET", f"/cdrs/{either}/revisions")
            assert [(h["revision"], h["energy_kwh"]) for h in history] == [(1, "0.078"), (2, "0.416")]
        await api_call(edge, "GET", "/cdrs/nope/revisions", expect=404)
        bad = await api_call(edge, "GET", "/cdrs?revisions=some", expect=400)
        assert "revisions" in bad["error"]
        # The CSV: the latest only, with its revision.
        [row] = list(csv.DictReader(io.StringIO(await _text(edge, "/cdrs/export"))))
        assert (row["id"], row["revision"], row["supersedes"], row["energy_kwh"]) == (
            second["id"], "2", first["id"], "0.416")
        # edgectl: the latest, marked; the history with show.
        capsys.readouterr()
        assert await edgectl(tmp_path, edge, "cdrs") == 0
        out, err = capsys.readouterr()
        assert second["id"] in out and first["id"] not in out and "2 revised" in out
        assert "1 record(s) revise an earlier one" in err
        assert await edgectl(tmp_path, edge, "cdrs", "--all-revisions") == 0
        assert "1 superseded" in capsys.readouterr().out
        assert await edgectl(tmp_path, edge, "cdrs", "show", first["id"]) == 0
        shown = json.loads(capsys.readouterr().out)
        assert shown["id"] == first["id"] and shown["superseded_by"] == second["id"]
        assert [(r["revision"], r["energy_kwh"], r["price_gross"]) for r in shown["revisions"]] == [
            (1, "0.078", "0.00"), (2, "0.416", "0.17")]


async def edgectl(tmp_path, edge, *args: str) -> int:
    (tmp_path / "site.toml").write_text(site_toml(tmp_path, extra=SITE).replace(
        "[api]\nport = 0", f"[api]\nport = {edge.api.bound_port}"))
    return await asyncio.to_thread(main, [args[0], "--config", str(tmp_path / "site.toml"),
                                          "--state-dir", str(tmp_path), *args[1:]])


async def test_queued_meter_values_and_the_stop_after_an_outage_make_one_revision(make_edge):
    clock = ManualClock(START)
    async with make_edge(clock=clock, extra=SITE) as edge:
        edge.charge_records.settle_s = 0.5
        records = edge.bus.subscribe()
        tx, first = await _closed_while_offline(edge, clock, records)
        clock.advance(3600)
        async with charger(edge) as cp:                   # what the charger queued while away, in order
            for minutes, wh in ((10, 150), (20, 290), (30, 400)):
                await cp.call(call.MeterValues(connector_id=1, transaction_id=tx, meter_value=[
                    {"timestamp": f"2026-06-01T06:{minutes}:00Z", "sampled_value": [{"value": str(wh)}]}]))
            await cp.call(call.StopTransaction(meter_stop=416, timestamp="2026-06-01T06:40:00Z",
                                               transaction_id=tx, reason="EVDisconnected"))
            second = await record(edge, (await next_cdr(records))["id"])
        assert not edge.charge_records._corrections                     # nothing else pending
        kept = await edge.journal.read(Store.cdrs, all_revisions=True)
    assert [(r["revision"], r["energy_kwh"]) for r in kept] == [(1, "0.078"), (2, "0.416")]
    assert (second["supersedes"], second["stop_reason"]) == (first["id"], "EVDisconnected")


async def test_a_correction_the_edge_missed_is_revised_at_its_next_start(make_edge):
    clock = ManualClock(START)
    async with make_edge(clock=clock, extra=SITE) as edge:
        records = edge.bus.subscribe()
        tx, first = await _closed_while_offline(edge, clock, records)
        path = str(edge.config.state_path(edge.config.journal.path))
    # The late stop was committed and the edge stopped before its record was revised.
    journal = Journal(path)
    async with journal:
        runner = asyncio.create_task(journal.run())
        outcome = await journal.write(Store.stop_transaction, "CP-1", tx, 416, "2026-06-01T06:40:00Z",
                                      "EVDisconnected", None, clock.now_iso())
        runner.cancel()
    assert outcome.kind == "corrected"
    async with make_edge(clock=clock, extra=SITE) as edge:
        kept = await _until(edge, lambda rows: len(rows) == 2)
        assert await edge.charge_records.catch_up() == []          # once
    assert [(r["revision"], r["supersedes"], r["energy_kwh"]) for r in kept] == [
        (1, None, "0.078"), (2, first["id"], "0.416")]
    assert "late StopTransaction" in kept[1]["revision_reason"]


async def _until(edge, done, timeout: float = 5.0) -> list[dict]:
    async with asyncio.timeout(timeout):
        while not done(rows := await edge.journal.read(Store.cdrs, all_revisions=True)):
            await asyncio.sleep(0.02)
    return rows


async def _text(edge, path: str) -> str:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{edge.api.bound_port}/api/v1{path}",
                            headers={"Authorization": f"Bearer {edge.api._token}"}) as resp:
            assert resp.status == 200 and resp.content_type == "text/csv"
            return await resp.text()
