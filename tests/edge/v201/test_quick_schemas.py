"""The quick 2.0.1 schema checks (edge/ocpp/v201/translate.py, for speed) decide exactly as the library's
own validators: the same payloads pass, the same fail, with the same first error (the library turns that
error's keyword into the CALLERROR a station gets). The quick check may only ever say yes to a payload the
schema accepts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import ocpp.messages
import pytest
from hypothesis import example, given, settings, strategies as st
from jsonschema import Draft4Validator

from edge.ocpp.v201 import translate
from simulator.light_station import LightStation
from tests.json_paths import paths, replaced, verdict

SCHEMAS = Path(ocpp.messages.__file__).parent / "v201" / "schemas"
NOW = "2026-12-07T10:00:00Z"


def library_validator(name: str) -> Draft4Validator:
    """What the library builds (ocpp.messages.get_validator) when its cache has none."""
    return Draft4Validator(json.loads((SCHEMAS / f"{name}.json").read_text(encoding="utf-8-sig")))


def schema(name: str) -> dict:
    return json.loads((SCHEMAS / f"{name}.json").read_text(encoding="utf-8-sig"))


def sample_event() -> dict:
    station = LightStation("S1", "ws://unused")
    station.transaction_id = "tx-1"
    return _wire(station.meter_values())


def _wire(payload: Any) -> dict:
    from ocpp.charge_point import remove_nones, serialize_as_dict, snake_to_camel_case
    return remove_nones(snake_to_camel_case(serialize_as_dict(payload)))


SAMPLES = {
    "TransactionEventRequest": sample_event(),
    "StatusNotificationRequest": {"timestamp": NOW, "connectorStatus": "Occupied", "evseId": 1, "connectorId": 1},
    "AuthorizeRequest": {"idToken": {"idToken": "04A2B3C4", "type": "ISO14443"}},
    "MeterValuesRequest": {"evseId": 0, "meterValue": sample_event()["meterValue"]},
    "HeartbeatRequest": {},
    "TransactionEventResponse": {"idTokenInfo": {"status": "Accepted", "groupIdToken": {"idToken": "G",
                                                                                       "type": "Central"}}},
    "AuthorizeResponse": {"idTokenInfo": {"status": "Blocked", "cacheExpiryDateTime": NOW}},
}

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
                           | st.sampled_from(["Accepted", "Updated", "Energy.Active.Import.Register", "L1", NOW]),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                               st.sampled_from(["value", "idToken", "type", "unit", "customData", "x"]), inner,
                               max_size=3), max_leaves=6)


def test_the_frequent_messages_are_checked_quickly_in_the_librarys_cache():
    for action in translate.FREQUENT:
        for kind in ("Request", "Response"):
            validator = ocpp.messages.get_validator(2 if kind == "Request" else 3, action, "2.0.1")
            assert isinstance(validator, translate.QuickValidator), (action, kind)


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(sorted(SAMPLES)), data=st.data(), value=json_values, drop=st.booleans())
@example(name="TransactionEventRequest", data=None, value="Sample.Nonsense", drop=False)
def test_quick_validator_decides_as_the_librarys(name, data, value, drop):
    payload = SAMPLES[name]
    quick = translate.QuickValidator(schema(name))
    assert quick.quick(payload) and verdict(library_validator(name), payload) is None
    if data is None:   # the example: an enum broken deep inside a sampled value
        mutated = replaced(payload, ("meterValue", 0, "sampledValue", 0, "context"), value, False)
    else:
        mutated = replaced(payload, data.draw(st.sampled_from(paths(payload))), value, drop)
    expected = verdict(library_validator(name), mutated)
    if quick.quick(mutated):
        assert expected is None, "the quick check said yes to a payload the schema refuses"
    assert verdict(quick, mutated) == expected


def test_every_201_schema_gets_a_quick_check():
    """Every 2.0.1 schema inlines and uses only keywords the quick check knows, so any could be installed."""
    for path in sorted(SCHEMAS.glob("*.json")):
        inlined = translate.inline_references(json.loads(path.read_text(encoding="utf-8-sig")))
        assert "$ref" not in json.dumps(inlined), path.name
        translate.quick_check(inlined)


def test_a_schema_with_a_keyword_the_quick_check_does_not_know_is_left_to_jsonschema():
    with pytest.raises(ValueError):
        translate.quick_check({"type": "string", "pattern": "^[0-9]+$"})
    with pytest.raises(ValueError):
        translate.quick_check({"type": "object", "properties": {"a": {"oneOf": [{"type": "string"}]}}})
