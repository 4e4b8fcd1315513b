"""A full charging session of a serial wallbox through the real edge.

The simulated RAPI firmware sits on one end of a pty null modem, the bridge
on the other, and the bridge talks OCPP to an edge on loopback: plug in,
remote start, meter values, load management changing the wallbox's current
($SC), unplug, and the transaction closed in the edge's journal.
"""

from __future__ import annotations

from decimal import Decimal

from edge.journal import Store
from simulator.rapi_firmware import bridged_wallbox
from tests.firmware_bridge.conftest import BRIDGED, CP_ID, PASSWORD, EdgeEvents


def charge_records_running(edge) -> bool:
    """Whether this edge builds charge records (edge.cdr, being wired in by its own issue)."""
    try:
        from edge.cdr import ChargeRecords
    except ImportError:
        return False
    return any(isinstance(part, ChargeRecords) for part in vars(edge).values())


def tx_profile(profile_id: int, limit: float, unit: str = "A") -> dict:
    return {"connectorId": 1, "csChargingProfiles": {
        "chargingProfileId": profile_id, "stackLevel": 1, "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Relative",
        "chargingSchedule": {"chargingRateUnit": unit, "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}]}}}


async def send(edge, action: str, params: dict) -> dict:
    """The bridge's answer (accepting or refusing); a timeout or CALLERROR fails the test."""
    result = await edge.commands.send(CP_ID, action, params, actor="test", reason="firmware bridge test")
    assert result.outcome in ("ok", "rejected"), result
    return result.response


async def test_full_session_through_the_edge(bridged_site, rig) -> None:
    firmware = rig.firmware
    async with bridged_site() as (edge, events, bridge):
        booted = await events.next("charger.booted")
        assert booted.data["vendor"] == "OpenEVSE" and booted.data["firmware_version"] == "8.2.2"
        await events.status("Available")
        # Without a transaction the wallbox sleeps: a vehicle plugged in gets nothing yet.
        await firmware.wait_for(lambda: firmware.mode == "sleeping")

        firmware.plug_in(max_current=32)
        await events.status("Preparing")
        await send(edge, "RemoteStartTransaction", {"connectorId": 1, "idTag": "TAG-OK"})
        started = await events.next("transaction.started")
        tx = started.data["transaction_id"]
        assert started.data["id_tag"] == "TAG-OK"
        await events.status("Charging")
        # No profile: the installation's maximum, set volatile (V) so the EEPROM is spared.
        assert firmware.mode == "enabled" and firmware.capacity == 32
        assert "SC 32 V" in firmware.commands

        meter = await events.next("meter.values", lambda e: e.data["transaction_id"] == tx)
        measurands = {s.measurand for s in meter.data["samples"]}
        assert {"Energy.Active.Import.Register", "Current.Import", "Voltage", "Power.Active.Import",
                "Current.Offered"} <= measurands

        # Load management: a TxProfile of 10.7 A becomes 10 A at the wallbox (rounded down) ...
        assert (await send(edge, "SetChargingProfile", tx_profile(7, 10.7)))["status"] == "Accepted"
        await firmware.wait_for(lambda: firmware.capacity == 10)
        # ... one in watts is converted with the nominal voltage: 2990 W / 230 V = 13 A ...
        assert (await send(edge, "SetChargingProfile", tx_profile(7, 2990, "W")))["status"] == "Accepted"
        await firmware.wait_for(lambda: firmware.capacity == 13)
        # ... and below 6 A the wallbox is put to sleep, not offered less than the minimum.
        await send(edge, "SetChargingProfile", tx_profile(7, 4.5))
        await events.status("SuspendedEVSE")
        assert firmware.mode == "sleeping" and firmware.current == 0
        await send(edge, "ClearChargingProfile", {"id": 7})
        await events.status("Charging")
        assert firmware.capacity == 32 and firmware.mode == "enabled"

        # The car is full: it stops asking, the pilot goes back to B.
        firmware.vehicle_wants_energy(False)
        await events.status("SuspendedEV")

        firmware.unplug()
        stopped = await events.next("transaction.stopped")
        assert stopped.data["transaction_id"] == tx and stopped.data["reason"] == "EVDisconnected"
        await events.status("Available")
        await firmware.wait_for(lambda: firmware.mode == "sleeping")
        assert bridge.store.queued() == 0

        [row] = await edge.journal.read(Store.transactions, charger_id=CP_ID)
        assert row["state"] == "completed"
        assert row["meter_stop"] == firmware.energy_wh > row["meter_start"] == 0
        if charge_records_running(edge):
            cdr = await events.next("cdr.created", lambda e: e.data["transaction_id"] == tx)
            assert Decimal(cdr.data["energy_kwh"]) == Decimal(row["meter_stop"] - row["meter_start"]) / 1000


async def test_remote_start_before_plugging_in_waits_for_the_vehicle(bridged_site, rig) -> None:
    firmware = rig.firmware
    async with bridged_site() as (edge, events, _):
        await events.status("Available")
        await send(edge, "RemoteStartTransaction", {"connectorId": 1, "idTag": "TAG-OK"})
        await events.status("Preparing")
        firmware.plug_in()
        await events.next("transaction.started")
        await events.status("Charging")
        tx = (await edge.journal.read(Store.active_transactions, CP_ID))[0]["id"]
        assert (await send(edge, "RemoteStopTransaction", {"transactionId": tx}))["status"] == "Accepted"
        stopped = await events.next("transaction.stopped")
        assert stopped.data["reason"] == "Remote"
        # Stopped, but the vehicle is still there.
        await events.status("Finishing")
        assert firmware.mode == "sleeping"
        firmware.unplug()
        await events.status("Available")


async def test_free_vend_starts_when_the_vehicle_is_plugged_in(bridged_site, rig) -> None:
    """The edge starts anonymous sessions where the charge group allows it; the bridge just follows."""
    firmware = rig.firmware
    async with bridged_site(extra='default_policy = "free-vend"') as (edge, events, _):
        await events.status("Available")
        firmware.plug_in()
        started = await events.next("transaction.started")
        assert started.data["id_tag"] == "FREEVEND"
        await events.status("Charging")
        firmware.unplug()
        await events.next("transaction.stopped")


async def test_the_demos_bridged_wallbox(make_edge, tmp_path) -> None:
    """simulator.rapi_firmware.bridged_wallbox: firmware, null modem and bridge in one call, as the demo uses it."""
    async with make_edge(chargers=BRIDGED) as edge:
        events = EdgeEvents(edge)
        async with bridged_wallbox(tmp_path / "wallbox", charge_point_id=CP_ID, password=PASSWORD,
                                   url=f"ws://127.0.0.1:{edge.ocpp.bound_port}/ocpp") as (rig, bridge):
            await events.status("Available")
            await rig.firmware.wait_for(lambda: rig.firmware.mode == "sleeping")
            rig.firmware.plug_in()
            await events.status("Preparing")
            assert bridge.controller.online
