"""The edge away mid-session: the wallbox falls back to its default current,
transaction messages wait on disk, and arrive in order once the edge is back,
also when the bridge itself was restarted in between."""

from __future__ import annotations

from edge.events import Event
from edge.journal import Store
from firmware_bridge.bridge import Bridge
from simulator.rapi_firmware import running_bridge
from tests.edge.conftest import free_port
from tests.firmware_bridge.conftest import BRIDGED, CP_ID, EdgeEvents, status_is
from tests.firmware_bridge.test_session import send, tx_profile


async def start_charging(edge, firmware) -> int:
    events = EdgeEvents(edge)
    firmware.plug_in()
    await events.status("Preparing")
    await send(edge, "RemoteStartTransaction", {"connectorId": 1, "idTag": "TAG-OK"})
    tx = (await events.next("transaction.started")).data["transaction_id"]
    await events.status("Charging")
    assert (await send(edge, "SetChargingProfile", tx_profile(1, 20)))["status"] == "Accepted"
    await firmware.wait_for(lambda: firmware.capacity == 20)
    return tx


def assert_in_order(events: list[Event], tx: int, meter_values: int) -> None:
    mine = [e for e in events if e.charger_id == CP_ID and e.kind in ("meter.values", "transaction.stopped")]
    kinds = [e.kind for e in mine]
    assert kinds == ["meter.values"] * meter_values + ["transaction.stopped"], kinds
    times = [e.data["samples"][0].timestamp for e in mine[:-1]]
    energy = [next(s.value for s in e.data["samples"] if s.measurand == "Energy.Active.Import.Register")
              for e in mine[:-1]]
    assert times == sorted(times) and energy == sorted(energy)
    assert all(e.data["transaction_id"] == tx for e in mine)


async def test_edge_restarted_mid_session(make_edge, rig, bridge_config) -> None:
    firmware, port = rig.firmware, free_port()
    bridge = Bridge(bridge_config(port=port))
    async with running_bridge(bridge):
        async with make_edge(chargers=BRIDGED, ocpp_port=port) as edge:
            tx = await start_charging(edge, firmware)
        # The edge is gone: nobody follows the site's load, so the default current (8 A).
        await firmware.wait_for(lambda: firmware.capacity == 8)
        assert firmware.mode == "enabled"
        await bridge.controller.wait_for(lambda: bridge.store.queued() >= 3, 5)
        firmware.unplug()
        await status_is(bridge, "Available")
        queued = bridge.store.queued()
        meter_values = queued - 1  # and the StopTransaction

        async with make_edge(chargers=BRIDGED, ocpp_port=port) as edge:
            events = EdgeEvents(edge)
            await events.next("transaction.stopped")
            assert_in_order(events.seen, tx, meter_values)
            await bridge.controller.wait_for(lambda: bridge.store.queued() == 0, 5)
            [row] = await edge.journal.read(Store.transactions, charger_id=CP_ID)
            assert row["state"] == "completed" and row["stop_reason"] == "EVDisconnected"
            assert row["meter_stop"] == firmware.energy_wh


async def test_bridge_restarted_while_the_edge_is_away(make_edge, rig, bridge_config) -> None:
    firmware, port = rig.firmware, free_port()
    config = bridge_config(port=port)
    first = Bridge(config)
    async with running_bridge(first):
        async with make_edge(chargers=BRIDGED, ocpp_port=port) as edge:
            tx = await start_charging(edge, firmware)
        await first.controller.wait_for(lambda: first.store.queued() >= 2, 5)

    # A new process on the same state directory: the transaction and the queue were on disk.
    second = Bridge(config)
    assert second.controller.transaction is not None and second.controller.transaction.transaction_id == tx
    assert second.store.queued() >= 2
    async with running_bridge(second):
        await status_is(second, "Charging")
        await second.controller.wait_for(lambda: second.store.queued() >= 4, 5)
        firmware.unplug()
        await status_is(second, "Available")
        meter_values = second.store.queued() - 1
        async with make_edge(chargers=BRIDGED, ocpp_port=port) as edge:
            events = EdgeEvents(edge)
            await events.next("transaction.stopped")
            assert_in_order(events.seen, tx, meter_values)


async def test_bridge_stopped_mid_session_leaves_the_wallbox_at_its_default_current(make_edge, rig,
                                                                                     bridge_config) -> None:
    firmware = rig.firmware
    async with make_edge(chargers=BRIDGED) as edge:
        async with running_bridge(Bridge(bridge_config(port=edge.ocpp.bound_port))):
            await start_charging(edge, firmware)
            firmware.capacity = 32  # as if the edge had allowed more than the default
            await firmware.wait_for(lambda: firmware.capacity == 20)
    # Stopped (SIGTERM): while no bridge runs, nobody follows the site's load.
    assert firmware.capacity == 8 and firmware.mode == "enabled"


async def test_offline_from_the_start_no_transaction_without_the_edge(rig, bridge_config) -> None:
    async with running_bridge(Bridge(bridge_config())) as bridge:
        # The board starts enabled; the bridge puts it to sleep before anything else.
        await rig.firmware.wait_for(lambda: rig.firmware.mode == "sleeping")
        rig.firmware.plug_in()
        await status_is(bridge, "Preparing")
        # Nothing authorizes it: the wallbox stays asleep and the vehicle gets nothing.
        assert rig.firmware.mode == "sleeping" and rig.firmware.current == 0
        assert bridge.controller.transaction is None and bridge.store.queued() == 0
