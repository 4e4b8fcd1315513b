"""Each charge record is its own failure domain: what is stored in the journal
(a charger clock that was never set, a session no tariff can price) cannot stop
the edge from starting nor from serving the other chargers; a record that cannot
be made is quarantined (kept with the error, shown by the API and edgectl) and
made once the cause is fixed."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from ocpp.v16 import call

from edge.auth.model import Evse
from edge.cdr.tariffs import Rates, Tariff, TariffBook, TariffGroup
from edge.cli import main
from edge.config import parse_config
from edge.journal import Journal, Sample, Store
from tests.edge.conftest import api_call, charger, running_edge, site_toml

TOD = '''
[[tariffs]]
id = "tod"
type = "duration-energy-tod"
price_per_kwh = 0.40
night_price_per_kwh = 0.30
price_per_minute = 0.01
day_starts = "06:00"
night_starts = "22:00"
[[tariff_groups]]
id = "all"
base = "tod"
evses = ["CP-1"]
'''
ARRIVED = "2026-06-01T06:00:00.000Z"
ENERGY = "Energy.Active.Import.Register"


def _config(tmp_path, extra: str = TOD):
    return parse_config(site_toml(tmp_path, extra=extra, timezone="Europe/Berlin"), "test.toml",
                        state_dir=str(tmp_path))


def _session(store: Store, connector: int, start: str, sample_at: str, stop: str) -> int:
    """A whole session as a charger sent it, stored the way the OCPP layer stores one."""
    tx = store.start_transaction("CP-1", connector, "TAG-OK", "Accepted", 1000, start, None, ARRIVED).transaction_id
    store.record_samples("CP-1", [Sample(connector, tx, sample_at, ENERGY, None, 3000.0, "Wh", None, None)], ARRIVED)
    assert store.stop_transaction("CP-1", tx, 5000, stop, "Local", None, ARRIVED).kind == "stopped"
    return tx


async def _store_sessions(config, *sessions: tuple[int, str, str, str]) -> list[int]:
    journal = Journal(str(config.state_path(config.journal.path)))
    async with journal:
        runner = asyncio.create_task(journal.run())
        ids = [await journal.write(_session, *s) for s in sessions]
        runner.cancel()
    return ids


async def edgectl(tmp_path, edge, *args: str) -> int:
    (tmp_path / "site.toml").write_text(site_toml(tmp_path, extra=TOD, timezone="Europe/Berlin").replace(
        "[api]\nport = 0", f"[api]\nport = {edge.api.bound_port}"))
    return await asyncio.to_thread(main, [args[0], "--config", str(tmp_path / "site.toml"),
                                          "--state-dir", str(tmp_path), *args[1:]])


async def test_records_of_a_charger_with_an_unset_clock_cannot_stop_the_edge(tmp_path, capsys):
    config = _config(tmp_path)
    never_set, reset_once, fine = await _store_sessions(
        config,
        # The clock never set: every time near year 1.
        (1, "0001-01-01T00:00:00Z", "0001-01-01T00:30:00Z", "0001-01-01T01:00:00Z"),
        # Started at year 1, set by the time it stopped: 2025 years under a time-of-day tariff.
        (2, "0001-01-01T00:00:00Z", "2026-06-01T06:30:00Z", "2026-06-01T07:00:00Z"),
        (1, "2026-06-01T06:00:00Z", "2026-06-01T06:30:00Z", "2026-06-01T07:00:00Z"))

    async with running_edge(config) as edge:
        # The catch-up at start has been through them all; the edge serves chargers meanwhile.
        async with charger(edge, "CP-2", password=None) as cp2:
            assert (await cp2.call(call.Heartbeat())).current_time
        for _ in range(200):
            made = {r["transaction_id"]: r for r in await api_call(edge, "GET", "/cdrs")}
            quarantined = await api_call(edge, "GET", "/cdrs/quarantine")
            if len(made) == 2 and quarantined:
                break
            await asyncio.sleep(0.05)
        assert set(made) == {never_set, fine}
        assert made[fine]["price_gross"] == "2.20" and made[fine]["status"] == "Successful"
        assert made[never_set]["start_time"].startswith("0001-01-01T00:00:00")
        [kept] = quarantined
        assert (kept["transaction_id"], kept["charger_id"], kept["connector_id"]) == (reset_once, "CP-1", 2)
        assert "Unpriceable" in kept["error"] and "time-of-day tariff prices at most" in kept["error"]

        capsys.readouterr()
        assert await edgectl(tmp_path, edge, "cdrs") == 0
        assert "1 transaction(s) without a record: quarantined" in capsys.readouterr().err
        assert await edgectl(tmp_path, edge, "cdrs", "quarantined") == 0
        out = capsys.readouterr().out
        assert str(reset_once) in out and "Unpriceable" in out
        # Retried with the cause still there: it stays, and says so.
        assert await edgectl(tmp_path, edge, "cdrs", "retry", str(reset_once)) == 1
        assert "still quarantined: Unpriceable" in capsys.readouterr().out
        [again] = await api_call(edge, "GET", "/cdrs/quarantine")
        assert again["attempts"] == 2

        # The cause fixed (the cloud sends tariffs without time of day): it is made by itself.
        flat = Tariff("kwh", "duration-energy", rates=Rates(per_kwh=Decimal("0.40")))
        edge.charge_records.book = TariffBook({"all": TariffGroup("all", flat)}, ((Evse("CP-1", None), "all"),))
        for _ in range(200):
            if not await api_call(edge, "GET", "/cdrs/quarantine"):
                break
            await asyncio.sleep(0.05)
        [record] = [r for r in await api_call(edge, "GET", "/cdrs") if r["transaction_id"] == reset_once]
        assert record["price_computed_gross"] == "1.60" and record["status"] == "Exclusion"
        assert record["price_gross"] == "0.00" and record["billed"] is False     # an Exclusion is not billed
        assert await edgectl(tmp_path, edge, "cdrs", "retry") == 0
        assert "nothing in quarantine" in capsys.readouterr().out


async def test_a_record_that_fails_is_quarantined_while_the_site_goes_on(make_edge, tmp_path):
    async with make_edge(extra=TOD, timezone="Europe/Berlin") as edge:
        # Whatever its inputs: pricing a tariff that blows up is one record's problem.
        class Exploding(TariffBook):
            def group_for(self, charger_id, connector_id):
                if connector_id == 2:
                    raise ArithmeticError("a tariff nobody can compute")
                return super().group_for(charger_id, connector_id)
        edge.charge_records.book = Exploding(edge.charge_records.book.groups, edge.charge_records.book.evses)
        records = edge.bus.subscribe()
        async with charger(edge) as cp:
            bad = await cp.call(call.StartTransaction(connector_id=2, id_tag="TAG-OK", meter_start=0,
                                                      timestamp="2026-06-01T06:00:00Z"))
            await cp.call(call.StopTransaction(meter_stop=1000, timestamp="2026-06-01T07:00:00Z",
                                               transaction_id=bad.transaction_id))
            good = await cp.call(call.StartTransaction(connector_id=1, id_tag="TAG-OK", meter_start=0,
                                                       timestamp="2026-06-01T06:00:00Z"))
            answer = await cp.call(call.StopTransaction(meter_stop=1000, timestamp="2026-06-01T07:00:00Z",
                                                        transaction_id=good.transaction_id))
            assert answer is not None
            while (event := await asyncio.wait_for(records.get(), 10)).kind != "cdr.created":
                pass
            assert event.data["transaction_id"] == good.transaction_id
            [kept] = await api_call(edge, "GET", "/cdrs/quarantine")
            assert kept["transaction_id"] == bad.transaction_id
            assert kept["error"] == "ArithmeticError: a tariff nobody can compute"
            assert (await cp.call(call.Heartbeat())).current_time
        result = await api_call(edge, "POST", "/cdrs/quarantine/retry", body={"transaction_id": bad.transaction_id})
        assert result == [{"transaction_id": bad.transaction_id, "made": False, "cdr_id": None,
                           "error": "ArithmeticError: a tariff nobody can compute"}]
        missing = await api_call(edge, "POST", "/cdrs/quarantine/retry", body={"transaction_id": 1}, expect=404)
        assert "transaction 1 is not in quarantine" in missing["error"]


# -- revisions (a transaction corrected after the edge closed it) and the quarantine ----------

JUMPED = "2028-06-01T06:30:00Z"     # a charger clock that jumped two years ahead (plausible, and wrong)


def _closed_by_edge(store: Store, stop_time: str) -> int:
    """A session the edge closed from its last meter values (3000 Wh at `stop_time`), stored as the
    sessions layer stores one; no tariff pinned (it started before this software)."""
    tx = store.start_transaction("CP-1", 1, "TAG-OK", "Accepted", 1000, "2026-06-01T06:00:00Z", None,
                                 ARRIVED).transaction_id
    store.record_samples("CP-1", [Sample(1, tx, stop_time, ENERGY, None, 3000.0, "Wh", None, None)], ARRIVED)
    assert store.close_transaction(tx, 3000, stop_time, ARRIVED, "closed after the offline limit")
    return tx


async def _stored(config, stop_time: str) -> int:
    journal = Journal(str(config.state_path(config.journal.path)))
    async with journal:
        runner = asyncio.create_task(journal.run())
        tx = await journal.write(_closed_by_edge, stop_time)
        runner.cancel()
    return tx


async def _until(edge, path: str, done, timeout: float = 10.0):
    async with asyncio.timeout(timeout):
        while not done(answer := await api_call(edge, "GET", path)):
            await asyncio.sleep(0.02)
    return answer


async def test_a_correction_of_a_transaction_whose_record_was_never_made_makes_its_first_record(tmp_path):
    config = _config(tmp_path)
    tx = await _stored(config, JUMPED)        # closed at the jumped time: 2 years under time of day
    async with running_edge(config) as edge:
        edge.charge_records.settle_s = 0.05
        [kept] = await _until(edge, "/cdrs/quarantine", bool)
        assert kept["transaction_id"] == tx and "Unpriceable" in kept["error"]
        records = edge.bus.subscribe()
        async with charger(edge) as cp:        # the charger's own stop, with its clock right again
            await cp.call(call.StopTransaction(meter_stop=5000, timestamp="2026-06-01T07:00:00Z", transaction_id=tx,
                                               reason="Local"))
            while (event := await asyncio.wait_for(records.get(), 10)).kind != "cdr.created":
                pass
        [made] = await api_call(edge, "GET", "/cdrs?revisions=all")
        assert await api_call(edge, "GET", "/cdrs/quarantine") == []
    # A first record, not a revision of one that never was.
    assert (made["id"], made["revision"], made["supersedes"], made["revision_reason"]) == (
        event.data["id"], 1, None, None)
    assert (made["transaction_id"], made["meter_stop_wh"], made["stop_time"]) == (tx, 5000, "2026-06-01T07:00:00.000Z")


async def test_a_revision_that_cannot_be_made_is_quarantined_and_made_when_the_cause_is_gone(tmp_path, capsys):
    config = _config(tmp_path)
    tx = await _stored(config, "2026-06-01T06:30:00Z")
    async with running_edge(config) as edge:
        edge.charge_records.settle_s = 0.05
        [first] = await _until(edge, "/cdrs", bool)
        async with charger(edge) as cp:        # the late stop, from a clock that jumped two years ahead
            await cp.call(call.StopTransaction(meter_stop=5000, timestamp="2028-06-01T07:00:00Z", transaction_id=tx,
                                               reason="Local"))
        [kept] = await _until(edge, "/cdrs/quarantine", bool)
        assert (kept["transaction_id"], kept["why"]) == (tx, "late StopTransaction")
        assert "Unpriceable" in kept["error"]
        # The first record stays the latest, unchanged, until its revision can be made.
        assert await api_call(edge, "GET", "/cdrs") == [first]
        capsys.readouterr()
        assert await edgectl(tmp_path, edge, "cdrs", "quarantined") == 0
        assert "late StopTransaction" in capsys.readouterr().out
        # Retried with the cause still there: it stays.
        [outcome] = await api_call(edge, "POST", "/cdrs/quarantine/retry", body={"transaction_id": tx})
        assert outcome["made"] is False and "Unpriceable" in outcome["error"]

        flat = Tariff("kwh", "duration-energy", rates=Rates(per_kwh=Decimal("0.40")))
        edge.charge_records.book = TariffBook({"all": TariffGroup("all", flat)}, ((Evse("CP-1", None), "all"),))
        await _until(edge, "/cdrs/quarantine", lambda rows: rows == [])
        first_again, second = await api_call(edge, "GET", "/cdrs?revisions=all")
    assert first_again == {**first, "superseded_by": second["id"]}
    assert (second["revision"], second["supersedes"], second["meter_stop_wh"]) == (2, first["id"], 5000)
    assert "late StopTransaction" in second["revision_reason"]
