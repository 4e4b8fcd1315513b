"""Central-system-initiated requests, sent by the bare central system over loopback WebSockets."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from ocpp.exceptions import OCPPError
from ocpp.v16 import call

from simulator import SimulatedChargePoint

from .conftest import Central

LIMIT_8A = {"chargingProfileId": 5, "stackLevel": 0, "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Relative",
            "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 8.0}]}}


def reasons(central: Central) -> list[str]:
    return [m.payload["reason"] for m in central.messages("StopTransaction")]


async def charging(sim: SimulatedChargePoint, connector_id: int = 1) -> int:
    await sim.plug_in(connector_id)
    return await sim.start_transaction(connector_id, "TAG")


async def test_remote_start_with_a_profile(central: Central, start_sim) -> None:
    sim = await start_sim()
    await sim.plug_in(1)
    result = await central.call(call.RemoteStartTransaction(id_tag="REMOTE", connector_id=1, charging_profile=LIMIT_8A))
    assert result.status == "Accepted"
    await central.wait_for(lambda: central.statuses(1)[-1] == "Charging")
    [start] = central.messages("StartTransaction")
    assert start.payload["idTag"] == "REMOTE"
    assert sim.offered_current(1) == 8.0
    await central.wait_for(lambda: any(v["value"] == "8.0" for m in central.messages("MeterValues")
                                       for v in m.payload["meterValue"][0]["sampledValue"]
                                       if v["measurand"] == "Current.Import"))


async def test_remote_start_picks_the_plugged_connector(central: Central, start_sim) -> None:
    sim = await start_sim(connectors=2)
    await sim.plug_in(2)
    assert (await central.call(call.RemoteStartTransaction(id_tag="REMOTE"))).status == "Accepted"
    await central.wait_for(lambda: central.messages("StartTransaction"))
    assert central.messages("StartTransaction")[0].payload["connectorId"] == 2


@pytest.mark.parametrize("request_", [
    call.RemoteStartTransaction(id_tag="REMOTE", connector_id=1),  # a transaction runs there
    call.RemoteStartTransaction(id_tag="REMOTE", connector_id=3),  # no such connector
    call.RemoteStartTransaction(id_tag="REMOTE", connector_id=2, charging_profile={
        **LIMIT_8A, "chargingProfilePurpose": "TxDefaultProfile"}),  # only a TxProfile may come along
])
async def test_remote_start_rejected(central: Central, start_sim, request_) -> None:
    sim = await start_sim(connectors=2)
    await charging(sim)
    assert (await central.call(request_)).status == "Rejected"


async def test_remote_stop(central: Central, start_sim) -> None:
    sim = await start_sim()
    tx = await charging(sim)
    assert (await central.call(call.RemoteStopTransaction(transaction_id=tx + 100))).status == "Rejected"
    assert (await central.call(call.RemoteStopTransaction(transaction_id=tx))).status == "Accepted"
    await central.wait_for(lambda: central.statuses(1)[-1] == "Finishing")
    assert reasons(central) == ["Remote"]


async def test_unlock_connector_ends_the_transaction(central: Central, start_sim) -> None:
    sim = await start_sim()
    await charging(sim)
    assert (await central.call(call.UnlockConnector(connector_id=1))).status == "Unlocked"
    await central.wait_for(lambda: central.messages("StopTransaction"))
    assert reasons(central) == ["UnlockCommand"]
    assert (await central.call(call.UnlockConnector(connector_id=7))).status == "NotSupported"


async def test_soft_reset(central: Central, start_sim) -> None:
    sim = await start_sim()
    await charging(sim)
    assert (await central.call(call.Reset(type="Soft"))).status == "Accepted"
    await central.wait_for(lambda: len(central.messages("BootNotification")) == 2)
    assert reasons(central) == ["SoftReset"]


async def test_change_availability(central: Central, start_sim) -> None:
    sim = await start_sim(connectors=2)
    await charging(sim, 1)
    result = await central.call(call.ChangeAvailability(connector_id=0, type="Inoperative"))
    assert result.status == "Scheduled"  # connector 1 is charging
    await central.wait_for(lambda: central.statuses(2)[-1] == "Unavailable")
    assert central.statuses(1)[-1] == "Charging"
    await sim.stop_transaction(1)
    assert central.statuses(1)[-1] == "Unavailable"
    assert (await central.call(call.ChangeAvailability(connector_id=0, type="Operative"))).status == "Accepted"
    await central.wait_for(lambda: central.statuses(2)[-1] == "Available" and central.statuses(1)[-1] == "Finishing")
    assert (await central.call(call.ChangeAvailability(connector_id=9, type="Operative"))).status == "Rejected"


async def test_configuration_over_the_wire(central: Central, start_sim) -> None:
    await start_sim()
    result = await central.call(call.GetConfiguration(key=["MeterValueSampleInterval", "Bogus"]))
    assert result.configuration_key == [{"key": "MeterValueSampleInterval", "readonly": False, "value": "0.1"}]
    assert result.unknown_key == ["Bogus"]
    everything = await central.call(call.GetConfiguration())
    assert len(everything.configuration_key) > 20 and everything.unknown_key is None
    for key, value, status in [("NumberOfConnectors", "3", "Rejected"), ("Bogus", "1", "NotSupported"),
                               ("MeterValuesSampledData", "Energy.Active.Import.Register", "Accepted")]:
        assert (await central.call(call.ChangeConfiguration(key=key, value=value))).status == status


async def test_sampled_data_follows_the_configuration(central: Central, start_sim) -> None:
    sim = await start_sim()
    await central.call(call.ChangeConfiguration(key="MeterValuesSampledData", value="Energy.Active.Import.Register"))
    await charging(sim)
    await central.wait_for(lambda: central.messages("MeterValues"))
    values = central.messages("MeterValues")[0].payload["meterValue"][0]["sampledValue"]
    assert [v["measurand"] for v in values] == ["Energy.Active.Import.Register"]


async def test_trigger_message(central: Central, start_sim) -> None:
    sim = await start_sim()
    await charging(sim)
    await central.call(call.ChangeConfiguration(key="MeterValueSampleInterval", value="0"))
    before = len(central.messages("StatusNotification"))
    for message in ("StatusNotification", "MeterValues", "Heartbeat", "BootNotification",
                    "DiagnosticsStatusNotification", "FirmwareStatusNotification"):
        result = await central.call(call.TriggerMessage(requested_message=message, connector_id=1))
        assert result.status == "Accepted"
        await central.wait_for(lambda: central.messages(message))
    assert central.messages("StatusNotification")[before].payload["status"] == "Charging"
    triggered = central.messages("MeterValues")[-1].payload
    assert triggered["transactionId"] == 1
    assert {v["context"] for v in triggered["meterValue"][0]["sampledValue"]} == {"Trigger"}
    rejected = await central.call(call.TriggerMessage(requested_message="StatusNotification", connector_id=5))
    assert rejected.status == "Rejected"


async def test_diagnostics_and_firmware(central: Central, start_sim) -> None:
    await start_sim()
    result = await central.call(call.GetDiagnostics(location="ftp://example.com/diag"))
    assert result.file_name.startswith("diagnostics-CP1-")
    await central.wait_for(lambda: len(central.messages("DiagnosticsStatusNotification")) == 2)
    assert [m.payload["status"] for m in central.messages("DiagnosticsStatusNotification")] == ["Uploading", "Uploaded"]
    await central.call(call.UpdateFirmware(location="https://example.com/fw.bin",
                                           retrieve_date=datetime.now(timezone.utc).isoformat()))
    await central.wait_for(lambda: len(central.messages("FirmwareStatusNotification")) == 4)
    assert [m.payload["status"] for m in central.messages("FirmwareStatusNotification")] == [
        "Downloading", "Downloaded", "Installing", "Installed"]


async def test_data_transfer_and_clear_cache(central: Central, start_sim) -> None:
    await start_sim(vendor="ACME")
    assert (await central.call(call.DataTransfer(vendor_id="ACME", message_id="x"))).status == "Accepted"
    assert (await central.call(call.DataTransfer(vendor_id="Other"))).status == "UnknownVendorId"
    assert (await central.call(call.ClearCache())).status == "Accepted"


async def test_charging_profiles(central: Central, start_sim) -> None:
    sim = await start_sim()
    default = {**LIMIT_8A, "chargingProfileId": 6, "chargingProfilePurpose": "TxDefaultProfile",
               "chargingProfileKind": "Absolute", "chargingSchedule": {
                   "chargingRateUnit": "A", "startSchedule": datetime.now(timezone.utc).isoformat(),
                   "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}, {"startPeriod": 3600, "limit": 6.0}]}}
    cp_max = {**LIMIT_8A, "chargingProfileId": 7, "chargingProfilePurpose": "ChargePointMaxProfile"}
    # a TxProfile needs a transaction; a ChargePointMaxProfile belongs on connector 0
    for profile, status in [(default, "Accepted"), (LIMIT_8A, "Rejected"), (cp_max, "Rejected")]:
        result = await central.call(call.SetChargingProfile(connector_id=1, cs_charging_profiles=profile))
        assert result.status == status

    composite = await central.call(call.GetCompositeSchedule(connector_id=1, duration=7200))
    assert composite.status == "Accepted"
    periods = composite.charging_schedule["charging_schedule_period"]  # the ocpp library snake_cases answers
    assert [p["limit"] for p in periods] == [16.0, 6.0] and 3595 <= periods[1]["start_period"] <= 3600
    watts = await central.call(call.GetCompositeSchedule(connector_id=1, duration=60, charging_rate_unit="W"))
    assert watts.charging_schedule["charging_schedule_period"][0]["limit"] == 16.0 * 230 * 3
    assert (await central.call(call.GetCompositeSchedule(connector_id=4, duration=60))).status == "Rejected"

    assert (await central.call(call.ClearChargingProfile(id=99))).status == "Unknown"
    cleared = await central.call(call.ClearChargingProfile(charging_profile_purpose="TxDefaultProfile"))
    assert cleared.status == "Accepted"
    assert sim.charging_profiles == []


async def test_local_list(central: Central, start_sim) -> None:
    sim = await start_sim()
    full = [{"idTag": "A", "idTagInfo": {"status": "Accepted"}}, {"idTag": "B", "idTagInfo": {"status": "Blocked"}}]
    assert (await central.call(call.SendLocalList(list_version=3, update_type="Full",
                                                  local_authorization_list=full))).status == "Accepted"
    assert (await central.call(call.GetLocalListVersion())).list_version == 3
    stale = await central.call(call.SendLocalList(list_version=2, update_type="Differential",
                                                  local_authorization_list=[{"idTag": "C"}]))
    assert stale.status == "VersionMismatch"
    removal = await central.call(call.SendLocalList(list_version=4, update_type="Differential",
                                                    local_authorization_list=[{"idTag": "B"}]))
    assert removal.status == "Accepted" and sim.local_auth.entries == {"A": "Accepted"}


async def test_reservation(central: Central, start_sim) -> None:
    sim = await start_sim()
    expiry = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    result = await central.call(call.ReserveNow(connector_id=1, expiry_date=expiry, id_tag="RES", reservation_id=9))
    assert result.status == "Accepted"
    await central.wait_for(lambda: central.statuses(1)[-1] == "Reserved")
    with pytest.raises(ValueError, match="reserved"):
        await sim.start_transaction(1, "SOMEONE-ELSE")
    await sim.plug_in(1)
    await sim.start_transaction(1, "RES")
    assert central.messages("StartTransaction")[0].payload["reservationId"] == 9
    assert (await central.call(call.CancelReservation(reservation_id=9))).status == "Rejected"  # used up


async def test_unknown_request_gets_a_call_error(central: Central, start_sim) -> None:
    await start_sim()
    with pytest.raises(OCPPError):
        # Every central-system message has a handler now (the security ones since issue 17): a charger's own
        # message sent to the charger is one it does not take.
        await central.call(call.Heartbeat())


async def test_two_remote_starts_take_two_connectors(central: Central, start_sim) -> None:
    await start_sim(connectors=2)
    first, second, third = [await central.call(call.RemoteStartTransaction(id_tag=f"R{i}")) for i in range(3)]
    assert (first.status, second.status, third.status) == ("Accepted", "Accepted", "Rejected")
    await central.wait_for(lambda: len(central.messages("StartTransaction")) == 2)
    assert sorted(m.payload["connectorId"] for m in central.messages("StartTransaction")) == [1, 2]
