"""The core asks stations in domain words (edge/stations/control.py); the OCPP 1.6
adapter words each request as a 1.6 message a real 1.6 station takes, and
reads its answers back into domain words."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from hypothesis import given, strategies as st
from ocpp.messages import Call, _validate_payload

from edge.auth.local_list import full_updates
from edge.journal import Store
from edge.ocpp.v16.control import charging_profile, local_list_request
from edge.stations.model import (Availability, ChargingLimit, IdToken, LimitPurpose, ListUpdateStatus, ResetKind,
                                 Setting, Trigger)
from tests.edge.conftest import simulated, wait_for

limits = st.builds(
    ChargingLimit,
    profile_id=st.integers(1, 10_000), purpose=st.sampled_from(LimitPurpose),
    limit=st.floats(0, 80, allow_nan=False), stack_level=st.integers(0, 9), evse=st.integers(0, 4),
    phases=st.one_of(st.none(), st.sampled_from([1, 3])), transaction_id=st.one_of(st.none(), st.integers(1, 2**31)),
    unit=st.sampled_from(["A", "W"]),
    start=st.one_of(st.none(), st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2040, 1, 1),
                                            timezones=st.just(timezone.utc))),
    duration_s=st.one_of(st.none(), st.integers(1, 86_400)))


def assert_valid_16(action: str, payload: dict) -> None:
    """The ocpp library's OCPP 1.6 JSON schema check, as a station's library would run it."""
    _validate_payload(Call("1", action, json.loads(json.dumps(payload))), "1.6")


@given(limits)
def test_every_charging_limit_is_a_valid_16_profile(limit):
    payload = charging_profile(limit)
    assert_valid_16("SetChargingProfile", payload)
    period = payload["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][0]
    phases = limit.phases or 3
    expected = limit.limit * 230.0 * phases if limit.unit == "W" else limit.limit
    assert abs(period["limit"] - expected) <= 0.05 + 1e-9
    assert payload["connectorId"] == limit.evse
    assert payload["csChargingProfiles"]["chargingProfileKind"] == ("Absolute" if limit.start else "Relative")


@given(st.dictionaries(st.text("ABCDEF0123456789", min_size=1, max_size=20),
                       st.sampled_from(["Accepted", "Blocked", "Expired"]), max_size=30),
       st.integers(1, 10))
def test_local_list_updates_are_valid_16_requests(tags, max_send):
    entries = {tag: {"status": status, "parentIdTag": "residents"} for tag, status in tags.items()}
    for update in full_updates(entries, 7, max_send):
        assert_valid_16("SendLocalList", local_list_request(update))


async def test_the_16_adapter_against_a_16_station(edge):
    """Each request of the control interface reaches the simulated 1.6 station as the message it
    expects (it answers, nothing is a CALLERROR), lands in the actions log with its actor and reason,
    and what the station answers comes back in domain words."""
    control = edge.control
    async with simulated(edge):
        asks = [
            control.change_availability("CP-1", 2, Availability.INOPERATIVE, actor="t", reason="r"),
            control.change_availability("CP-1", 2, Availability.OPERATIVE, actor="t", reason="r"),
            control.trigger("CP-1", Trigger.STATUS, actor="t", reason="r"),
            control.trigger("CP-1", Trigger.HEARTBEAT, evse=1, actor="t", reason="r"),
            control.clear_cache("CP-1", actor="t", reason="r"),
            control.set_charging_limit("CP-1", ChargingLimit(
                1, LimitPurpose.TX_DEFAULT, 16, 0, phases=3), actor="t", reason="r"),
            control.clear_charging_limit("CP-1", 1, actor="t", reason="r"),
            control.change_setting("CP-1", Setting.LOCAL_AUTH_LIST_ENABLED, True, actor="t", reason="r"),
            control.reserve("CP-1", 1, IdToken("TAG-OK"), reservation_id=5, parent="residents",
                            expires=(datetime.now(timezone.utc) + timedelta(minutes=5)).isoformat(),
                            actor="t", reason="r"),
            control.cancel_reservation("CP-1", 5, actor="t", reason="r"),
            control.unlock("CP-1", 1, actor="t", reason="r"),
        ]
        for ask in asks:
            result = await ask
            assert result.outcome in ("ok", "rejected"), result
        update = full_updates({"TAG-OK": {"status": "Accepted"}}, 3, 10)[0]
        sent = await control.send_local_list("CP-1", update, actor="t", reason="r")
        assert sent.value == ListUpdateStatus.ACCEPTED
        version = await control.local_list_version("CP-1", actor="t", reason="r")
        assert (version.outcome, version.value) == ("ok", 3)
        settings = await control.read_settings("CP-1", [Setting.LOCAL_AUTH_LIST_MAX_LENGTH], actor="t", reason="r")
        assert set(settings.value) == {Setting.LOCAL_AUTH_LIST_MAX_LENGTH}
        assert int(settings.value[Setting.LOCAL_AUTH_LIST_MAX_LENGTH]) > 0
        everything = await control.read_configuration("CP-1", actor="t", reason="r")
        assert "LocalAuthListMaxLength" in everything.value
        assert everything.as_dict().keys() == {"action_id", "charger_id", "action", "outcome", "response"}
        reset = await control.reset("CP-1", ResetKind.SOFT, actor="t", reason="r")    # last: the station reboots
        assert (reset.outcome, reset.request) == ("ok", {"type": "Soft"})
    await wait_for(lambda: not control.is_connected("CP-1"), what="the station gone")
    gone = await control.remote_stop("CP-1", 1, actor="t", reason="r")
    assert (gone.outcome, gone.value, gone.request) == ("not-connected", None, {"transactionId": 1})
    log = await edge.journal.read(Store.log, "actions", "CP-1", 100)
    mine = [a for a in log if a["actor"] == "t"]
    assert len(mine) == len(asks) + 6 and all(a["reason"] == "r" for a in mine)
    assert {a["action"] for a in mine} >= {"ChangeAvailability", "TriggerMessage", "SetChargingProfile", "Reset",
                                          "SendLocalList", "GetLocalListVersion", "GetConfiguration",
                                          "RemoteStopTransaction"}
