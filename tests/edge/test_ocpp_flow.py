"""A charger's whole day over real loopback WebSockets, with the ocpp library as the client."""

from __future__ import annotations

from edge.journal import Store
from ocpp.v16 import call

from tests.edge.conftest import charger

NOW = "2026-11-23T10:00:00Z"


def sv(value: str, measurand: str, unit: str, phase: str | None = None) -> dict:
    d = {"value": value, "measurand": measurand, "unit": unit, "context": "Sample.Periodic"}
    if phase:
        d["phase"] = phase
    return d


async def test_boot_heartbeat_status_authorize_start_meter_stop(edge):
    async with charger(edge) as cp:
        beat = await cp.call(call.Heartbeat())
        assert beat.current_time.endswith("Z")

        await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Preparing"))
        assert (await cp.call(call.Authorize(id_tag="TAG-OK"))).id_tag_info["status"] == "Accepted"
        assert (await cp.call(call.Authorize(id_tag="TAG-BLOCKED"))).id_tag_info["status"] == "Blocked"
        assert (await cp.call(call.Authorize(id_tag="NOBODY"))).id_tag_info["status"] == "Invalid"

        started = await cp.call(call.StartTransaction(connector_id=1, id_tag="TAG-OK", meter_start=1000,
                                                      timestamp=NOW))
        tx = started.transaction_id
        assert started.id_tag_info["status"] == "Accepted"

        samples = [sv("16.1", "Current.Import", "A", "L1"), sv("15.9", "Current.Import", "A", "L2"),
                   sv("16.0", "Current.Import", "A", "L3"), sv("11.1", "Power.Active.Import", "kW"),
                   sv("1500", "Energy.Active.Import.Register", "Wh"), sv("230.5", "Voltage", "V", "L1-N"),
                   sv("42", "SoC", "Percent")]
        await cp.call(call.MeterValues(connector_id=1, transaction_id=tx,
                                       meter_value=[{"timestamp": "2026-11-23T10:05:00Z", "sampledValue": samples}]))
        stop = await cp.call(call.StopTransaction(
            meter_stop=9000, timestamp="2026-11-23T11:00:00Z", transaction_id=tx, reason="EVDisconnected",
            id_tag="TAG-OK",
            transaction_data=[{"timestamp": "2026-11-23T11:00:00Z",
                               "sampledValue": [sv("9000", "Energy.Active.Import.Register", "Wh")]}]))
        assert stop.id_tag_info["status"] == "Accepted"

    [row] = await edge.journal.read(Store.transactions)
    assert (row["id"], row["state"], row["energy_wh"], row["stop_reason"]) == (tx, "completed", 8000, "EVDisconnected")
    stored = await edge.journal.read(Store.samples, transaction_id=tx)
    by_key = {(s["measurand"], s["phase"]): s for s in stored}
    assert by_key[("Current.Import", "L2")]["value"] == 15.9
    assert by_key[("Power.Active.Import", None)]["value"] == 11100.0   # kW normalised to W
    assert by_key[("SoC", None)]["value"] == 42
    assert by_key[("Voltage", "L1-N")]["value"] == 230.5
    assert [s["value"] for s in stored if s["measurand"] == "Energy.Active.Import.Register"] == [1500, 9000]
    connectors = await edge.journal.read(Store.connectors, "CP-1")
    assert connectors[0]["status"] == "Preparing"


async def test_status_fault_goes_to_hardware_log(edge):
    async with charger(edge) as cp:
        await cp.call(call.StatusNotification(connector_id=2, error_code="GroundFailure", status="Faulted",
                                              info="RCD tripped", vendor_id="com.example", vendor_error_code="E42"))
        await cp.call(call.StatusNotification(connector_id=2, error_code="NoError", status="Available"))
    [entry] = await edge.journal.read(Store.log, "hardware", "CP-1")
    assert (entry["connector_id"], entry["error_code"], entry["info"], entry["vendor_error_code"]) == (
        2, "GroundFailure", "RCD tripped", "E42")
    [conn] = await edge.journal.read(Store.connectors, "CP-1")
    assert conn["status"] == "Available"


async def test_duplicate_and_unknown_stop_transactions(edge):
    async with charger(edge) as cp:
        tx = (await cp.call(call.StartTransaction(connector_id=1, id_tag="TAG-OK", meter_start=0,
                                                  timestamp=NOW))).transaction_id
        stop = call.StopTransaction(meter_stop=5000, timestamp="2026-11-23T11:00:00Z", transaction_id=tx)
        await cp.call(stop)
        await cp.call(stop)  # a retry after a lost answer
        # A charger that lost its state sends -1; one that we never saw sends any id.
        await cp.call(call.StopTransaction(meter_stop=77, timestamp=NOW, transaction_id=-1))
        await cp.call(call.StopTransaction(meter_stop=77, timestamp=NOW, transaction_id=-1))
        await cp.call(call.StopTransaction(meter_stop=88, timestamp=NOW, transaction_id=999_999))
    rows = await edge.journal.read(Store.transactions)
    assert len(rows) == 1 and rows[0]["meter_stop"] == 5000
    unmatched = await edge.journal.read(Store.unmatched_stops, "CP-1")
    assert [(u["charger_transaction_id"], u["meter_stop"]) for u in unmatched] == [(-1, 77), (999_999, 88)]


async def test_start_retry_gets_same_id_and_ids_never_repeat(edge):
    async with charger(edge) as cp:
        start = call.StartTransaction(connector_id=1, id_tag="TAG-OK", meter_start=10, timestamp=NOW)
        first = (await cp.call(start)).transaction_id
        assert (await cp.call(start)).transaction_id == first
        second = (await cp.call(call.StartTransaction(connector_id=2, id_tag="TAG-2", meter_start=10,
                                                      timestamp=NOW))).transaction_id
        assert second > first
    assert len(await edge.journal.read(Store.transactions)) == 2


async def test_transaction_of_another_charger_is_not_touched(edge):
    async with charger(edge, "CP-1") as cp1:
        tx = (await cp1.call(call.StartTransaction(connector_id=1, id_tag="TAG-OK", meter_start=0,
                                                   timestamp=NOW))).transaction_id
    async with charger(edge, "CP-2", password=None) as cp2:
        await cp2.call(call.StopTransaction(meter_stop=1, timestamp=NOW, transaction_id=tx))
        await cp2.call(call.MeterValues(connector_id=1, transaction_id=tx, meter_value=[
            {"timestamp": NOW, "sampledValue": [{"value": "5"}]}]))
    [row] = await edge.journal.read(Store.transactions)
    assert row["state"] == "active"
    assert [u["charger_id"] for u in await edge.journal.read(Store.unmatched_stops)] == ["CP-2"]
    [sample] = await edge.journal.read(Store.samples, charger_id="CP-2")
    assert sample["transaction_id"] is None


async def test_data_transfer_diagnostics_firmware(edge):
    async with charger(edge) as cp:
        assert (await cp.call(call.DataTransfer(vendor_id="com.unknown"))).status == "UnknownVendorId"
        assert (await cp.call(call.DataTransfer(vendor_id="com.example", message_id="x", data="hi"))).status == "Accepted"
        await cp.call(call.DiagnosticsStatusNotification(status="Uploaded"))
        await cp.call(call.FirmwareStatusNotification(status="Installing"))
    [row] = [r for r in await edge.journal.read(Store.chargers) if r["id"] == "CP-1"]
    assert (row["diagnostics_status"], row["firmware_status"], row["vendor"]) == ("Uploaded", "Installing", "Test")
    [dt] = await edge.journal.read(Store.log, "data_transfers", "CP-1")
    assert (dt["vendor_id"], dt["data"]) == ("com.example", "hi")


async def test_path_without_ocpp_prefix_is_accepted(edge):
    from websockets.asyncio.client import connect
    from tests.edge.conftest import Charger
    async with connect(f"ws://127.0.0.1:{edge.ocpp.bound_port}/CP-2", subprotocols=["ocpp1.6"]) as ws:
        assert ws.subprotocol == "ocpp1.6"
        cp = Charger("CP-2", ws)
        import asyncio
        task = asyncio.create_task(cp.start())
        assert (await cp.call(call.Heartbeat())).current_time
        task.cancel()


async def test_fresh_journal_starts_ids_from_the_clock(edge):
    # A replaced journal must not hand out ids a charger may still hold.
    async with charger(edge) as cp:
        tx = (await cp.call(call.StartTransaction(connector_id=1, id_tag="TAG-OK", meter_start=0,
                                                  timestamp=NOW))).transaction_id
    import time
    assert abs(tx - (time.time() - 1_704_067_200)) < 3600
    assert tx < 2**31
