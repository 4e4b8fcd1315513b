"""The simulator's state and physics with an injected clock and no central system (offline)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from simulator import SimulatedChargePoint, smart_charging

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=timezone.utc)


class Clock:
    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self) -> float:
        return self.seconds

    def wall(self) -> datetime:
        return T0 + timedelta(seconds=self.seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sim(clock: Clock) -> SimulatedChargePoint:
    return SimulatedChargePoint("CP1", "ws://127.0.0.1:9/ocpp", connectors=2, ramp_seconds=4.0, clock=clock,
                                wall_clock=clock.wall)


def tx_profile(limit: float, *, unit: str = "A", purpose: str = "TxProfile", kind: str = "Relative",
               periods: list[tuple[int, float]] | None = None, stack_level: int = 0, profile_id: int = 1) -> dict:
    schedule = {"charging_rate_unit": unit, "charging_schedule_period": [
        {"start_period": start, "limit": value} for start, value in (periods or [(0, limit)])]}
    if kind == "Absolute":
        schedule["start_schedule"] = T0.isoformat()
    return {"charging_profile_id": profile_id, "stack_level": stack_level, "charging_profile_purpose": purpose,
            "charging_profile_kind": kind, "charging_schedule": schedule}


async def start(sim: SimulatedChargePoint, connector_id: int = 1, **car) -> int:
    await sim.plug_in(connector_id, **car)
    return await sim.start_transaction(connector_id, "TAG")


def test_url_gets_the_charge_point_id() -> None:
    assert SimulatedChargePoint("CP 1", "ws://h:9000/ocpp/").url == "ws://h:9000/ocpp/CP%201"
    assert SimulatedChargePoint("CP1", "ws://h:9000/ocpp/CP1").url == "ws://h:9000/ocpp/CP1"


async def test_current_ramps_up_and_energy_integrates(sim: SimulatedChargePoint, clock: Clock) -> None:
    assert await start(sim) == -1  # offline: a provisional id until the central system answers
    clock.seconds = 1.0
    assert sim.connector(1).current == (8.0, 8.0, 8.0)
    clock.seconds = 4.0
    state = sim.connector(1)
    assert state.current == (32.0, 32.0, 32.0) and state.status == "Charging"
    assert state.energy_wh == pytest.approx(230.0 * 3 * 64.0 / 3600.0)
    clock.seconds = 4.0 + 3600.0
    state = sim.connector(1)
    assert state.energy_wh == pytest.approx(230.0 * 3 * (64.0 + 32.0 * 3600.0) / 3600.0)
    assert state.soc == pytest.approx(20.0 + state.energy_wh / 60_000.0 * 100.0)
    assert state.power_w == 230.0 * 96.0


async def test_profile_lowers_the_current_over_the_ramp(sim: SimulatedChargePoint, clock: Clock) -> None:
    await start(sim)
    clock.seconds = 10.0
    assert smart_charging.set_charging_profile(sim, 1, tx_profile(16.0)) == "Accepted"
    assert sim.offered_current(1) == 16.0
    clock.seconds = 11.0
    assert sim.connector(1).current == (24.0, 24.0, 24.0)
    clock.seconds = 12.0
    assert sim.connector(1).current == (16.0, 16.0, 16.0)


@pytest.mark.parametrize("car, expected", [
    ({"car_phases": 1}, (32.0, 0.0, 0.0)),
    ({"car_max_current": 16.0}, (16.0, 16.0, 16.0)),
    ({"car_max_current": 16.0, "car_phases": 1}, (16.0, 0.0, 0.0)),
])
async def test_the_car_limits(sim: SimulatedChargePoint, clock: Clock, car: dict, expected: tuple) -> None:
    await start(sim, **car)
    clock.seconds = 10.0
    assert sim.connector(1).current == expected


async def test_watts_are_converted_with_the_phases_in_use(sim: SimulatedChargePoint, clock: Clock) -> None:
    await start(sim, car_phases=1)
    smart_charging.set_charging_profile(sim, 1, tx_profile(3680.0, unit="W"))
    clock.seconds = 10.0
    assert sim.connector(1).current == (16.0, 0.0, 0.0)


async def test_below_6_amps_the_car_pauses(sim: SimulatedChargePoint, clock: Clock) -> None:
    await start(sim)
    smart_charging.set_charging_profile(sim, 1, tx_profile(5.0))
    clock.seconds = 10.0
    state = sim.connector(1)
    assert (state.current, state.status, state.limit) == ((0.0, 0.0, 0.0), "SuspendedEVSE", 5.0)


async def test_a_full_battery_stops_drawing(sim: SimulatedChargePoint, clock: Clock) -> None:
    await start(sim, soc=99.9)  # 60 Wh to go at 22 kW: about 10 s
    clock.seconds = 60.0
    sim.connector(1)
    clock.seconds = 70.0
    state = sim.connector(1)
    assert (state.soc, state.status, state.current) == (100.0, "SuspendedEV", (0.0, 0.0, 0.0))


async def test_schedule_periods_follow_the_wall_clock(sim: SimulatedChargePoint, clock: Clock) -> None:
    profile = tx_profile(0, purpose="TxDefaultProfile", kind="Absolute", periods=[(0, 10.0), (60, 20.0)])
    assert smart_charging.set_charging_profile(sim, 0, profile) == "Accepted"
    await start(sim)
    clock.seconds = 30.0
    assert sim.connector(1).current == (10.0, 10.0, 10.0)
    clock.seconds = 61.0
    sim.connector(1)  # the tick loop's job when running
    clock.seconds = 70.0
    assert sim.connector(1).current == (20.0, 20.0, 20.0)


async def test_charge_point_maximum_is_shared(sim: SimulatedChargePoint, clock: Clock) -> None:
    smart_charging.set_charging_profile(sim, 0, tx_profile(0, purpose="ChargePointMaxProfile", kind="Absolute",
                                                           periods=[(0, 40.0)]))
    await start(sim, 1)
    assert sim.offered_current(1) == 32.0  # the charger's own maximum is lower than 40 A
    await start(sim, 2)
    clock.seconds = 10.0
    assert sim.connector(1).current == sim.connector(2).current == (20.0, 20.0, 20.0)


@pytest.mark.parametrize("connector_id, profile, status", [
    (1, tx_profile(10.0), "Accepted"),
    (2, tx_profile(10.0), "Rejected"),  # no transaction on connector 2
    (0, tx_profile(10.0), "Rejected"),
    (1, tx_profile(10.0, purpose="ChargePointMaxProfile"), "Rejected"),  # belongs on connector 0
    (0, tx_profile(10.0, purpose="ChargePointMaxProfile"), "Accepted"),
    (1, tx_profile(10.0, stack_level=9), "Rejected"),  # above ChargeProfileMaxStackLevel
    (3, tx_profile(10.0, purpose="TxDefaultProfile"), "Rejected"),
    (1, {**tx_profile(10.0), "transaction_id": 77}, "Rejected"),  # transaction 77 does not run there
    (1, {"charging_profile_id": 1}, "Rejected"),
])
async def test_set_charging_profile_rules(sim: SimulatedChargePoint, connector_id: int, profile: dict,
                                          status: str) -> None:
    tx = await start(sim)
    sim.connectors[1].transaction.transaction_id = 5 if tx < 0 else tx
    assert smart_charging.set_charging_profile(sim, connector_id, profile) == status


async def test_stop_opens_the_contactor_and_queues_the_stop(sim: SimulatedChargePoint, clock: Clock) -> None:
    await start(sim)
    clock.seconds = 10.0
    await sim.stop_transaction(1, "Local", id_tag="TAG")
    state = sim.connector(1)
    assert (state.status, state.current, state.transaction_id) == ("Finishing", (0.0, 0.0, 0.0), None)
    assert [e.action for e in sim.outbox._entries] == ["StartTransaction", "StopTransaction"]
    start_entry, stop_entry = sim.outbox._entries
    assert stop_entry.build() is None  # no id from the central system yet
    start_entry.transaction.transaction_id = 42
    stop = stop_entry.build()
    assert (stop.transaction_id, stop.reason, stop.meter_stop) == (42, "Local", int(state.energy_wh))
    assert [mv["sampled_value"][0]["context"] for mv in stop.transaction_data] == ["Transaction.Begin",
                                                                                  "Transaction.End"]


async def test_unplugging_stops_the_transaction(sim: SimulatedChargePoint) -> None:
    await start(sim)
    await sim.unplug(1)
    assert sim.connector(1).status == "Available"
    sim.outbox._entries[0].transaction.transaction_id = 3
    assert sim.outbox._entries[-1].build().reason == "EVDisconnected"


async def test_fault_and_recovery(sim: SimulatedChargePoint, clock: Clock) -> None:
    await start(sim)
    clock.seconds = 10.0
    await sim.report_fault(1, "GroundFailure", info="RCD tripped")
    state = sim.connector(1)
    assert (state.status, state.error_code, state.current) == ("Faulted", "GroundFailure", (0.0, 0.0, 0.0))
    await sim.report_fault(1, "NoError")
    clock.seconds = 20.0
    assert sim.connector(1).status == "Charging"


@pytest.mark.parametrize("config, local_list, expected", [
    ({}, {}, "Invalid"),
    ({"AllowOfflineTxForUnknownId": "true"}, {}, "Accepted"),
    ({}, {"TAG": "Accepted"}, "Accepted"),
    ({}, {"TAG": "Blocked"}, "Blocked"),
    ({"LocalAuthorizeOffline": "false"}, {"TAG": "Accepted"}, "Invalid"),
    ({"LocalAuthListEnabled": "false"}, {"TAG": "Accepted"}, "Invalid"),
])
async def test_offline_authorization(sim: SimulatedChargePoint, config: dict, local_list: dict, expected: str) -> None:
    for key, value in config.items():
        assert sim.config.change(key, value) == "Accepted"
    sim.local_auth.entries.update(local_list)
    assert await sim.authorize("TAG") == expected


async def test_status_events(sim: SimulatedChargePoint, clock: Clock) -> None:
    await start(sim)
    clock.seconds = 1.0
    await sim.stop_transaction(1)
    await sim.unplug(1)
    assert [d["status"] for name, d in sim.events if name == "status" and d["connector_id"] == 1] == [
        "Preparing", "Charging", "Finishing", "Available"]


async def test_start_refuses_a_second_transaction(sim: SimulatedChargePoint) -> None:
    await start(sim)
    with pytest.raises(ValueError, match="already has transaction"):
        await sim.start_transaction(1, "OTHER")


async def test_events_are_bounded_and_still_counted(clock: Clock) -> None:
    seen = []
    sim = SimulatedChargePoint("CP1", "ws://127.0.0.1:9/ocpp", clock=clock, wall_clock=clock.wall, max_events=10,
                               on_event=lambda name, data: seen.append(name))
    for _ in range(25):
        await sim.plug_in(1)
        await sim.unplug(1)
    assert len(sim.events) <= 10 and sim.events[-1][0] == "status"
    assert seen.count("plug_in") == 25
    assert await sim.wait_event("plug_in", count=25, timeout=1) == {
        "connector_id": 1, "car_max_current": 32.0, "car_phases": 3, "soc": 20.0}


async def test_a_transaction_started_before_the_car_comes_waits_for_it(sim: SimulatedChargePoint,
                                                                      clock: Clock) -> None:
    await sim.start_transaction(1, "TAG")  # as after a RemoteStartTransaction on a free connector
    assert sim.connector(1).status == "SuspendedEV"
    await sim.plug_in(1)
    clock.seconds = 10.0
    assert (sim.connector(1).status, sim.connector(1).current) == ("Charging", (32.0, 32.0, 32.0))
