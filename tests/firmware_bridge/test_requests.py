"""The edge's requests to a bridged wallbox: availability, configuration, reset,
trigger, composite schedule, and the refusals a charge point owes."""

from __future__ import annotations

from ocpp.v16 import call

from firmware_bridge.bridge import Bridge
from simulator.rapi_firmware import GFCI_FAULT, running_bridge
from tests.firmware_bridge.conftest import CP_ID
from tests.firmware_bridge.test_offline import start_charging
from tests.firmware_bridge.test_session import send, tx_profile


async def test_change_availability(bridged_site, rig) -> None:
    firmware = rig.firmware
    async with bridged_site() as (edge, events, _):
        await events.status("Available")
        assert (await send(edge, "ChangeAvailability", {"connectorId": 0, "type": "Inoperative"}))["status"] \
            == "Accepted"
        await events.status("Unavailable")
        await firmware.wait_for(lambda: firmware.mode == "disabled")
        assert (await send(edge, "RemoteStartTransaction", {"idTag": "TAG-OK"}))["status"] == "Rejected"
        await send(edge, "ChangeAvailability", {"connectorId": 1, "type": "Operative"})
        await events.status("Available")

        # During a transaction, Inoperative waits for its end.
        await start_charging(edge, firmware)
        assert (await send(edge, "ChangeAvailability", {"connectorId": 1, "type": "Inoperative"}))["status"] \
            == "Scheduled"
        firmware.unplug()
        await events.next("transaction.stopped")
        await events.status("Unavailable")
        await firmware.wait_for(lambda: firmware.mode == "disabled")


async def test_configuration_keys_are_the_bridges_own_and_survive_a_restart(bridged_site) -> None:
    async with bridged_site() as (edge, events, bridge):
        await events.status("Available")
        answer = await send(edge, "GetConfiguration", {"key": ["MeterValueSampleInterval", "LocalAuthListEnabled"]})
        assert answer["configurationKey"] == [{"key": "MeterValueSampleInterval", "readonly": False, "value": "0.2"}]
        assert answer["unknownKey"] == ["LocalAuthListEnabled"]
        assert (await send(edge, "ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "30"}))[
            "status"] == "Accepted"
        assert (await send(edge, "ChangeConfiguration", {"key": "NumberOfConnectors", "value": "2"}))[
            "status"] == "Rejected"
        assert (await send(edge, "ChangeConfiguration", {"key": "LocalAuthListEnabled", "value": "true"}))[
            "status"] == "NotSupported"
    async with running_bridge(Bridge(bridge.config)) as again:
        assert again.controller.keys.value("MeterValueSampleInterval") == "30"


async def test_soft_and_hard_reset_stop_the_transaction_and_boot_again(bridged_site, rig) -> None:
    firmware = rig.firmware
    async with bridged_site() as (edge, events, bridge):
        await events.next("charger.booted")
        await start_charging(edge, firmware)
        assert (await send(edge, "Reset", {"type": "Soft"}))["status"] == "Accepted"
        stopped = await events.next("transaction.stopped")
        assert stopped.data["reason"] == "SoftReset"
        await events.next("charger.booted")
        await events.status("Finishing")  # the vehicle is still plugged in

        assert (await send(edge, "Reset", {"type": "Hard"}))["status"] == "Accepted"
        await events.next("charger.booted")
        await firmware.wait_for(lambda: "FR" in firmware.commands)
        # The board came back from its reboot (enabled): the bridge puts it to sleep again.
        await firmware.wait_for(lambda: firmware.mode == "sleeping")
        assert bridge.controller.transaction is None


async def test_trigger_message_and_composite_schedule(bridged_site, rig) -> None:
    async with bridged_site() as (edge, events, _):
        await events.status("Available")
        assert (await send(edge, "TriggerMessage", {"requestedMessage": "StatusNotification"}))["status"] \
            == "Accepted"
        await events.status("Available")
        assert (await send(edge, "TriggerMessage", {"requestedMessage": "BootNotification"}))["status"] \
            == "Accepted"
        await events.next("charger.booted")
        assert (await send(edge, "TriggerMessage", {"requestedMessage": "FirmwareStatusNotification"}))[
            "status"] == "NotImplemented"

        await start_charging(edge, rig.firmware)  # with a 20 A TxProfile
        # Over the edge's session directly: edge.commands cannot journal the Decimal
        # limits the ocpp library parses this answer into (reported to the edge's owners).
        schedule = await edge.ocpp.sessions[CP_ID].call(
            call.GetCompositeSchedule(connector_id=1, duration=600), suppress=False)
        assert schedule.status == "Accepted"
        assert schedule.charging_schedule["charging_schedule_period"] == [{"start_period": 0, "limit": 20}]


async def test_refusals(bridged_site, rig) -> None:
    async with bridged_site() as (edge, events, _):
        await events.status("Available")
        # No transaction: a TxProfile has nothing to apply to, a stop nothing to stop.
        assert (await send(edge, "SetChargingProfile", tx_profile(3, 10)))["status"] == "Rejected"
        assert (await send(edge, "RemoteStopTransaction", {"transactionId": 42}))["status"] == "Rejected"
        assert (await send(edge, "RemoteStartTransaction", {"connectorId": 2, "idTag": "TAG-OK"}))["status"] \
            == "Rejected"
        assert (await send(edge, "UnlockConnector", {"connectorId": 1}))["status"] == "NotSupported"
        # A faulted wallbox takes no remote start.
        rig.firmware.set_fault(GFCI_FAULT)
        await events.status("Faulted", "GroundFailure")
        assert (await send(edge, "RemoteStartTransaction", {"idTag": "TAG-OK"}))["status"] == "Rejected"


async def test_a_refused_id_tag_stops_the_transaction(bridged_site, rig) -> None:
    firmware = rig.firmware
    async with bridged_site() as (edge, events, _):
        firmware.plug_in()
        await events.status("Preparing")
        await send(edge, "RemoteStartTransaction", {"connectorId": 1, "idTag": "TAG-BLOCKED"})
        await events.next("transaction.started")
        stopped = await events.next("transaction.stopped")
        # Stopped by the bridge on the Blocked answer, or by the edge's remote stop, whichever came first.
        assert stopped.data["reason"] in ("DeAuthorized", "Remote")
        await firmware.wait_for(lambda: firmware.mode == "sleeping")
        assert CP_ID in edge.ocpp.sessions


async def test_local_list_actions_are_answered_not_supported(bridged_site) -> None:
    """The bridge keeps no local list: it says so in OCPP's words, and the edge's local-list sync
    marks it unsupported (before: a CALLERROR NotImplemented and a traceback for each)."""
    async with bridged_site(push_local_lists=True) as (edge, events, _):
        # The edge's own sync at connection: its answer is "no list", recorded as unsupported.
        await events.next("command.done", lambda e: e.data["action"] == "GetLocalListVersion"
                          and e.data["actor"] == "edge:local-list" and e.data["outcome"] == "ok")
        await edge.local_lists.idle.wait()
        assert edge.local_lists.held[CP_ID]["status"] == "unsupported"
        assert (await send(edge, "GetLocalListVersion", {}))["listVersion"] == -1
        assert (await send(edge, "SendLocalList", {"listVersion": 1, "updateType": "Full",
                                                   "localAuthorizationList": []}))["status"] == "NotSupported"
        assert (await send(edge, "ClearCache", {}))["status"] == "Accepted"
