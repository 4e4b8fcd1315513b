"""The simulator against a bare central system over real loopback WebSockets."""

from __future__ import annotations

import asyncio
import socket

from ocpp.v16 import call

from simulator import SimulatedChargePoint
from simulator.bare_central_system import BareCentralSystem, Received, serve_bare

from .conftest import Central


def sampled(message: Received, measurand: str) -> dict[str | None, tuple[float, str]]:
    """{phase: (value, unit)} of one measurand in a MeterValues payload."""
    return {v.get("phase"): (float(v["value"]), v["unit"]) for mv in message.payload["meterValue"]
            for v in mv["sampledValue"] if v.get("measurand") == measurand}


def current_l1(message: Received) -> float:
    return sampled(message, "Current.Import")["L1"][0]


TX_PROFILE_10A = {"chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxProfile",
                  "chargingProfileKind": "Relative",
                  "chargingSchedule": {"chargingRateUnit": "A",
                                       "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10.0}]}}


async def charging(sim: SimulatedChargePoint, **car) -> int:
    await sim.plug_in(1, **car)
    assert await sim.authorize("TAG") == "Accepted"
    return await sim.start_transaction(1, "TAG")


async def test_boot_then_a_status_per_connector(central: Central, start_sim) -> None:
    await start_sim(connectors=2, vendor="ACME", model="Box9")
    boot, *statuses = [m for m in central.messages() if m.action != "Heartbeat"]
    assert boot.action == "BootNotification"
    assert boot.payload["chargePointVendor"] == "ACME" and boot.payload["chargePointModel"] == "Box9"
    assert [(m.action, m.payload["connectorId"], m.payload["status"]) for m in statuses] == [
        ("StatusNotification", 0, "Available"), ("StatusNotification", 1, "Available"),
        ("StatusNotification", 2, "Available")]


async def test_full_session_with_meter_values(central: Central, start_sim) -> None:
    sim = await start_sim()
    tx = await charging(sim, soc=40.0)
    assert tx == 1 and sim.connector(1).transaction_id == 1
    await central.wait_for(lambda: len(central.messages("MeterValues")) >= 4)
    await sim.stop_transaction(1)
    await sim.unplug(1)

    assert central.statuses(1) == ["Available", "Preparing", "Charging", "Finishing", "Available"]
    meter_values = central.messages("MeterValues")
    last = meter_values[-1]
    assert last.payload["transactionId"] == 1 and last.payload["connectorId"] == 1
    assert {v["context"] for v in last.payload["meterValue"][0]["sampledValue"]} == {"Sample.Periodic"}
    assert set(sampled(last, "Current.Import")) == {"L1", "L2", "L3"}
    assert {unit for _, unit in sampled(last, "Current.Import").values()} == {"A"}
    assert sampled(last, "Voltage") == {"L1-N": (230.0, "V"), "L2-N": (230.0, "V"), "L3-N": (230.0, "V")}
    assert sampled(last, "Current.Offered") == {None: (32.0, "A")}
    assert sampled(last, "SoC")[None][1] == "Percent" and sampled(last, "SoC")[None][0] >= 40.0
    power, unit = sampled(last, "Power.Active.Import")[None]
    assert unit == "W" and power == sum(v for v, _ in sampled(last, "Current.Import").values()) * 230.0
    registers = [sampled(m, "Energy.Active.Import.Register")[None][0] for m in meter_values]
    assert registers == sorted(registers) and registers[-1] > registers[0]

    [start] = central.messages("StartTransaction")
    [stop] = central.messages("StopTransaction")
    assert start.payload["idTag"] == "TAG" and start.payload["meterStart"] == 0
    assert stop.payload["transactionId"] == 1 and stop.payload["reason"] == "Local"
    assert stop.payload["meterStop"] == int(sim.connector(1).energy_wh) > 0
    contexts = [v["context"] for mv in stop.payload["transactionData"] for v in mv["sampledValue"]]
    assert contexts[0] == "Transaction.Begin" and contexts[-1] == "Transaction.End"
    actions = [m.action for m in central.messages() if m.action not in ("MeterValues", "Heartbeat")]
    assert actions[-6:] == ["Authorize", "StartTransaction", "StatusNotification", "StopTransaction",
                            "StatusNotification", "StatusNotification"]


async def test_charging_profile_lowers_the_current_after_the_ramp(central: Central, start_sim) -> None:
    sim = await start_sim(ramp_seconds=1.0)  # 32 A to 10 A in 0.7 s: several samples on the way
    await charging(sim)
    await central.wait_for(lambda: any(current_l1(m) == 32.0 for m in central.messages("MeterValues")))
    result = await central.call(call.SetChargingProfile(connector_id=1, cs_charging_profiles=TX_PROFILE_10A))
    assert result.status == "Accepted"
    assert sim.offered_current(1) == 10.0
    seen = len(central.messages("MeterValues"))
    await central.wait_for(lambda: any(current_l1(m) == 10.0 for m in central.messages("MeterValues")[seen:]))
    after = central.messages("MeterValues")[seen:]
    settled = next(i for i, m in enumerate(after) if current_l1(m) == 10.0)
    assert settled >= 1 and all(10.0 < current_l1(m) < 32.0 for m in after[1:settled])  # it ramped
    assert sampled(after[settled], "Current.Offered") == {None: (10.0, "A")}
    assert sim.connector(1).current == (10.0, 10.0, 10.0)


async def test_a_limit_below_6_amps_pauses_the_car(central: Central, start_sim) -> None:
    sim = await start_sim()
    await charging(sim)
    profile = {**TX_PROFILE_10A, "chargingSchedule": {
        "chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 4.0}]}}
    await central.call(call.SetChargingProfile(connector_id=1, cs_charging_profiles=profile))
    await central.wait_for(lambda: central.statuses(1)[-1] == "SuspendedEVSE")
    seen = len(central.messages("MeterValues"))
    await central.wait_for(lambda: any(current_l1(m) == 0.0 for m in central.messages("MeterValues")[seen:]))
    assert sim.connector(1).status == "SuspendedEVSE"
    result = await central.call(call.ClearChargingProfile(id=1))
    assert result.status == "Accepted"
    await central.wait_for(lambda: central.statuses(1)[-1] == "Charging")


async def test_one_phase_car_draws_on_l1_only(central: Central, start_sim) -> None:
    sim = await start_sim()
    await charging(sim, car_phases=1, car_max_current=16.0)
    await central.wait_for(lambda: any(current_l1(m) == 16.0 for m in central.messages("MeterValues")))
    currents = sampled(central.messages("MeterValues")[-1], "Current.Import")
    assert (currents["L2"][0], currents["L3"][0]) == (0.0, 0.0)
    assert sim.connector(1).power_w == 16.0 * 230.0


async def test_reset_stops_the_transaction_reconnects_and_boots_again(central: Central, start_sim) -> None:
    sim = await start_sim()
    await charging(sim)
    result = await central.call(call.Reset(type="Hard"))
    assert result.status == "Accepted"
    await central.wait_for(lambda: len(central.messages("BootNotification")) == 2)
    [stop] = central.messages("StopTransaction")
    assert stop.payload["reason"] == "HardReset" and stop.payload["transactionId"] == 1
    await sim.wait_online()
    assert central.statuses(0)[-1] == "Available" and central.statuses(1)[-1] == "Finishing"
    assert [name for name, _ in sim.events].count("disconnected") == 1


async def test_stop_while_offline_arrives_after_reconnect_without_a_new_boot(central: Central, start_sim) -> None:
    sim = await start_sim()
    await charging(sim)
    await central.stop()
    await asyncio.wait_for(sim.stop_transaction(1), 1)  # does not wait for the central system
    await sim.unplug(1)
    assert not central.messages("StopTransaction")
    await central.restart()
    await central.wait_for(lambda: central.messages("StopTransaction"))
    await sim.wait_online()
    [stop] = central.messages("StopTransaction")
    assert stop.payload["transactionId"] == 1
    assert len(central.messages("BootNotification")) == 1
    assert central.statuses(1)[-1] == "Available"


async def test_transaction_started_offline_gets_its_id_on_reconnect(central: Central, start_sim) -> None:
    sim = await start_sim()
    await central.stop()
    await sim.plug_in(1)
    assert await sim.authorize("TAG") == "Invalid"  # unknown offline: not allowed by default
    provisional = await asyncio.wait_for(sim.start_transaction(1, "TAG"), 1)
    assert provisional < 0 and sim.connector(1).transaction_id == provisional
    await sim.wait_event("meter_values", count=3)  # queued behind the StartTransaction
    await sim.stop_transaction(1)
    await central.restart()
    await central.wait_for(lambda: central.messages("StopTransaction"))
    transaction_messages = [m for m in central.messages() if m.action in ("StartTransaction", "MeterValues",
                                                                           "StopTransaction")]
    assert transaction_messages[0].action == "StartTransaction"
    assert transaction_messages[-1].action == "StopTransaction"
    assert {m.payload["transactionId"] for m in transaction_messages[1:]} == {1}
    assert len(transaction_messages) >= 4
    assert ("transaction_id", {"connector_id": 1, "local_id": provisional, "transaction_id": 1,
                               "status": "Accepted"}) in sim.events


async def test_unanswered_stop_is_sent_again_after_reconnect(central: Central, start_sim) -> None:
    sim = await start_sim()
    await charging(sim)
    central.system.unanswered.add("StopTransaction")  # the central system dies before answering
    stopping = asyncio.create_task(sim.stop_transaction(1))
    await central.wait_for(lambda: central.messages("StopTransaction"))
    await central.stop()
    await asyncio.wait_for(stopping, 2)
    central.system.unanswered.clear()
    await central.restart()
    await central.wait_for(lambda: len(central.messages("StopTransaction")) == 2)
    first, second = central.messages("StopTransaction")
    assert first.payload == second.payload
    await sim.flush()


async def test_boot_pending_is_retried_at_the_given_interval(start_sim) -> None:
    system = BareCentralSystem(boot_status="Pending", heartbeat_interval=1)
    server = await serve_bare("127.0.0.1", 0, central_system=system)
    try:
        sim = await start_sim(url=f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/ocpp", online=False)
        assert (await sim.wait_event("boot"))["status"] == "Pending"
        assert not sim.is_accepted() and not system.messages("StatusNotification")
        system.boot_status = "Accepted"
        await sim.wait_accepted(3)
        await sim.wait_online()
        assert len(system.messages("BootNotification")) == 2
    finally:
        server.close()
        await server.wait_closed()


async def test_basic_auth(start_sim) -> None:
    system = BareCentralSystem(passwords={"CP1": "right", "CP2": "right"})
    server = await serve_bare("127.0.0.1", 0, central_system=system)
    url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/ocpp"
    try:
        await start_sim("CP1", url=url, password="right")
        wrong = await start_sim("CP2", url=url, password="wrong", online=False)
        assert "401" in (await wrong.wait_event("connect_failed"))["error"]
        assert set(system.connections) == {"CP1"}
    finally:
        server.close()
        await server.wait_closed()


async def test_keeps_trying_until_the_central_system_appears(start_sim) -> None:
    with socket.socket() as probe:  # a port with nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sim = await start_sim(url=f"ws://127.0.0.1:{port}/ocpp", online=False)
    await sim.wait_event("connect_failed", count=3)
    system = BareCentralSystem()
    server = await serve_bare("127.0.0.1", port, central_system=system)
    try:
        await sim.wait_online(5)
        assert system.messages("BootNotification")
    finally:
        server.close()
        await server.wait_closed()


async def test_heartbeats_follow_the_configured_interval(central: Central, start_sim) -> None:
    await start_sim()
    result = await central.call(call.ChangeConfiguration(key="HeartbeatInterval", value="0.1"))
    assert result.status == "Accepted"
    await central.wait_for(lambda: len(central.messages("Heartbeat")) >= 3, timeout=2)



async def test_fault_is_reported_with_its_details(central: Central, start_sim) -> None:
    sim = await start_sim()
    await sim.report_fault(1, "HighTemperature", info="x" * 80, vendor_error_code="E42")
    [fault] = [m.payload for m in central.messages("StatusNotification") if m.payload["status"] == "Faulted"]
    assert (fault["errorCode"], fault["info"], fault["vendorErrorCode"]) == ("HighTemperature", "x" * 50, "E42")
    await sim.report_fault(1, "NoError")
    assert central.statuses(1)[-1] == "Available"
