"""The edge's quicker ways through a charger's frame decide exactly as the slow ways they stand in for:

- the 1.6 schema checks (edge/ocpp/quick_schema.py in the library's cache) pass and refuse what the
  library's own validators do, with the same first error (it becomes the CALLERROR);
- the key conversions (edge/ocpp/key_case.py) give the library's keys;
- the one-pass look for lone surrogates in the frame (boundary.surrogate_free) never lets one through
  that the walk over every string (boundary._check_strings) would refuse.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import ocpp.messages
import pytest
from hypothesis import example, given, settings, strategies as st
from jsonschema import Draft4Validator
from ocpp.charge_point import camel_to_snake_case, remove_nones, serialize_as_dict, snake_to_camel_case
from ocpp.exceptions import OCPPError
from ocpp.v16 import call

from edge.ocpp import boundary, key_case, quick_schema
from edge.ocpp.v16 import session as v16_session
from tests.json_paths import paths, replaced, verdict

SCHEMAS = Path(ocpp.messages.__file__).parent / "v16" / "schemas"
NOW = "2026-12-07T10:00:00Z"


def schema(name: str) -> dict:
    return json.loads((SCHEMAS / f"{name}.json").read_text(encoding="utf-8-sig"))


def wire(payload: Any) -> dict:
    return remove_nones(snake_to_camel_case(serialize_as_dict(payload)))


def meter_values() -> dict:
    """What the bench's 1.6 chargers send every 10 s (bench/fleet.py)."""
    from datetime import datetime, timezone

    from bench.fleet import meter_value
    from simulator import SimulatedChargePoint

    sim = SimulatedChargePoint("CP-1", "ws://unused", meter_interval=0)
    value = meter_value(sim.connector(1), sim.voltage, datetime(2026, 12, 7, tzinfo=timezone.utc))
    return wire(call.MeterValues(connector_id=1, meter_value=[value], transaction_id=7))


SAMPLES = {
    "MeterValues": meter_values(),
    "StatusNotification": {"connectorId": 1, "errorCode": "NoError", "status": "Charging", "timestamp": NOW},
    "StartTransaction": {"connectorId": 1, "idTag": "TAG-1", "meterStart": 0, "timestamp": NOW},
    "StopTransaction": {"meterStop": 1200, "timestamp": NOW, "transactionId": 7, "reason": "EVDisconnected",
                        "transactionData": meter_values()["meterValue"]},
    "BootNotification": {"chargePointVendor": "Acme", "chargePointModel": "Wallbox 22"},
    "Authorize": {"idTag": "TAG-1"},
    "Heartbeat": {},
    "StartTransactionResponse": {"idTagInfo": {"status": "Accepted", "parentIdTag": "G"}, "transactionId": 7},
    "AuthorizeResponse": {"idTagInfo": {"status": "Blocked", "expiryDate": NOW}},
    "BootNotificationResponse": {"currentTime": NOW, "interval": 60, "status": "Accepted"},
}

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
                           | st.sampled_from(["Accepted", "Charging", "Energy.Active.Import.Register", "L1", NOW,
                                              "Sample.Periodic", "Wh", "12.5"]),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                               st.sampled_from(["value", "idTag", "status", "unit", "phase", "x"]), inner,
                               max_size=3), max_leaves=6)


def test_the_frequent_16_messages_are_checked_quickly_in_the_librarys_cache():
    for action in v16_session.FREQUENT:
        for message_type in (2, 3):
            validator = ocpp.messages.get_validator(message_type, action, "1.6")
            assert isinstance(validator, quick_schema.QuickValidator), (action, message_type)


def test_the_16_messages_whose_floats_are_decimals_keep_the_librarys_validator():
    """SetChargingProfile and RemoteStartTransaction are read with decimals by the library (their
    multipleOf): the quick check knows no multipleOf and none is installed for them."""
    assert not set(v16_session.FREQUENT) & {"SetChargingProfile", "RemoteStartTransaction", "GetCompositeSchedule"}
    with pytest.raises(ValueError):
        quick_schema.quick_check(quick_schema.inline_references(schema("SetChargingProfile")))


@settings(max_examples=400, deadline=None)
@given(name=st.sampled_from(sorted(SAMPLES)), data=st.data(), value=json_values, drop=st.booleans())
@example(name="MeterValues", data=None, value="Sample.Nonsense", drop=False)
def test_quick_16_validator_decides_as_the_librarys(name, data, value, drop):
    payload = SAMPLES[name]
    quick = quick_schema.QuickValidator(schema(name))
    library = Draft4Validator(schema(name))
    assert quick.quick(payload) and verdict(library, payload) is None
    if data is None:   # the example: an enum broken deep inside a sampled value
        mutated = replaced(payload, ("meterValue", 0, "sampledValue", 0, "context"), value, False)
    else:
        mutated = replaced(payload, data.draw(st.sampled_from(paths(payload))), value, drop)
    expected = verdict(library, mutated)
    if quick.quick(mutated):
        assert expected is None, "the quick check said yes to a payload the schema refuses"
    assert verdict(quick, mutated) == expected


# Keys as chargers and the library's own tricky cases write them.
keys = st.sampled_from(["connectorId", "meterValue", "sampledValue", "idTagInfo", "SoC", "soc", "socLimitReached",
                        "ocppCSMSURL", "responderURL", "V2XChargingCtrlr", "evseId", "ABCDef", "a", "", "x_y",
                        "HTTPServer", "already_snake", "csmsUrl", "customData", "vendorId"]) | st.text(max_size=12)
payloads = st.recursive(st.none() | st.integers() | st.text(max_size=6),
                        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=4),
                        max_leaves=12)


@settings(max_examples=500, deadline=None)
@given(payloads)
def test_key_conversions_are_the_librarys(data):
    assert key_case.camel_to_snake_case(data) == camel_to_snake_case(data)
    assert key_case.snake_to_camel_case(data) == snake_to_camel_case(data)
    # Twice: the second time from the kept keys.
    assert key_case.camel_to_snake_case(data) == camel_to_snake_case(data)
    assert key_case.snake_to_camel_case(data) == snake_to_camel_case(data)


def test_the_kept_keys_are_bounded(monkeypatch):
    monkeypatch.setattr(key_case, "_snake", {})
    monkeypatch.setattr(key_case, "MAX_KEYS", 10)
    converted = key_case.camel_to_snake_case({f"customKey{i}": i for i in range(50)})
    assert converted == {f"custom_key{i}": i for i in range(50)}
    assert len(key_case._snake) == 10


strings = st.text(max_size=6) | st.sampled_from(["\ud800", "\udfff", "a\udc00b", "\ud83d\ude00", "\\ud800", "é", "😀"])
documents = st.recursive(st.none() | st.integers() | strings,
                         lambda inner: st.lists(inner, max_size=3) | st.dictionaries(strings, inner, max_size=3),
                         max_leaves=10)


def outcome(payload: Any, strings_clean: bool) -> Any:
    try:
        return boundary.check_call("DataTransfer", payload, NOW, strings_clean=strings_clean).payload
    except OCPPError as error:
        return type(error), error.description


@settings(max_examples=500, deadline=None)
@given(document=documents, ascii_only=st.booleans(), as_bytes=st.booleans())
@example(document={"data": "\ud800"}, ascii_only=True, as_bytes=False)
@example(document={"data": "\ud800"}, ascii_only=False, as_bytes=True)
@example(document={"\udc00": 1}, ascii_only=True, as_bytes=False)
def test_the_one_pass_surrogate_look_refuses_what_the_full_walk_refuses(document, ascii_only, as_bytes):
    """Frames as json writes them (escapes, or raw text as a client could send it), text or bytes: whenever
    surrogate_free says the frame is clean, the boundary's answer is the one its full walk gives."""
    text = json.dumps([2, "u1", "DataTransfer", {"vendorId": "v", "data": document}], ensure_ascii=ascii_only)
    frame: str | bytes = text.encode("utf-8", "surrogatepass") if as_bytes else text
    payload = json.loads(frame)[3]
    clean = boundary.surrogate_free(frame)
    assert outcome(payload, strings_clean=clean) == outcome(payload, strings_clean=False)


def test_a_lone_surrogate_escape_is_still_refused_with_the_field_named():
    frame = '[2,"u1","DataTransfer",{"vendorId":"v","data":"x\\ud800"}]'
    assert not boundary.surrogate_free(frame)
    kind, description = outcome(json.loads(frame)[3], strings_clean=boundary.surrogate_free(frame))
    assert kind.__name__ == "FormationViolationError" and "data" in description
