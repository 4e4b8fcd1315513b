"""The core asks a 2.0.1 station in the same domain words as a 1.6 one (edge/stations/control.py):
`Edge.control` hands each request to the adapter of the protocol the station is connected with,
the 2.0.1 adapter (edge/ocpp/v201/control.py) words it as a 2.0.1 message the station's library
takes, the actions log records it as for 1.6, and the answers come back in domain words."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from hypothesis import given, strategies as st
from ocpp.messages import Call, _validate_payload

from edge.auth.local_list import differential_updates, full_updates
from edge.clock import iso
from edge.journal import Store
from edge.ocpp.v201.control import (SETTING_VARIABLES, V201Control, charging_profile, local_list_request,
                                    remote_start_request, reservation_request, setting_request)
from edge.stations.model import (Availability, ChargingLimit, IdToken, IdTokenType, LimitPurpose, ListUpdateStatus,
                                 ResetKind, Setting, Trigger)
from tests.edge.conftest import simulated, wait_for
from tests.edge.test_station_control import limits
from tests.edge.v201.conftest import SITE_CHARGERS, STATION, station


NOW = datetime(2026, 12, 6, 10, 0, tzinfo=timezone.utc)


def assert_valid_201(action: str, payload: dict) -> None:
    """The ocpp library's OCPP 2.0.1 JSON schema check, as a station's library runs it."""
    _validate_payload(Call("1", action, json.loads(json.dumps(payload))), "2.0.1")


tokens = st.builds(IdToken, st.text("ABCDEF0123456789", min_size=1, max_size=36), st.sampled_from(IdTokenType))
tags = st.dictionaries(st.text("ABCDEF0123456789", min_size=1, max_size=20),
                       st.sampled_from(["Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx"]), max_size=30)


@given(limits, st.one_of(st.none(), st.uuids().map(str)))
def test_every_charging_limit_is_a_valid_201_profile(limit, transaction):
    payload = charging_profile(limit, transaction, NOW)
    assert_valid_201("SetChargingProfile", payload)
    profile = payload["chargingProfile"]
    period = profile["chargingSchedule"][0]["chargingSchedulePeriod"][0]
    expected = limit.limit * 230.0 * (limit.phases or 3) if limit.unit == "W" else limit.limit
    assert abs(period["limit"] - expected) <= 0.05 + 1e-9
    assert period.get("numberPhases") == limit.phases
    # The station's maximum belongs on EVSE 0 (K01.FR.03), the others where the core put them.
    assert payload["evseId"] == (0 if limit.purpose is LimitPurpose.STATION_MAX else limit.evse)
    assert profile["chargingProfilePurpose"] == {"ChargePointMaxProfile": "ChargingStationMaxProfile"}.get(
        limit.purpose.value, limit.purpose.value)
    assert profile.get("transactionId") == transaction
    # K01.FR.38/41: the station's maximum is never Relative; a Relative profile has no start.
    schedule = profile["chargingSchedule"][0]
    if limit.purpose is LimitPurpose.STATION_MAX or limit.start is not None:
        assert profile["chargingProfileKind"] == "Absolute"
        assert schedule["startSchedule"] == iso(limit.start or NOW)
    else:
        assert profile["chargingProfileKind"] == "Relative" and "startSchedule" not in schedule


@given(tags, tags, st.integers(1, 10), st.integers(1, 1000))
def test_local_list_updates_are_valid_201_requests(held, target, max_send, version):
    def entries(statuses):
        return {tag: {"status": status, "parentIdTag": "residents", "expiryDate": "2030-01-01T00:00:00+00:00"}
                for tag, status in statuses.items()}
    updates = full_updates(entries(target), version, max_send) + \
        differential_updates(entries(held), entries(target), version, max_send)
    for update in updates:
        request = local_list_request(update)
        assert_valid_201("SendLocalList", request)
        sent = {e["idToken"]["idToken"]: e.get("idTokenInfo") for e in request.get("localAuthorizationList", [])}
        for item in update.items:     # every entry, a removal (no idTagInfo) without idTokenInfo
            info = sent[item["idTag"]]
            assert (info is None) == (item.get("idTagInfo") is None)
            if info is not None:
                assert info["status"] == item["idTagInfo"]["status"]
                assert info["groupIdToken"]["idToken"] == "residents"


@given(tokens, st.integers(0, 100), st.integers(1, 2**31 - 1))
def test_remote_starts_and_reservations_are_valid_201_requests(token, evse, number):
    start = remote_start_request(evse, token, number)
    assert_valid_201("RequestStartTransaction", start)
    assert start["idToken"] == {"idToken": token.value, "type": token.type.value}
    assert start.get("evseId") == (evse or None)
    reservation = reservation_request(evse, token, number, "2030-01-01T00:00:00Z", "residents")
    assert_valid_201("ReserveNow", reservation)


@given(st.sampled_from(list(SETTING_VARIABLES)), st.one_of(st.booleans(), st.integers(0, 10_000)))
def test_every_setting_is_a_valid_201_variable_request(setting, value):
    assert_valid_201("SetVariables", setting_request(setting, value))
    assert_valid_201("GetVariables", {"getVariableData": [v.as_request() for v in SETTING_VARIABLES.values()]})


async def test_the_201_adapter_against_a_201_station(make_edge):
    """Each request reaches the simulated 2.0.1 station as the message it expects (it answers, nothing is a
    CALLERROR), lands in the actions log with its actor and reason, and comes back in domain words; a
    1.6 charger on the same edge is still asked in 1.6."""
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        control = edge.control
        async with station(edge) as sim, simulated(edge):
            assert control.is_connected(STATION) and control.is_ready(STATION)
            await sim.plug_in(1)
            started = await control.remote_start(STATION, 1, IdToken("TAG-OK", IdTokenType.CENTRAL), actor="t",
                                                 reason="r")
            assert started.outcome == "ok" and started.request["remoteStartId"] > 0, started
            await wait_for(lambda: sim.evses[1].tx is not None and sim.evses[1].token is not None,
                           what="the remote start's transaction")
            running = sim.evses[1].tx.transaction_id
            assert sim.evses[1].tx.remote_start_id == started.request["remoteStartId"]

            limit = ChargingLimit(7, LimitPurpose.TX_DEFAULT, 10, 0, evse=1, phases=3)
            assert (await control.set_charging_limit(STATION, limit, actor="t", reason="r")).outcome == "ok"
            await wait_for(lambda: sim.offered_current(1) == 10.0, what="the station at its limit")
            station_max = ChargingLimit(8, LimitPurpose.STATION_MAX, 6, 0, phases=3)
            assert (await control.set_charging_limit(STATION, station_max, actor="t", reason="r")).outcome == "ok"
            await wait_for(lambda: sim.offered_current(1) == 6.0, what="the station's maximum in force")
            assert (await control.clear_charging_limit(STATION, 8, actor="t", reason="r")).outcome == "ok"
            await wait_for(lambda: sim.offered_current(1) == 10.0, what="the maximum cleared")
            # A TxProfile names the station's own transactionId (the hook the transaction handling fills).
            async def station_transaction(charger_id: str, transaction_id: int) -> str:
                return running if (charger_id, transaction_id) == (STATION, 42) else str(transaction_id)
            tx_control = V201Control(edge.commands, edge.clock, station_transaction=station_transaction)
            tx_limit = ChargingLimit(9, LimitPurpose.TX, 8, 1, evse=1, transaction_id=42, phases=3)
            tx = await tx_control.set_charging_limit(STATION, tx_limit, actor="t", reason="r")
            assert (tx.outcome, tx.request["chargingProfile"]["transactionId"]) == ("ok", running)
            await wait_for(lambda: sim.offered_current(1) == 8.0, what="the TxProfile in force")

            unlock = await control.unlock(STATION, 1, actor="t", reason="r")
            assert (unlock.outcome, unlock.response) == ("rejected", {"status": "OngoingAuthorizedTransaction"})
            stopped = await tx_control.remote_stop(STATION, 42, actor="t", reason="r")
            assert (stopped.outcome, stopped.request) == ("ok", {"transactionId": running})
            await wait_for(lambda: sim.evses[1].token is None, what="the remote stop")
            unknown = await control.remote_stop(STATION, 42, actor="t", reason="r")
            assert (unknown.outcome, unknown.response) == ("rejected", {"status": "Rejected"})
            assert (await control.unlock(STATION, 2, actor="t", reason="r")).response == {"status": "Unlocked"}

            off = await control.change_availability(STATION, 2, Availability.INOPERATIVE, actor="t", reason="r")
            assert (off.outcome, off.request) == ("ok", {"operationalStatus": "Inoperative", "evse": {"id": 2}})
            await wait_for(lambda: not sim.evses[2].connector.operative, what="EVSE 2 inoperative")
            assert (await control.change_availability(STATION, 0, Availability.OPERATIVE, actor="t",
                                                      reason="r")).request == {"operationalStatus": "Operative"}
            for what, evse in ((Trigger.HEARTBEAT, None), (Trigger.STATUS, 1), (Trigger.METER_VALUES, 1)):
                triggered = await control.trigger(STATION, what, evse=evse, actor="t", reason="r")
                assert (triggered.outcome, triggered.response) == ("ok", {"status": "Accepted"}), triggered
            assert (await control.clear_cache(STATION, actor="t", reason="r")).outcome == "ok"

            held = {"TAG-OK": {"status": "Accepted", "parentIdTag": "residents"}, "TAG-2": {"status": "Blocked"}}
            update = full_updates(held, 3, 10)[0]
            assert (await control.send_local_list(STATION, update, actor="t", reason="r")).value == \
                ListUpdateStatus.ACCEPTED
            assert (await control.local_list_version(STATION, actor="t", reason="r")).value == 3
            [removal] = differential_updates(held, {"TAG-2": {"status": "Blocked"}}, 4, 10)
            assert (await control.send_local_list(STATION, removal, actor="t", reason="r")).value == \
                ListUpdateStatus.ACCEPTED
            assert set(sim.local_auth.entries) == {"ISO14443:TAG-2"}

            settings = await control.read_settings(STATION, None, actor="t", reason="r")
            # All but the meter's key: the simulated station has no fiscal meter (FiscalMetering is UnknownComponent).
            assert settings.outcome == "ok" and set(settings.value) == set(SETTING_VARIABLES) - {
                Setting.METER_PUBLIC_KEY}, settings.value
            assert settings.value[Setting.SEND_LOCAL_LIST_MAX_LENGTH] == "100"
            assert settings.value[Setting.LOCAL_AUTH_LIST_ENABLED] == "true"
            changed = await control.change_setting(STATION, Setting.AUTHORIZATION_CACHE_ENABLED, False, actor="t",
                                                   reason="r")
            assert changed.outcome == "ok" and not sim.device.flag("AuthCacheCtrlr", "Enabled")
            read_only = await control.change_setting(STATION, Setting.MAX_STACK_LEVEL, 3, actor="t", reason="r")
            assert read_only.outcome == "rejected", read_only
            everything = await control.read_configuration(STATION, actor="t", reason="r")
            assert everything.value["LocalAuthListCtrlr.ItemsPerMessage"] == "100"

            # The 1.6 charger beside it is still asked in 1.6.
            reset16 = await control.trigger("CP-1", Trigger.HEARTBEAT, actor="t", reason="r")
            assert (reset16.outcome, reset16.request) == ("ok", {"requestedMessage": "Heartbeat"})

            reset = await control.reset(STATION, ResetKind.SOFT, actor="t", reason="r")   # last: it reboots
            assert (reset.outcome, reset.request) == ("ok", {"type": "OnIdle"})
            await sim.wait_event("boot", count=2)
        await wait_for(lambda: not control.is_connected(STATION), what="the station gone")
        # Not connected: still worded as 2.0.1 (the protocol it last connected with), logged, nothing sent.
        gone = await control.remote_stop(STATION, 1, actor="t", reason="r")
        assert (gone.outcome, gone.action, gone.value, gone.request) == \
            ("not-connected", "RequestStopTransaction", None, {"transactionId": "1"})
        assert (await control.local_list_version(STATION, actor="t", reason="r")).value is None
        log = await edge.journal.read(Store.log, "actions", STATION, 100)
        mine = [a for a in log if a["actor"] == "t"]
        assert all(a["reason"] == "r" for a in mine)
        assert {a["action"] for a in mine} == {
            "RequestStartTransaction", "RequestStopTransaction", "SetChargingProfile", "ClearChargingProfile",
            "UnlockConnector", "ChangeAvailability", "TriggerMessage", "ClearCache", "SendLocalList",
            "GetLocalListVersion", "GetVariables", "SetVariables", "Reset"}
