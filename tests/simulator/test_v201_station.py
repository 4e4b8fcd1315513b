"""The simulated OCPP 2.0.1 station against a tiny CSMS made with the ocpp library's v201 ChargePoint.

Real WebSockets on a loopback port; every message the station sends (its
requests and its answers) is checked against the library's 2.0.1 JSON schemas.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import jsonschema
import ocpp.v201
import pytest
from ocpp.routing import on
from ocpp.v201 import ChargePoint, call, call_result
from ocpp.v201.enums import Action
from websockets.asyncio.server import ServerConnection, serve

from simulator.v201 import SimulatedStation

SCHEMAS = Path(ocpp.v201.__file__).parent / "schemas"
FAST = {"ramp_seconds": 0.2, "reconnect_delay": 0.05, "tx_updated_interval": 1}


def schema_errors(action: str, kind: str, payload: dict) -> list[str]:
    schema = json.loads((SCHEMAS / f"{action}{kind}.json").read_text())
    validator = jsonschema.Draft7Validator(schema)
    return [f"{action}{kind}: {e.message} at {list(e.path)}" for e in validator.iter_errors(payload)]


@dataclass
class Csms:
    boot_statuses: list[str] = field(default_factory=lambda: ["Accepted"])
    heartbeat_interval: int = 300
    received: list[tuple[str, dict]] = field(default_factory=list)  # (action, payload) the station sent
    invalid: list[str] = field(default_factory=list)  # schema errors in anything the station sent
    connections: list[Any] = field(default_factory=list)
    headers: list[Any] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    def of(self, action: str) -> list[dict]:
        return [p for a, p in self.received if a == action]

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        async def until() -> Any:
            async with self.changed:
                await self.changed.wait_for(predicate)
            return predicate()
        return await asyncio.wait_for(until(), timeout)

    async def call(self, payload: Any) -> Any:
        return await self.connections[-1].call(payload, suppress=False)


class CsmsSide(ChargePoint):
    """The CSMS's end of one station's connection: records, validates and answers."""

    def __init__(self, csms: Csms, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.csms = csms
        self.our_calls: dict[str, str] = {}

    async def route_message(self, raw_msg: str) -> None:
        message = json.loads(raw_msg)
        if message[0] == 2:
            self.csms.invalid += schema_errors(message[2], "Request", message[3])
            self.csms.received.append((message[2], message[3]))
        elif message[0] == 3 and message[1] in self.our_calls:
            self.csms.invalid += schema_errors(self.our_calls[message[1]], "Response", message[2])
        await super().route_message(raw_msg)
        async with self.csms.changed:
            self.csms.changed.notify_all()

    async def _send(self, message: str) -> None:
        sent = json.loads(message)
        if sent[0] == 2:
            self.our_calls[sent[1]] = sent[2]
        await super()._send(message)

    @on(Action.boot_notification)
    def on_boot(self, **_: Any) -> call_result.BootNotification:
        status = self.csms.boot_statuses.pop(0) if len(self.csms.boot_statuses) > 1 else self.csms.boot_statuses[0]
        return call_result.BootNotification(current_time=_now(), interval=self.csms.heartbeat_interval if status ==
                                            "Accepted" else 30, status=status)

    @on(Action.heartbeat)
    def on_heartbeat(self, **_: Any) -> call_result.Heartbeat:
        return call_result.Heartbeat(current_time=_now())

    @on(Action.status_notification)
    def on_status(self, **_: Any) -> call_result.StatusNotification:
        return call_result.StatusNotification()

    @on(Action.authorize)
    def on_authorize(self, id_token: dict, **_: Any) -> call_result.Authorize:
        status = "Blocked" if id_token["id_token"].startswith("BLOCKED") else "Accepted"
        return call_result.Authorize(id_token_info={"status": status})

    @on(Action.transaction_event)
    def on_transaction_event(self, **_: Any) -> call_result.TransactionEvent:
        return call_result.TransactionEvent()

    @on(Action.notify_report)
    def on_notify_report(self, **_: Any) -> call_result.NotifyReport:
        return call_result.NotifyReport()

    @on(Action.security_event_notification)
    def on_security_event(self, **_: Any) -> call_result.SecurityEventNotification:
        return call_result.SecurityEventNotification()

    @on(Action.report_charging_profiles)
    def on_report_profiles(self, **_: Any) -> call_result.ReportChargingProfiles:
        return call_result.ReportChargingProfiles()

    @on(Action.sign_certificate)
    def on_sign_certificate(self, **_: Any) -> call_result.SignCertificate:
        return call_result.SignCertificate(status="Accepted")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass
class Site:
    csms: Csms
    port: int
    server: Any = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    async def start(self) -> None:
        async def handler(connection: ServerConnection) -> None:
            self.csms.headers.append(connection.request.headers if connection.request else None)
            side = CsmsSide(self.csms, connection.request.path.rsplit("/", 1)[-1], connection)
            self.csms.connections.append(side)
            try:
                await side.start()
            except Exception:  # noqa: BLE001  the connection closed
                pass
        self.server = await serve(handler, "127.0.0.1", self.port, subprotocols=["ocpp2.0.1"])  # type: ignore[list-item]
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    s = Site(Csms(), 0)
    await s.start()
    yield s
    await s.stop()
    assert s.csms.invalid == []  # everything the station sent is valid OCPP 2.0.1


@pytest.fixture
async def station(site: Site) -> AsyncIterator[Callable[..., Awaitable[SimulatedStation]]]:
    runs: list[asyncio.Task] = []

    async def start(*, online: bool = True, **kwargs: Any) -> SimulatedStation:
        sim = SimulatedStation("ST1", site.url, **{**FAST, **kwargs})
        runs.append(asyncio.create_task(sim.run()))
        if online:
            await sim.wait_online(5)
        return sim
    yield start
    for run in runs:
        run.cancel()
    for run in runs:
        try:
            await run  # a station that crashed fails the test here
        except asyncio.CancelledError:
            pass


async def until(predicate: Callable[[], Any], timeout: float = 5.0) -> None:
    """Poll a physical quantity (currents ramp continuously: there is no event for 'reached')."""
    async def loop() -> None:
        while not predicate():
            await asyncio.sleep(0.02)
    await asyncio.wait_for(loop(), timeout)


def events(csms: Csms, transaction_id: str | None = None) -> list[dict]:
    return [p for p in csms.of("TransactionEvent")
            if transaction_id in (None, p["transactionInfo"]["transactionId"])]


async def test_pending_station_sends_only_boot_and_what_it_is_asked_for(site: Site, station: Any) -> None:
    site.csms.boot_statuses = ["Pending", "Accepted"]
    sim = await station(online=False, password="secret-1")
    await site.csms.wait_for(lambda: site.csms.of("BootNotification"))
    assert site.csms.headers[0]["Authorization"].startswith("Basic ")  # security profile 1
    assert site.csms.connections[-1]._connection.subprotocol == "ocpp2.0.1"
    answer = await site.csms.call(call.GetBaseReport(request_id=7, report_base="FullInventory"))
    assert answer.status == "Accepted"
    await site.csms.wait_for(lambda: any(not r.get("tbc") for r in site.csms.of("NotifyReport")))
    reports = site.csms.of("NotifyReport")
    assert [r["seqNo"] for r in reports] == list(range(len(reports))) and len(reports) > 1
    assert all(r["tbc"] for r in reports[:-1])
    names = {(d["component"]["name"], d["variable"]["name"]) for r in reports for d in r["reportData"]}
    assert {("OCPPCommCtrlr", "HeartbeatInterval"), ("TxCtrlr", "TxStartPoint"),
            ("SampledDataCtrlr", "TxUpdatedInterval")} <= names
    password = next(d for r in reports for d in r["reportData"] if d["variable"]["name"] == "BasicAuthPassword")
    assert "value" not in password["variableAttribute"][0]  # a write-only variable is never reported
    # Nothing but BootNotification and the report it was asked for while Pending.
    assert {a for a, _ in site.csms.received} == {"BootNotification", "NotifyReport"}
    assert (await site.csms.call(call.TriggerMessage(requested_message="BootNotification"))).status == "Accepted"
    await sim.wait_online(5)
    assert len(site.csms.of("BootNotification")) == 2
    assert site.csms.of("StatusNotification")[0]["connectorStatus"] == "Available"
    await site.csms.wait_for(lambda: site.csms.of("SecurityEventNotification"))
    assert site.csms.of("SecurityEventNotification")[0]["type"] == "StartupOfTheDevice"


async def test_a_full_transaction_with_seq_no_and_meter_values(site: Site, station: Any) -> None:
    sim = await station()
    await sim.plug_in(1, car_max_current=16, car_phases=3)
    assert await sim.present_token(1, "TAG-1") == "Accepted"
    await until(lambda: sim.snapshot()[1]["current"] == (16.0, 16.0, 16.0))
    await site.csms.wait_for(lambda: any(e["triggerReason"] == "MeterValuePeriodic" for e in events(site.csms)))
    await sim.present_token(1, "TAG-1")  # the same card again ends it
    await sim.unplug(1)
    await sim.flush()
    sent = events(site.csms)
    assert site.csms.of("Authorize")[0]["idToken"] == {"idToken": "TAG-1", "type": "ISO14443"}
    started, ended = sent[0], sent[-1]
    tx_id = started["transactionInfo"]["transactionId"]
    assert started["eventType"] == "Started" and started["triggerReason"] == "Authorized"
    assert started["idToken"]["idToken"] == "TAG-1" and started["evse"] == {"id": 1, "connectorId": 1}
    assert ended["eventType"] == "Ended" and ended["transactionInfo"]["stoppedReason"] == "Local"
    assert ended["triggerReason"] == "StopAuthorized"
    assert {e["transactionInfo"]["transactionId"] for e in sent} == {tx_id}
    assert [e["seqNo"] for e in sent] == list(range(sent[0]["seqNo"], sent[0]["seqNo"] + len(sent)))
    periodic = next(e for e in sent if e["triggerReason"] == "MeterValuePeriodic")
    values = periodic["meterValue"][0]["sampledValue"]
    phases = {v["phase"]: v["value"] for v in values if v["measurand"] == "Current.Import"}
    assert phases == {"L1": 16.0, "L2": 16.0, "L3": 16.0}
    assert {v["measurand"] for v in values} >= {"Energy.Active.Import.Register", "Power.Active.Import"}
    assert all(v["unitOfMeasure"]["unit"] in ("A", "Wh", "W") for v in values)
    end_energy = ended["meterValue"][0]["sampledValue"][0]
    assert end_energy["context"] == "Transaction.End" and end_energy["value"] > 0
    assert "Charging" in {e["transactionInfo"]["chargingState"] for e in sent}
    statuses = [s["connectorStatus"] for s in site.csms.of("StatusNotification")]
    assert statuses[-2:] == ["Occupied", "Available"]


async def test_offline_events_are_queued_and_delivered_in_seq_no_order(site: Site, station: Any) -> None:
    sim = await station()
    await sim.plug_in(1)
    await sim.present_token(1, "TAG-2")
    await sim.flush()
    online_count = len(events(site.csms))
    await site.stop()
    for connection in site.csms.connections:
        await connection._connection.close()
    await sim.wait_event("disconnected")
    marker = sim.seq_no
    await sim.wait_event("transaction_event", count=sim._event_counts["transaction_event"] + 2)  # periodic, offline
    await sim.unplug(1)  # EVConnected is a stop point: Ended, offline
    assert len(events(site.csms)) == online_count
    await site.start()
    await sim.wait_online(10)
    await sim.flush()
    sent = events(site.csms)
    seq = [e["seqNo"] for e in sent]
    assert seq == sorted(seq) and len(set(seq)) == len(seq)
    late = [e for e in sent if e["seqNo"] >= marker]
    assert late and all(e.get("offline") is True for e in late)
    assert late[-1]["eventType"] == "Ended" and late[-1]["transactionInfo"]["stoppedReason"] == "EVDisconnected"


async def test_the_car_follows_a_charging_profile(site: Site, station: Any) -> None:
    sim = await station()
    await sim.plug_in(1, car_max_current=32)
    await sim.present_token(1, "TAG-3")
    await until(lambda: sim.snapshot()[1]["current"][0] == 32.0)
    tx_id = sim.evses[1].tx.transaction_id  # type: ignore[union-attr]
    schedule = {"id": 1, "charging_rate_unit": "A", "charging_schedule_period": [{"start_period": 0, "limit": 10}]}
    no_tx = await site.csms.call(call.SetChargingProfile(evse_id=1, charging_profile={
        "id": 5, "stack_level": 0, "charging_profile_purpose": "TxProfile", "charging_profile_kind": "Relative",
        "charging_schedule": [schedule]}))
    assert no_tx.status == "Rejected"  # a TxProfile without transactionId (K01.FR.03)
    answer = await site.csms.call(call.SetChargingProfile(evse_id=1, charging_profile={
        "id": 5, "stack_level": 0, "charging_profile_purpose": "TxProfile", "charging_profile_kind": "Relative",
        "transaction_id": tx_id, "charging_schedule": [schedule]}))
    assert answer.status == "Accepted"
    await until(lambda: sim.snapshot()[1]["current"] == (10.0, 10.0, 10.0))
    watts = {"id": 2, "charging_rate_unit": "W", "charging_schedule_period": [{"start_period": 0, "limit": 4140}]}
    cap = await site.csms.call(call.SetChargingProfile(evse_id=0, charging_profile={
        "id": 6, "stack_level": 0, "charging_profile_purpose": "ChargingStationMaxProfile",
        "charging_profile_kind": "Absolute", "charging_schedule": [{**watts, "start_schedule": _now()}]}))
    assert cap.status == "Accepted"
    await until(lambda: abs(sim.snapshot()[1]["current"][0] - 6.0) < 1e-6)  # 4140 W / (230 V * 3)
    composite = await site.csms.call(call.GetCompositeSchedule(duration=600, evse_id=1, charging_rate_unit="A"))
    assert composite.status == "Accepted"
    assert composite.schedule["charging_schedule_period"][0]["limit"] == 6.0
    got = await site.csms.call(call.GetChargingProfiles(request_id=3, charging_profile={}))
    assert got.status == "Accepted"
    await site.csms.wait_for(lambda: any(not r.get("tbc") for r in site.csms.of("ReportChargingProfiles")))
    reported = {p["id"] for r in site.csms.of("ReportChargingProfiles") for p in r["chargingProfile"]}
    assert reported == {5, 6}
    cleared = await site.csms.call(call.ClearChargingProfile(charging_profile_id=6))
    assert cleared.status == "Accepted"
    await until(lambda: sim.snapshot()[1]["current"] == (10.0, 10.0, 10.0))


async def test_get_and_set_variables_answer_per_variable_and_reset_applies_reboot_values(
        site: Site, station: Any) -> None:
    sim = await station()
    comm = {"name": "OCPPCommCtrlr"}
    got = await site.csms.call(call.GetVariables(get_variable_data=[
        {"component": comm, "variable": {"name": "HeartbeatInterval"}},
        {"component": {"name": "NoSuchCtrlr"}, "variable": {"name": "HeartbeatInterval"}},
        {"component": comm, "variable": {"name": "NoSuchVariable"}},
        {"component": comm, "variable": {"name": "HeartbeatInterval"}, "attribute_type": "Target"},
        {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"}},
    ]))
    statuses = [r["attribute_status"] for r in got.get_variable_result]
    assert statuses == ["Accepted", "UnknownComponent", "UnknownVariable", "NotSupportedAttributeType", "Rejected"]
    assert got.get_variable_result[0]["attribute_value"] == "300"  # the interval of the boot answer
    result = await site.csms.call(call.SetVariables(set_variable_data=[
        {"component": {"name": "SampledDataCtrlr"}, "variable": {"name": "TxUpdatedInterval"}, "attribute_value": "2"},
        {"component": {"name": "TxCtrlr"}, "variable": {"name": "TxStartPoint"}, "attribute_value": "Bogus"},
        {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "Identity"}, "attribute_value": "X"},
        {"component": comm, "variable": {"name": "WebSocketPingInterval"}, "attribute_value": "30"},
        {"component": {"name": "Nope"}, "variable": {"name": "X"}, "attribute_value": "1"},
    ]))
    assert [r["attribute_status"] for r in result.set_variable_result] == [
        "Accepted", "Rejected", "Rejected", "RebootRequired", "UnknownComponent"]
    assert sim.device.get("SampledDataCtrlr", "TxUpdatedInterval") == "2"
    assert sim.device.get("OCPPCommCtrlr", "WebSocketPingInterval") == "0"  # until the reboot
    await sim.plug_in(1)
    await sim.present_token(1, "TAG-4")
    await sim.flush()
    answer = await site.csms.call(call.Reset(type="Immediate"))
    assert answer.status == "Accepted"
    await site.csms.wait_for(lambda: len(site.csms.of("BootNotification")) == 2)
    await sim.wait_online(5)
    assert site.csms.of("BootNotification")[1]["reason"] == "RemoteReset"
    ended = events(site.csms)[-1]
    assert ended["eventType"] == "Ended" and ended["transactionInfo"]["stoppedReason"] == "ImmediateReset"
    assert ended["triggerReason"] == "ResetCommand"
    assert sim.device.get("OCPPCommCtrlr", "WebSocketPingInterval") == "30"
    await site.csms.wait_for(lambda: any(e["type"] == "ResetOrReboot" for e in site.csms.of("SecurityEventNotification")))
