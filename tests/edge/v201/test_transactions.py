"""OCPP 2.0.1 block E at the edge: the simulated 2.0.1 station's TransactionEvents (simulator.v201) against the
real edge over real WebSockets, into the same sessions, samples and charge records as 1.6's transactions."""

from __future__ import annotations

import asyncio
import math
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import example, given, settings, strategies as st
from ocpp.exceptions import PropertyConstraintViolationError
from ocpp.v201 import call

from edge.cdr.record import ENERGY
from edge.journal import Store
from edge.ocpp.v201 import transactions, translate
from tests.edge.cdr.helpers import next_cdr
from tests.edge.conftest import free_port, site_toml
from tests.edge.test_cli import edgectl
from tests.edge.v201.conftest import SITE_CHARGERS, STATION, station
from tests.edge.v201.test_device_model import poll


def preauthorized(sim, tag: str) -> None:
    """The station knows `tag` as Accepted and starts on it without asking (C10 LocalPreAuthorize): the
    edge decides the token first in the Started, as it does for a station that charged offline."""
    sim.device.put("AuthCtrlr", "LocalPreAuthorize", "true")
    sim.local_auth.remember(f"ISO14443:{tag}", "Accepted")


async def charge(sim, tag: str, periodic: int = 2) -> dict:
    """Plug in, present `tag`, charge for `periodic` MeterValuePeriodic updates; -> the transaction_started event."""
    await sim.plug_in(1)
    assert await sim.present_token(1, tag) == "Accepted"
    started = await sim.wait_event("transaction_started")
    before = sim._event_counts.get("transaction_event", 0)
    await sim.wait_event("transaction_event", count=before + periodic, timeout=20)
    return started


async def only_transaction(edge) -> dict:
    [row] = await edge.journal.read(Store.transactions, charger_id=STATION)
    return row


async def test_TC_E_07_CSMS_full_session_ends_in_a_record_with_the_energy(make_edge, tmp_path, capsys):
    """E01/E06 (TC_E_07: PowerPathClosed, stopped Local): Started with the token, Updated per phase, Ended
    with the register: one transaction, its samples per phase, a charge record with the metered energy."""
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        records = edge.bus.subscribe()
        async with station(edge, tx_updated_interval=1) as sim:
            await sim.wait_online()
            preauthorized(sim, "TAG-OK")
            await charge(sim, "TAG-OK")
            await sim.stop(1)
            ended = await sim.wait_event("transaction_ended")
            await sim.flush()
            record = await next_cdr(records)

            tx = await only_transaction(edge)
            assert (tx["id_tag"], tx["auth_status"], tx["connector_id"], tx["state"], tx["stop_reason"]) == \
                ("TAG-OK", "Accepted", 1, "completed", "Local")
            # The Ended's register (the station rounds to 0.1 Wh), whole Wh down, as 1.6's meterStop.
            assert tx["meter_stop"] == math.floor(round(ended["energy_wh"], 1))
            assert tx["meter_stop"] > tx["meter_start"]
            assert Decimal(record["energy_kwh"]) == Decimal(tx["meter_stop"] - tx["meter_start"]) / 1000
            samples = await edge.journal.read(Store.samples, transaction_id=tx["id"])
            phases = {s["phase"] for s in samples if s["measurand"] == "Current.Import"}
            assert phases == {"L1", "L2", "L3"}
            assert any(s["measurand"] == "Power.Active.Import" for s in samples)

        (tmp_path / "site.toml").write_text(site_toml(tmp_path, chargers=SITE_CHARGERS).replace(
            "[api]\nport = 0", f"[api]\nport = {edge.api.bound_port}"))
        capsys.readouterr()
        assert await edgectl(tmp_path, "cdrs") == 0
        [line] = [x for x in capsys.readouterr().out.splitlines() if STATION in x]
        assert record["id"] in line


async def test_redelivered_transaction_events_change_nothing(make_edge):
    """A TransactionEvent sent again with the same transactionId and seqNo (its answer got lost) is
    answered as the first time and applies nothing: one transaction, the same samples, one record."""
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        records = edge.bus.subscribe()
        async with station(edge) as sim:
            await sim.wait_online()
            token = {"id_token": "TAG-OK", "type": "ISO14443"}
            at = edge.clock.now_iso()

            def event(kind: str, seq_no: int, wh: float, **extra):
                return call.TransactionEvent(
                    event_type=kind, timestamp=at, trigger_reason="Authorized", seq_no=seq_no,
                    transaction_info={"transaction_id": "tx-again", **extra}, evse={"id": 2, "connector_id": 1},
                    meter_value=[{"timestamp": at, "sampled_value": [
                        {"value": wh, "measurand": "Energy.Active.Import.Register"},
                        {"value": 16.0, "measurand": "Current.Import", "phase": "L1", "unit_of_measure": {"unit": "A"}},
                    ]}], **({"id_token": token} if kind == "Started" else {}))

            started = event("Started", 7, 1000.0)
            updated = event("Updated", 8, 1500.0)
            ended = event("Ended", 9, 2250.0, stopped_reason="EVDisconnected")
            first = (await sim.send(started)).id_token_info
            assert first == {"status": "Accepted", "group_id_token": {"id_token": "residents", "type": "Central"}}
            for message in (started, updated, updated):
                answer = await sim.send(message)
            assert (await sim.send(started)).id_token_info == first   # the very answer the first got
            tx = await only_transaction(edge)
            counted = len(await edge.journal.read(Store.samples, transaction_id=tx["id"]))
            assert counted == 4
            await sim.send(ended)
            await next_cdr(records)
            for message in (ended, updated, started):
                answer = await sim.send(message)
            assert answer.id_token_info == first

            tx = await only_transaction(edge)
            assert (tx["meter_start"], tx["meter_stop"], tx["stop_reason"], tx["connector_id"]) == \
                (1000, 2250, "EVDisconnected", 2)
            assert len(await edge.journal.read(Store.samples, transaction_id=tx["id"])) == counted + 2
            assert len([c for c in await edge.journal.read(Store.cdrs) if c["charger_id"] == STATION]) == 1


async def test_E12_offline_transaction_reconciled_in_order_after_reconnect(make_edge, tmp_path):
    """E12 (a transaction that ran while offline): the edge is down while a whole session runs; the
    station queues Started, Updated, Ended (offline=true, seqNo order) and delivers them when the edge is
    back: the transaction appears, started then stopped in order, with its record."""
    port = free_port()
    async with make_edge(chargers=SITE_CHARGERS, ocpp_port=port) as edge:
        async with station(edge, tx_updated_interval=1) as sim:
            await sim.wait_online()
            preauthorized(sim, "TAG-OK")
        # The station runs on without the edge (the same object: its queue and seqNo survive).
    task = asyncio.create_task(sim.run())
    try:
        await charge(sim, "TAG-OK")
        await sim.stop(1)
        ended = await sim.wait_event("transaction_ended")
        assert len(sim.outbox) >= 3 and not sim.connected
        async with make_edge(chargers=SITE_CHARGERS, ocpp_port=port) as edge:
            records = edge.bus.subscribe()
            await sim.wait_online(timeout=20)
            await sim.flush()
            record = await next_cdr(records)
            tx = await only_transaction(edge)
            assert (tx["state"], tx["auth_status"], tx["stop_reason"]) == ("completed", "Accepted", "Local")
            assert tx["meter_stop"] == math.floor(round(ended["energy_wh"], 1)) > tx["meter_start"]
            assert record["transaction_id"] == tx["id"]
            # All applied, each once, and all offline.
            rows = await edge.journal.read(lambda s: [dict(r) for r in s.conn.execute(
                "SELECT seq_no, event_type, offline FROM station_transaction_events ORDER BY received_at, seq_no")])
            kinds = [r["event_type"] for r in rows]
            assert kinds[0] == "Started" and kinds[-1] == "Ended" and set(kinds[1:-1]) <= {"Updated"}
            assert [r["seq_no"] for r in rows] == sorted(r["seq_no"] for r in rows)
            assert all(r["offline"] for r in rows)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_TC_E_16_CSMS_refused_token_in_started_ends_the_transaction(make_edge):
    """E01.FR.11/12, E06 (TC_E_16: Deauthorized - Invalid idToken): the station started on a token it knew;
    the edge refuses it in the Started's answer (2.0.1's Invalid / Blocked) and the station ends the
    transaction DeAuthorized; the journal keeps it, flagged with the refusal."""
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        async with station(edge) as sim:
            await sim.wait_online()
            for tag, status in (("TAG-UNKNOWN", "Invalid"), ("TAG-BLOCKED", "Blocked")):
                preauthorized(sim, tag)
                count = sim._event_counts.get("transaction_ended", 0)
                answers = sim._event_counts.get("transaction_event_answer", 0)
                await sim.plug_in(1)
                assert await sim.present_token(1, tag) == "Accepted"
                answer = await sim.wait_event("transaction_event_answer", count=answers + 1)
                assert answer["status"] == status
                ended = await sim.wait_event("transaction_ended", count=count + 1)
                assert ended["reason"] == "DeAuthorized"
                await sim.flush()
                await sim.unplug(1)
            rows = sorted(await edge.journal.read(Store.transactions, charger_id=STATION), key=lambda r: r["id"])
            assert [(r["id_tag"], r["auth_status"], r["state"], r["stop_reason"]) for r in rows] == [
                ("TAG-UNKNOWN", "Invalid", "completed", "DeAuthorized"),
                ("TAG-BLOCKED", "Blocked", "completed", "DeAuthorized")]
            assert all("Invalid" in r["flag"] or "Blocked" in r["flag"] for r in rows)


# -- the boundary (pure): what a TransactionEvent may carry -------------------------------------------

ARRIVED = "2026-12-06T10:00:00Z"


@given(st.integers(min_value=-(2 ** 40), max_value=2 ** 40))
def test_seq_no_is_a_32_bit_count_from_0(seq_no):
    payload = {"eventType": "Updated", "timestamp": ARRIVED, "triggerReason": "Trigger", "seqNo": seq_no,
               "transactionInfo": {"transactionId": "t"}}
    if 0 <= seq_no <= 2 ** 31 - 1:
        assert translate.check_call("TransactionEvent", payload, ARRIVED).payload["seqNo"] == seq_no
    else:
        with pytest.raises(Exception) as refused:
            translate.check_call("TransactionEvent", payload, ARRIVED)
        assert "seqNo" in str(refused.value.details) or isinstance(refused.value, PropertyConstraintViolationError)


@settings(max_examples=200)
@given(values=st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=6),
       multiplier=st.integers(min_value=-3, max_value=3))
def test_sampled_values_kept_only_when_finite_and_the_register_is_whole_wh(values, multiplier):
    """A non-finite or absurd value is left out (and said so), never the event; the energy register read
    is the highest, in Wh with the unit's multiplier applied, rounded down."""
    sampled = [{"value": v, "measurand": "Energy.Active.Import.Register", "unitOfMeasure": {"multiplier": multiplier}}
               for v in values]
    payload = {"eventType": "Updated", "timestamp": ARRIVED, "triggerReason": "Trigger", "seqNo": 1,
               "transactionInfo": {"transactionId": "t"}, "meterValue": [{"timestamp": ARRIVED,
                                                                         "sampledValue": sampled}]}
    checked = translate.check_call("TransactionEvent", payload, ARRIVED)
    kept = [s["value"] for s in checked.payload["meterValue"][0]["sampledValue"]]
    sane = [v for v in values if math.isfinite(v) and abs(v) <= 1e12]
    assert kept == sane
    assert len(checked.repairs) == len(values) - len(sane)
    snake = [{"value": v, "measurand": "Energy.Active.Import.Register",
              "unit_of_measure": {"multiplier": multiplier}} for v in kept]
    reading = transactions.read_meter_values(1, [{"timestamp": ARRIVED, "sampled_value": snake}], ARRIVED)
    scaled = [v * 10.0 ** multiplier for v in kept if v * 10.0 ** multiplier >= 0]
    assert reading.register == (int(max(scaled)) if scaled else None)


@given(st.sampled_from(["DeAuthorized", "EmergencyStop", "EnergyLimitReached", "EVDisconnected", "GroundFault",
                        "ImmediateReset", "Local", "LocalOutOfCredit", "MasterPass", "Other", "OvercurrentFault",
                        "PowerLoss", "PowerQuality", "Reboot", "Remote", "SOCLimitReached", "StoppedByEV",
                        "TimeLimitReached", "Timeout"]))
def test_every_stopped_reason_is_a_site_reason(reason):
    assert transactions.stop_reason(reason) in {"DeAuthorized", "EmergencyStop", "EVDisconnected", "HardReset",
                                                "Local", "Other", "PowerLoss", "Reboot", "Remote"}


async def test_F03_use_case_a_remote_stop_names_the_stations_own_transaction(make_edge):
    """Use case F03 (RequestStopTransaction; the OCA case TC_F_03 is a remote start, test_oca_f.py): the
    edge stops a 2.0.1 session by the station's own transactionId (the journal maps it to the site's
    transaction), and the station ends it: Ended, stoppedReason Remote, the transaction completed at the edge."""
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        events = edge.bus.subscribe()
        async with station(edge, tx_updated_interval=1) as sim:
            await sim.wait_online()
            preauthorized(sim, "TAG-OK")
            await charge(sim, "TAG-OK", periodic=1)
            own_id = sim.evses[1].tx.transaction_id
            tx = await only_transaction(edge)
            assert str(tx["id"]) != own_id
            result = await edge.control.remote_stop(STATION, tx["id"], actor="test", reason="F03")
            assert (result.outcome, result.request) == ("ok", {"transactionId": own_id})
            while (event := await asyncio.wait_for(events.get(), 20)).kind != "transaction.stopped":
                pass
            assert event.data["transaction_id"] == tx["id"]
            tx = await only_transaction(edge)
            assert (tx["state"], tx["stop_reason"]) == ("completed", "Remote")


# -- E: chargingState, seqNo order, GetTransactionStatus, samples once -------------------------------------

async def status_becomes(edge, wanted: str) -> None:
    await poll(edge, lambda s: [r for r in s.connectors(STATION) if r["connector_id"] == 1 and r["status"] == wanted])


async def test_E02_occupied_reads_as_the_transactions_charging_state_as_16_says_it(make_edge):
    """2.0.1's Occupied refined by the TransactionEvent's chargingState: a 2.0.1 EVSE reads Preparing (plugged,
    no transaction), Charging, SuspendedEV (the car takes nothing), Charging again, Finishing (ended, cable in),
    Available (unplugged): the words a 1.6 connector says, in the journal and the connector.status events."""
    from dataclasses import replace as replaced

    async with make_edge(chargers=SITE_CHARGERS) as edge:
        events = edge.bus.subscribe()
        async with station(edge, tx_updated_interval=1) as sim:
            await sim.wait_online()
            preauthorized(sim, "TAG-OK")
            await sim.plug_in(1)
            await status_becomes(edge, "Preparing")
            assert await sim.present_token(1, "TAG-OK") == "Accepted"
            await status_becomes(edge, "Charging")
            connector = sim.evses[1].connector
            connector.car = replaced(connector.car, max_current=0.0)
            await status_becomes(edge, "SuspendedEV")
            connector.car = replaced(connector.car, max_current=32.0)
            await status_becomes(edge, "Charging")
            await sim.stop(1)
            await sim.wait_event("transaction_ended")
            await status_becomes(edge, "Finishing")
            await sim.unplug(1)
            await status_becomes(edge, "Available")
        seen = []
        while not events.queue.empty():
            event = events.queue.get_nowait()
            if event.kind == "connector.status" and event.charger_id == STATION and event.data["connector_id"] == 1:
                seen.append((event.data["status"], event.data["ocpp_status"]))
        statuses = [s for s, _ in seen]
        compact = [s for n, s in enumerate(statuses) if n == 0 or statuses[n - 1] != s]
        assert compact[-6:] == ["Preparing", "Charging", "SuspendedEV", "Charging", "Finishing", "Available"], seen
        assert all(ocpp == "Occupied" for s, ocpp in seen if s != "Available")


class RawStation:
    """An OCTT-like 2.0.1 station over a real WebSocket: the ocpp library's client, answering GetTransactionStatus
    as the test says, recording what the edge asked."""

    def __init__(self, edge, queued: Any, ongoing: bool, station_id: str = STATION):
        from ocpp.routing import on
        from ocpp.v201 import ChargePoint, call_result
        from ocpp.v201.enums import Action

        self.asked: list[dict] = []
        self.asked_event = asyncio.Event()
        outer = self

        class Client(ChargePoint):
            @on(Action.get_transaction_status)
            def on_get_transaction_status(self, transaction_id=None, **_):
                outer.asked.append({"transaction_id": transaction_id})
                outer.asked_event.set()
                return call_result.GetTransactionStatus(messages_in_queue=queued() if callable(queued) else queued,
                                                        ongoing_indicator=ongoing)

            @on(Action.get_base_report)
            def on_get_base_report(self, **_):
                return call_result.GetBaseReport(status="NotSupported")

            @on(Action.set_variables)
            def on_set_variables(self, set_variable_data, **_):
                return call_result.SetVariables(set_variable_result=[
                    {"attribute_status": "Rejected", "component": d["component"], "variable": d["variable"]}
                    for d in set_variable_data])
        self.client_class = Client
        self.edge, self.station_id = edge, station_id

    async def __aenter__(self):
        from websockets.asyncio.client import connect
        from tests.edge.conftest import ocpp_url

        self._ws = await connect(ocpp_url(self.edge, self.station_id), subprotocols=["ocpp2.0.1"]).__aenter__()
        self.cp = self.client_class(self.station_id, self._ws)
        self._task = asyncio.create_task(self.cp.start())
        boot = await self.cp.call(call.BootNotification(
            charging_station={"model": "OCTT-like", "vendor_name": "T"}, reason="PowerUp"))
        assert boot.status == "Accepted"
        return self

    async def __aexit__(self, *exc):
        self._task.cancel()
        await self._ws.close()


def raw_event(kind: str, seq_no: int, wh: float | None, *, offline: bool = False, tx: str = "tx-31",
              at: str = ARRIVED, **info):
    values = [] if wh is None else [{"timestamp": at, "sampled_value": [
        {"value": wh, "measurand": "Energy.Active.Import.Register"}]}]
    return call.TransactionEvent(
        event_type=kind, timestamp=at, trigger_reason="Authorized" if kind == "Started" else "EVDeparted",
        seq_no=seq_no, transaction_info={"transaction_id": tx, **info}, evse={"id": 1, "connector_id": 1},
        meter_value=values or None, offline=offline or None,
        id_token={"id_token": "TAG-OK", "type": "ISO14443"} if kind == "Started" else None)


async def test_TC_E_31_CSMS_an_ended_before_its_queued_updates_waits_for_them(make_edge):
    """E14 (TC_E_31: ended, with messages in queue): after a reconnect the station's Ended (offline, its seqNo
    skipping two) comes before its two queued Updated; the edge answers it, asks GetTransactionStatus with the
    transactionId, hears ongoing false and messages queued, and applies the Ended once the Updated are in: the
    transaction stops at the last Updated's register, not at the start's (what arrival order would bill)."""
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        async with RawStation(edge, queued=True, ongoing=False) as cs:
            await cs.cp.call(raw_event("Started", 0, 1000.0, charging_state="Charging"))
            tx = await only_transaction(edge)
            answer = await cs.cp.call(raw_event("Ended", 3, None, offline=True, charging_state="Idle",
                                                stopped_reason="EVDisconnected"))
            assert answer.id_token_info is None
            await wait_until(lambda: any(a["transaction_id"] for a in cs.asked))
            # Asked at the connection without a transactionId (none was open then: TC_E_33/34), then naming it.
            named = [a for a in cs.asked if a["transaction_id"] is not None]
            assert named[0] == {"transaction_id": "tx-31"} and all(a == named[0] for a in named)
            assert (await only_transaction(edge))["state"] == "active"        # held: not applied yet
            await cs.cp.call(raw_event("Updated", 1, 1800.0, offline=True))
            assert (await only_transaction(edge))["state"] == "active"        # seqNo 2 still missing
            await cs.cp.call(raw_event("Updated", 2, 2400.0, offline=True, charging_state="EVConnected"))
            tx = await only_transaction(edge)
            assert (tx["state"], tx["meter_start"], tx["meter_stop"], tx["stop_reason"]) == \
                ("completed", 1000, 2400, "EVDisconnected")
            samples = await edge.journal.read(Store.samples, transaction_id=tx["id"])
            assert sorted(s["value"] for s in samples if s["measurand"] == ENERGY) == [1000.0, 1800.0, 2400.0]
            assert await edge.journal.read(Store.held_transaction_events, STATION) == []
            # Redelivered, the held-then-applied Ended changes nothing.
            await cs.cp.call(raw_event("Ended", 3, None, offline=True, stopped_reason="EVDisconnected"))
            assert (await only_transaction(edge))["meter_stop"] == 2400


async def test_TC_E_32_CSMS_a_held_ended_applies_when_the_station_has_nothing_queued(make_edge):
    """E14 (TC_E_32: ended, without messages in queue): the Ended skips seqNos, but the station says nothing of the
    transaction is queued: the Ended applies at once (the skipped events are lost, the stop bills what is known)."""
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        async with RawStation(edge, queued=False, ongoing=False) as cs:
            await cs.cp.call(raw_event("Started", 0, 1000.0, charging_state="Charging"))
            await cs.cp.call(raw_event("Ended", 3, 2600.0, offline=True, stopped_reason="Local"))
            await asyncio.wait_for(cs.asked_event.wait(), 20)
            [tx] = await poll(edge, lambda s: [t for t in s.transactions(charger_id=STATION)
                                               if t["state"] == "completed"])
            assert (tx["meter_stop"], tx["stop_reason"]) == (2600, "Local")



async def test_held_events_outlive_a_restart_and_settle_at_the_next_connection(make_edge):
    """An Ended held (the station said messages are queued) when the edge stops is in the journal; at the next
    connection the edge asks again, hears nothing is queued, and applies it."""
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        async with RawStation(edge, queued=True, ongoing=False) as cs:
            await cs.cp.call(raw_event("Started", 0, 1000.0))
            await cs.cp.call(raw_event("Ended", 3, 2600.0, offline=True, stopped_reason="Local"))
            await asyncio.wait_for(cs.asked_event.wait(), 20)
        assert [h["seq_no"] for h in await edge.journal.read(Store.held_transaction_events, STATION)] == [3]
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        assert (await only_transaction(edge))["state"] == "active"
        async with RawStation(edge, queued=False, ongoing=False) as cs:
            await cs.cp.call(call.Heartbeat())
            [tx] = await poll(edge, lambda s: [t for t in s.transactions(charger_id=STATION)
                                               if t["state"] == "completed"])
            assert (tx["meter_stop"], tx["stop_reason"]) == (2600, "Local")
            assert cs.asked == [{"transaction_id": "tx-31"}]
            # Released once applied (the release is its own write, just after the event's): nothing stays held.
            await poll(edge, lambda s: not s.held_transaction_events(STATION))


async def test_TC_E_29_CSMS_transaction_status_asked_after_reconnect(make_edge):
    """E14 (TC_E_29/30: ongoing): the connection drops while a session runs; once the station is back the edge
    asks GetTransactionStatus naming that transaction, and hears it still runs."""
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        events = edge.bus.subscribe()
        async with station(edge, tx_updated_interval=1) as sim:
            await sim.wait_online()
            preauthorized(sim, "TAG-OK")
            await charge(sim, "TAG-OK", periodic=1)
            own_id = sim.evses[1].tx.transaction_id
            asked = len([d for n, d in sim.events if n == "request" and d["action"] == "GetTransactionStatus"])
            await sim.link.close()
            await wait_until(lambda: len([d for n, d in sim.events if n == "request"
                                          and d["action"] == "GetTransactionStatus"]) > asked)
            [request] = [d for n, d in sim.events if n == "request" and d["action"] == "GetTransactionStatus"][asked:]
            assert (request["transaction_id"], request["ongoing"]) == (own_id, True)
            # (The first connection's ask named no transaction: none was open then, TC_E_34.)
            while (event := await asyncio.wait_for(events.get(), 20)).kind != "transaction.status" or \
                    event.data["station_transaction_id"] is None:
                pass
            assert event.data == {"station_transaction_id": own_id, "messages_in_queue": request["messages_in_queue"],
                                  "ongoing": True}


async def wait_until(predicate, timeout: float = 20) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_a_crash_between_samples_and_the_events_mark_stores_the_samples_once(make_edge):
    """The known risk: the edge stopped after an Updated's samples were committed and before the event was marked
    applied (two journal writes). The station, unanswered, sends it again: its samples are not stored twice."""
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        async with RawStation(edge, queued=False, ongoing=True) as cs:
            await cs.cp.call(raw_event("Started", 0, 1000.0))
            updated = raw_event("Updated", 1, 1500.0)
            await cs.cp.call(updated)
            tx = await only_transaction(edge)
            before = await edge.journal.read(Store.samples, transaction_id=tx["id"])
            # The state such a crash leaves: the samples there, the event's mark not.
            await edge.journal.write(lambda s: s.conn.execute(
                "DELETE FROM station_transaction_events WHERE station_tx_id = 'tx-31' AND seq_no = 1"))
            await cs.cp.call(updated)
            assert await edge.journal.read(Store.samples, transaction_id=tx["id"]) == before
            assert await edge.journal.read(Store.transaction_event_seen, STATION, "tx-31", 1)
            # A new event with the same register but a new reading time is stored.
            await cs.cp.call(call.TransactionEvent(
                event_type="Updated", timestamp=ARRIVED, trigger_reason="MeterValuePeriodic", seq_no=2,
                transaction_info={"transaction_id": "tx-31"}, meter_value=[{
                    "timestamp": "2026-12-06T10:00:10Z",
                    "sampled_value": [{"value": 1500.0, "measurand": "Energy.Active.Import.Register"}]}]))
            assert len(await edge.journal.read(Store.samples, transaction_id=tx["id"])) == len(before) + 1


async def test_a_started_after_its_updated_gives_the_transaction_its_start(make_edge):
    """Out of seqNo order: an Updated (no token) arrives before its Started: the session waits for the token and
    starts from the Started's register and time, not the Updated's."""
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        async with RawStation(edge, queued=False, ongoing=True) as cs:
            await cs.cp.call(raw_event("Updated", 1, 1500.0))
            assert await edge.journal.read(Store.transactions, charger_id=STATION) == []
            await cs.cp.call(raw_event("Started", 0, 1000.0))
            tx = await only_transaction(edge)
            assert (tx["meter_start"], tx["id_tag"], tx["state"]) == (1000, "TAG-OK", "active")


@given(st.sets(st.integers(0, 40)), st.integers(0, 60))
def test_an_ended_waits_exactly_while_a_lower_seq_no_is_missing(seen, seq_no):
    ordered = sorted(seen)
    expected = not ordered or any(n not in seen for n in range(ordered[0], seq_no))
    assert transactions.missing_before(ordered, seq_no) == expected


# An offline transaction as a station queues it: (kind, seqNo, energy register Wh or None).
OFFLINE_TX = [("Started", 0, 1000.0), ("Updated", 1, 1200.0), ("Updated", 2, 1500.0), ("Updated", 3, 1900.0),
              ("Ended", 4, None)]


async def _deliver_in_orders(orders: list[list[int]]) -> list[tuple]:
    """A real edge (its own tmp dir) and an OCTT-like station that delivers one offline transaction per order,
    its events in that order, saying messages are queued while some of them are not sent yet."""
    import tempfile
    from pathlib import Path

    from edge.config import parse_config
    from tests.edge.conftest import running_edge

    outcomes = []
    with tempfile.TemporaryDirectory() as tmp:
        config = parse_config(site_toml(Path(tmp), chargers=SITE_CHARGERS), "test.toml", state_dir=tmp)
        async with running_edge(config, None) as edge:
            unsent: set = set()
            async with RawStation(edge, queued=lambda: bool(unsent), ongoing=False) as cs:
                for n, order in enumerate(orders):
                    tx = f"tx-order-{n}"
                    unsent.update((tx, i) for i in order)
                    for i in order:
                        kind, seq_no, wh = OFFLINE_TX[i]
                        unsent.discard((tx, i))
                        await cs.cp.call(raw_event(kind, seq_no, wh, offline=True, tx=tx,
                                                   at=f"2026-12-06T{10 + n:02d}:{seq_no:02d}:00Z",
                                                   **({"stopped_reason": "EVDisconnected"} if kind == "Ended" else {})))
                    row = await poll(edge, lambda s, tx=tx: [t for t in s.transactions(charger_id=STATION)
                                                             if t["state"] == "completed" and
                                                             s.station_tx_id(STATION, t["id"]) == tx])
                    samples = await edge.journal.read(Store.samples, transaction_id=row[0]["id"])
                    outcomes.append((order, row[0]["meter_start"], row[0]["meter_stop"],
                                     sorted(s["value"] for s in samples if s["measurand"] == ENERGY),
                                     await edge.journal.read(Store.held_transaction_events, STATION, tx)))
    return outcomes


@settings(max_examples=8, deadline=None)
@given(st.lists(st.permutations(range(len(OFFLINE_TX))), min_size=4, max_size=4))
@example([[4, 3, 2, 1, 0], [3, 0, 1, 2, 4], [1, 4, 0, 3, 2], [2, 0, 4, 1, 3]])
def test_any_arrival_order_of_an_offline_transaction_bills_the_same(orders):
    """Whatever order a station's offline queue arrives in (over the real wire, the edge asking
    GetTransactionStatus meanwhile), the transaction is the same: started at the Started's register, stopped at
    the highest the Updated reached, every register sample with it, nothing left held."""
    for order, meter_start, meter_stop, registers, held in asyncio.run(_deliver_in_orders(orders)):
        assert (meter_start, meter_stop, registers, held) == (1000, 1900, [1000.0, 1200.0, 1500.0, 1900.0], []), order
