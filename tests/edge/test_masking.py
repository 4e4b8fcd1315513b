"""Charger keys are masked in every OCPP payload the edge keeps or shows."""

from __future__ import annotations

import json

from hypothesis import given, strategies as st

from edge.ocpp.masking import MASK, mask_frame, mask_payload

SECRET = "4b6579546861744d7573744e6f744c65616b3031"


def test_change_configuration_and_get_configuration_are_masked():
    call = json.dumps([2, "1", "ChangeConfiguration", {"key": "AuthorizationKey", "value": SECRET}])
    assert SECRET not in mask_frame(call) and MASK in mask_frame(call)
    answer = json.dumps([3, "2", {"configurationKey": [
        {"key": "HeartbeatInterval", "readonly": False, "value": "300"},
        {"key": "authorizationKEY", "readonly": False, "value": SECRET}]}])
    masked = json.loads(mask_frame(answer))
    assert masked[2]["configurationKey"][0]["value"] == "300"
    assert masked[2]["configurationKey"][1]["value"] == MASK


def test_frames_without_a_secret_are_left_alone():
    frame = '[2,"1","Heartbeat",{}]'
    assert mask_frame(frame) is frame
    escaped = '[2,"1","ChangeConfiguration",{"key":"\\u0041uthorizationKey","value":"%s"}]' % SECRET
    assert SECRET not in mask_frame(escaped)


def test_a_broken_frame_naming_the_key_is_withheld():
    broken = '[2,"1","ChangeConfiguration",{"key":"AuthorizationKey","value":"%s"' % SECRET
    assert SECRET not in mask_frame(broken) and "withheld" in mask_frame(broken)
    deep = "[" * 5000 + '"AuthorizationKey"' + "]" * 5000
    assert "withheld" in mask_frame(deep)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20)


@given(json_values, st.sampled_from(["AuthorizationKey", "authorizationkey", "AUTHORIZATIONKEY"]),
       st.integers(min_value=0, max_value=3))
def test_a_secret_anywhere_in_a_payload_never_survives(noise, key, depth):
    payload: object = {"key": key, "value": SECRET, "noise": noise}
    for _ in range(depth):
        payload = [noise, {"wrapped": payload}]
    assert SECRET not in json.dumps(mask_payload(payload))
    assert SECRET not in mask_frame(json.dumps([3, "x", payload]))
    assert mask_payload(noise) == noise   # what names no secret is unchanged
