"""OCPP 2.0.1 blocks J, L, N and P at the edge (edge/ocpp/v201/services.py): the simulated 2.0.1 station
(simulator.v201, its services module) against the real edge over real WebSockets, into the same stores
as 1.6's MeterValues, signed values, signed firmware, log uploads and DataTransfer."""

from __future__ import annotations

import base64
import json

from cryptography.hazmat.primitives.asymmetric import ec

from edge.journal import Store
from edge.ocpp import signed_values
from edge.ocpp.v201 import services as edge_services, transactions
from simulator import ocmf
from simulator.v201 import services
from simulator.v201.station import utcnow
from tests.edge.cdr.helpers import next_cdr
from tests.edge.conftest import api_call, eventually, wait_for
from tests.edge.security.test_security_messages import _signer
from tests.edge.v201.conftest import SITE_CHARGERS, STATION, station
from tests.edge.v201.test_transactions import charge, only_transaction, preauthorized

PHASES = {"L1", "L2", "L3"}


async def _samples(edge) -> list[dict]:
    return await edge.journal.read(Store.samples, charger_id=STATION)


# -- J Meter values ---------------------------------------------------------------------------------

async def test_TC_J_01_CSMS_clock_aligned_meter_values_no_transaction_ongoing(make_edge):
    """J01: MeterValues (Sample.Clock) of an idle EVSE are kept per phase, with no transaction; before, the
    edge answered NotSupported and kept nothing."""
    async with make_edge(chargers=SITE_CHARGERS) as edge, station(edge) as sim:
        await sim.wait_online()
        assert await _samples(edge) == []
        await services.meter_values(sim, 2)
        samples = await _samples(edge)
        assert samples and {s["transaction_id"] for s in samples} == {None}
        assert {s["connector_id"] for s in samples} == {2}
        assert {s["phase"] for s in samples if s["measurand"] == "Current.Import"} == PHASES
        assert {s["context"] for s in samples} == {"Sample.Clock"}


async def test_TC_J_02_CSMS_clock_aligned_meter_values_transaction_ongoing(make_edge):
    """J01 during a transaction: the samples of the EVSE's MeterValues are the running transaction's (2.0.1's
    MeterValues names none), so the load manager and the record see them as a TransactionEvent's."""
    async with make_edge(chargers=SITE_CHARGERS) as edge, station(edge, tx_updated_interval=1) as sim:
        await sim.wait_online()
        preauthorized(sim, "TAG-OK")
        await charge(sim, "TAG-OK", periodic=1)
        tx = await only_transaction(edge)
        events = edge.bus.subscribe()
        await services.meter_values(sim, 1, measurands=["Current.Import", "Voltage"])
        seen = await wait_for(lambda: next((e for e in _drain(events) if e.kind == "meter.values"
                                            and e.data["transaction_id"] == tx["id"]), None), what="meter.values")
        assert {s.phase for s in seen.data["samples"] if s.measurand == "Current.Import"} == PHASES
        clock = [s for s in await edge.journal.read(Store.samples, transaction_id=tx["id"])
                 if s["context"] == "Sample.Clock"]
        assert {s["measurand"] for s in clock} == {"Current.Import", "Voltage"}




async def test_meter_values_at_the_boundary_keep_what_is_sane_and_refuse_the_rest(make_edge):
    """MeterValues gets TransactionEvent's boundary rule: a value that is no sane number is left out (and the
    repair logged), never the message; an evseId beyond the station's is refused by name; 0 (the main meter)
    is taken."""
    from websockets.asyncio.client import connect

    from tests.edge.conftest import ocpp_url

    async def exchange(ws, call: list) -> list:
        """The edge's answer to `call`; the edge's own requests meanwhile (the device model's) refused."""
        await ws.send(json.dumps(call))
        while True:
            got = json.loads(await ws.recv())
            if got[0] != 2:
                return got
            await ws.send(json.dumps([4, got[1], "NotSupported", "raw test client", {}]))

    def frame(uid: str, evse_id: int, values: list) -> list:
        return [2, uid, "MeterValues", {"evseId": evse_id, "meterValue": [{"timestamp": "2026-12-07T10:00:00Z",
                "sampledValue": [{"value": v, "measurand": "Current.Import", "phase": "L1"} for v in values]}]}]
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        async with connect(ocpp_url(edge, STATION), subprotocols=["ocpp2.0.1"]) as ws:
            boot = await exchange(ws, [2, "b", "BootNotification", {
                "chargingStation": {"model": "M", "vendorName": "V"}, "reason": "PowerUp"}])
            assert boot[2]["status"] == "Accepted"
            assert (await exchange(ws, frame("m1", 0, [5.5, 1e300])))[:2] == [3, "m1"]
            refused = await exchange(ws, frame("m2", 1000, [1.0]))
            assert refused[:3] == [4, "m2", "PropertyConstraintViolation"] and refused[4]["field"] == "evseId"
        samples = await _samples(edge)
        assert [(s["connector_id"], s["value"]) for s in samples] == [(0, 5.5)]


def _drain(subscription) -> list:
    out = []
    while not subscription.queue.empty():
        out.append(subscription.queue.get_nowait())
    return out


async def test_TC_J_04_CSMS_signed_meter_values_are_carried_verified_by_the_record(make_edge):
    """J01.FR.21/J02: a 2.0.1 signedMeterValue (OCMF, Base64 as 2.0.1 sends it, the meter's key with it) goes
    where 1.6's SignedData goes: kept with the transaction, the key kept for the station, and the charge
    record carries it verified."""
    key = ec.generate_private_key(ec.SECP256R1())
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        records = edge.bus.subscribe()
        async with station(edge, tx_updated_interval=1) as sim:
            await sim.wait_online()
            preauthorized(sim, "TAG-OK")
            await charge(sim, "TAG-OK", periodic=1)
            tx = await only_transaction(edge)
            station_tx = sim.evses[1].tx.transaction_id
            signed = services.signed_meter_value(key, transaction_id=station_tx, id_tag="TAG-OK", energy_wh=1234.0,
                                                 at=utcnow(), kind="B")
            await services.meter_values(sim, 1, signed=signed)
            keys = await edge.journal.read(Store.meter_keys)
            assert keys[STATION]["public_key"] == ocmf.public_key_hex(key)
            assert keys[STATION]["source"] == "signedMeterValue publicKey"
            await sim.stop(1)
            await sim.wait_event("transaction_ended")
            summary = await next_cdr(records)
            record = await api_call(edge, "GET", f"/cdrs/{summary['id']}")
        assert record["transaction_id"] == tx["id"]
        carried = record["signed_data"]
        assert carried["status"] == "verified", carried
        [value] = carried["values"]
        assert value["signed_data"] == base64.b64decode(signed["signed_meter_data"]).decode()
        assert value["encoding"] == "OCMF"


def test_a_201_signed_value_reads_as_16_signed_data():
    """The pure part: TransactionEvent's and MeterValues' signedMeterValue as 1.6's SignedData, OCMF decoded
    from Base64 (what the record verifies), any other encoding kept as sent under its encodingMethod."""
    key = ec.generate_private_key(ec.SECP256R1())
    signed = services.signed_meter_value(key, transaction_id="T1", id_tag="X", energy_wh=5.0, at=utcnow())
    other = {"signed_meter_data": "AAECAwQ=", "signing_method": "", "encoding_method": "Alfen", "public_key": ""}
    meter_value = [{"timestamp": "2026-12-07T10:00:00Z", "sampled_value": [
        {"value": 5.0, "measurand": "Energy.Active.Import.Register", "signed_meter_value": signed},
        {"value": 6.0, "measurand": "Energy.Active.Import.Register", "signed_meter_value": other}]}]
    kept = signed_values.signed_of(transactions.as_v16_meter_values(meter_value))
    assert [v["encoding"] for v in kept] == ["OCMF", "Alfen"]
    assert kept[0]["signed_data"].startswith("OCMF|") and kept[1]["signed_data"] == "AAECAwQ="
    assert signed_values.meter_key_of(signed["public_key"]) == ocmf.public_key_hex(key)
    assert signed_values.meter_key_of(ocmf.public_key_hex(key)) == ocmf.public_key_hex(key)
    assert signed_values.meter_key_of("bm90IGEga2V5") is None and signed_values.meter_key_of("") is None


# -- L Firmware, N Diagnostics ------------------------------------------------------------------------

async def test_TC_L_01_CSMS_secure_firmware_update_installed(make_edge, tmp_path):
    """L01: the same offer as 1.6's SignedUpdateFirmware (verified first, a one-time download URL) goes to a
    2.0.1 station as UpdateFirmware; each FirmwareStatusNotification is kept with the request."""
    firmware = tmp_path / "fw-201.bin"
    firmware.write_bytes(b"\x7fELF firmware 2.0.1" * 500)
    signing_cert, signing_key, _ = _signer(tmp_path)
    from edge.ocpp.firmware import sign_firmware
    async with make_edge(chargers=SITE_CHARGERS) as edge, station(edge) as sim:
        await sim.wait_online()
        answer = await api_call(edge, "POST", f"/security/chargers/{STATION}/firmware", body={
            "path": str(firmware), "signing_certificate": signing_cert.decode(),
            "signature": sign_firmware(firmware.read_bytes(), signing_key)})
        assert answer["outcome"] == "ok", answer
        await sim.wait_event("firmware_status", count=5)
        statuses = [e["status"] for name, e in sim.events if name == "firmware_status"]
        assert statuses == ["Downloading", "Downloaded", "SignatureVerified", "Installing", "Installed"]
        assert all(e["request_id"] == answer["request_id"] for name, e in sim.events if name == "firmware_status")

        async def installed():
            rows = await api_call(edge, "GET", f"/security/firmware?charger={STATION}")
            return rows if rows and rows[0]["status"] == "Installed" else None
        rows = await eventually(installed, "the request Installed")
        assert rows[0]["downloads"] == 1
        [action] = [a for a in await edge.journal.read(Store.log, "actions", STATION) if a["action"] == "UpdateFirmware"]
        request = json.loads(action["request"]) if isinstance(action["request"], str) else action["request"]
        assert request["firmware"]["signature"] and request["requestId"] == answer["request_id"]


async def test_TC_N_35_CSMS_retrieve_log_information_security_log_success(make_edge, tmp_path):
    """N01: GetLog (2.0.1's, the same fields as the whitepaper's) with the edge's one-time upload URL; the
    station uploads and reports Uploading, Uploaded, kept with the request."""
    async with make_edge(chargers=SITE_CHARGERS) as edge, station(edge) as sim:
        await sim.wait_online()
        sim.security.log_text = "2.0.1 security log\n"
        answer = await api_call(edge, "POST", f"/security/chargers/{STATION}/logs", body={"log_type": "SecurityLog"})
        assert answer["outcome"] == "ok" and answer["response"]["status"] == "Accepted", answer
        await sim.wait_event("log_upload")

        async def uploaded():
            rows = await edge.journal.read(Store.log_requests, STATION)
            return rows if rows and rows[0]["status"] == "Uploaded" and rows[0]["file_name"] else None
        rows = await eventually(uploaded, "the log Uploaded")
        assert rows[0]["request_id"] == answer["request_id"] and rows[0]["size"] == len(sim.security.log_text)
        assert len(list((tmp_path / "uploads" / STATION).iterdir())) == 1


async def test_TC_G_20_CSMS_a_problem_event_is_kept_and_alerted_a_cleared_one_not(make_edge):
    """N07 (TC_G_20_CSMS: ConnectorPlugRetentionLock.Problem true): a NotifyEvent is kept and logged; a problem
    is a warning and a station.problem event on the bus; the same variable cleared is kept, not alerted."""
    async with make_edge(chargers=SITE_CHARGERS) as edge, station(edge) as sim:
        await sim.wait_online()
        events = edge.bus.subscribe()
        await services.notify_event(sim, "ConnectorPlugRetentionLock", "Problem", "true", evse_id=1)
        await services.notify_event(sim, "ConnectorPlugRetentionLock", "Problem", "false", evse_id=1, cleared=True)
        await services.notify_event(sim, "Connector", "AvailabilityState", "Occupied", evse_id=1)
        kept = edge_services.events_of(edge.ocpp.site, STATION)
        assert [(e["component"], e["actual_value"], e["problem"]) for e in kept] == [
            ("ConnectorPlugRetentionLock", "true", True), ("ConnectorPlugRetentionLock", "false", False),
            ("Connector", "Occupied", False)]
        problems = [e for e in _drain(events) if e.kind == edge_services.PROBLEM_EVENT]
        assert [(p.charger_id, p.data["component"], p.data["evse_id"]) for p in problems] == [
            (STATION, "ConnectorPlugRetentionLock", 1)]


# -- P DataTransfer -----------------------------------------------------------------------------------

async def test_TC_P_02_CSMS_data_transfer_unknown_vendor(make_edge):
    """P02: a vendor the site does not know is UnknownVendorId, as for 1.6; a configured one is journaled."""
    async with make_edge(chargers=SITE_CHARGERS) as edge, station(edge) as sim:   # the site knows com.example
        await sim.wait_online()
        assert (await services.data_transfer(sim, "org.openchargealliance.octt", "x")).status == "UnknownVendorId"
        answer = await services.data_transfer(sim, "com.example", "note", {"free": "json"})
        assert answer.status == "Accepted"
        [row] = await edge.journal.read(Store.log, "data_transfers", STATION)
        assert (row["vendor_id"], row["message_id"], json.loads(row["data"])) == ("com.example", "note",
                                                                                   {"free": "json"})
