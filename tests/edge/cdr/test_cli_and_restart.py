"""edgectl cdrs against a running edge, and records that survive (or are made
up for) a restart."""

from __future__ import annotations

import asyncio
import csv
import json
import sqlite3

from ocpp.v16 import call

from edge.cli import main
from edge.clock import ManualClock
from edge.journal import Store
from tests.edge.cdr.helpers import START, next_cdr
from tests.edge.conftest import charger, site_toml

TARIFF = '''
[[tariffs]]
id = "kwh"
type = "duration-energy"
price_per_kwh = 0.5
[[tariff_groups]]
id = "all"
base = "kwh"
evses = ["CP-1"]
'''


async def edgectl(tmp_path, *args: str) -> int:
    return await asyncio.to_thread(main, [args[0], "--config", str(tmp_path / "site.toml"),
                                          "--state-dir", str(tmp_path), *args[1:]])


async def run_sessions(edge, clock, sessions) -> list[dict]:
    records = edge.bus.subscribe()
    made = []
    async with charger(edge) as cp:
        for meter_stop, minutes in sessions:
            started = await cp.call(call.StartTransaction(connector_id=1, id_tag="TAG-OK", meter_start=0,
                                                          timestamp=clock.now_iso()))
            clock.advance(minutes * 60)
            await cp.call(call.StopTransaction(meter_stop=meter_stop, timestamp=clock.now_iso(),
                                               transaction_id=started.transaction_id))
            made.append(await next_cdr(records))
            clock.advance(3600)
    return made


async def test_edgectl_lists_shows_and_exports_records(make_edge, tmp_path, capsys):
    clock = ManualClock(START)
    async with make_edge(clock=clock, extra=TARIFF, timezone="Europe/Berlin") as edge:
        (tmp_path / "site.toml").write_text(site_toml(tmp_path, extra=TARIFF).replace(
            "[api]\nport = 0", f"[api]\nport = {edge.api.bound_port}"))
        made = await run_sessions(edge, clock, [(10_000, 60), (100, 60)])
        capsys.readouterr()

        assert await edgectl(tmp_path, "cdrs") == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].split()[:3] == ["ID", "CHARGER_ID", "CONNECTOR_ID"]
        assert made[0]["id"] in lines[1] and "Successful" in lines[1] and "Exclusion" in lines[2]

        assert await edgectl(tmp_path, "cdrs", "show", made[0]["id"]) == 0
        assert json.loads(capsys.readouterr().out)["price_gross"] == "5.00"

        out = tmp_path / "march.csv"
        assert await edgectl(tmp_path, "cdrs", "export", "--from", "2026-06-01", "--to", "2026-06-01",
                             "--status", "Exclusion", "-o", str(out)) == 0
        [row] = list(csv.DictReader(out.open()))
        assert (row["id"], row["status"], row["start"]) == (made[1]["id"], "Exclusion", "2026-06-01T10:00:00+02:00")
        assert "consumption too low" in row["status_reasons"]

        assert await edgectl(tmp_path, "cdrs", "export", "--charger", "CP-2") == 0
        assert capsys.readouterr().out.splitlines()[0].startswith("id,site_id,charger_id,")

        assert await edgectl(tmp_path, "cdrs", "export", "--from", "last week") == 1
        assert "last week" in capsys.readouterr().err


async def test_a_record_lost_before_a_restart_is_made_again_with_the_same_id(make_edge, tmp_path):
    clock = ManualClock(START)
    async with make_edge(clock=clock, extra=TARIFF) as edge:
        [made] = await run_sessions(edge, clock, [(7_000, 90)])
    # As if the edge had died between committing the stop and keeping the record.
    with sqlite3.connect(tmp_path / "journal.sqlite") as db:
        db.execute("DELETE FROM cdrs")
    async with make_edge(clock=clock, extra=TARIFF) as edge:
        await asyncio.wait_for(_until_recorded(edge), 10)
        [again] = await edge.journal.read(Store.cdrs)
    assert again["id"] == made["id"] and again["price_gross"] == "3.50"


async def _until_recorded(edge) -> None:
    while not await edge.journal.read(Store.cdrs):
        await asyncio.sleep(0.01)
