"""The downlink documents, pure: the auth diff, tariffs, limits and commands, each
problem named where it is."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from edge.auth.model import UserGroup
from edge.dlm.model import Circuit, Topology
from edge.uplink.documents import (DocumentError, apply_auth_diff, caps_from, command_from, expired,
                                   tariffs_from)

BASE = {"default_policy": "all-known",
        "user_groups": [{"id": "residents"}, {"id": "guests"}],
        "charge_groups": [{"id": "garage", "policy": "private", "evses": ["CP-1"]}],
        "tokens": [{"uid": "04:A2:B3:C4", "user_group": "residents"}, {"id_tag": "app-7", "user_group": "guests"}]}


def problems(fn, *args) -> str:
    with pytest.raises(DocumentError) as info:
        fn(*args)
    return str(info.value)


def test_diff_upserts_removes_and_is_idempotent():
    diff = {"base_version": 4,
            "upsert": {"tokens": [{"uid": "C4B3A204", "user_group": "guests", "user": "same card, reversed"},
                                  {"id_tag": "NEW-1", "user_group": "residents"}],
                       "user_groups": [{"id": "guests", "prioritised": True}]},
            "remove": {"tokens": ["APP-7"], "charge_groups": ["garage", "not-there"]},
            "default_policy": "closed"}
    result, base = apply_auth_diff(BASE, diff)
    assert base == 4
    assert result["tokens"] == diff["upsert"]["tokens"]
    assert result["user_groups"] == [{"id": "residents"}, {"id": "guests", "prioritised": True}]
    assert result["charge_groups"] == [] and result["default_policy"] == "closed"
    assert apply_auth_diff(result, diff)[0] == result            # applied twice: the same
    assert BASE["tokens"][1]["id_tag"] == "app-7"                # the input is not changed


def test_diff_problems_are_named():
    text = problems(apply_auth_diff, BASE, {"base_version": 0, "upsert": {"tokens": [{"user_group": 5}]},
                                            "extra": 1})
    assert "base_version: Input should be greater than or equal to 1" in text and "extra: Extra inputs" in text
    text = problems(apply_auth_diff, BASE, {"base_version": 1, "upsert": {"tokens": [{"uid": "01"},
                                                                                     {"id_tag": "x",
                                                                                      "user_group": "g",
                                                                                      "colour": "red"}]}})
    assert "upsert.tokens[0].user_group: Field required" in text and "upsert.tokens[1].colour" in text


def test_tariffs_are_checked_against_the_site():
    groups = [UserGroup("residents", tariff="cheap")]
    document = {"tariffs": [{"id": "base", "type": "flat", "price_per_session": "2.50"},
                            {"id": "cheap", "type": "free", "user_groups": ["residents"]}],
                "tariff_groups": [{"id": "all", "base": "base", "tariffs": ["cheap"], "evses": ["CP-1"]}]}
    book = tariffs_from(document, groups, ["CP-1"])
    assert book.group_for("CP-1", 1).ordered[0].id == "cheap"
    text = problems(tariffs_from, {"tariffs": [{"id": "base", "type": "flat", "price_per_kwh": 1}]}, groups, [])
    assert 'tariffs[0] (id "base"): Value error' in text or "price_per_kwh do(es) not apply" in text
    text = problems(tariffs_from, {"tariffs": [document["tariffs"][0]]}, groups, ["CP-1"])
    assert 'user_groups "residents": tariff "cheap" does not exist' in text
    assert "tariffs: Field required" in problems(tariffs_from, {}, groups, [])


def test_limits_cap_the_root_by_default_and_name_bad_items():
    topology = Topology((Circuit("grid", 63.0), Circuit("garage", 32.0, parent="grid")), ())
    caps = caps_from({"caps": [{"max_current": 20, "until": "2026-06-01T18:00:00+02:00", "reason": "DR"},
                               {"circuit": "garage", "max_current": 10}]}, topology)
    assert caps["grid"].max_current == 20 and caps["grid"].until == datetime(2026, 6, 1, 16, tzinfo=timezone.utc)
    assert caps["garage"].until is None
    assert caps_from({"caps": []}, topology) == {}
    assert "caps.1.max_current: Input should be greater than or equal to 0" in problems(
        caps_from, {"caps": [{"max_current": 5}, {"max_current": -1}]}, topology)
    text = problems(caps_from, {"caps": [{"circuit": "x", "max_current": 5}, {"max_current": 5},
                                         {"circuit": "grid", "max_current": 6}]}, topology)
    assert "caps[0].circuit: no circuit 'x'" in text and "caps[2].circuit: circuit 'grid' is capped twice" in text
    assert "load management is off" in problems(caps_from, {"caps": []}, None)
    text = problems(caps_from, {"caps": [{"max_current": 5, "until": "tomorrow"}]}, topology)
    assert "caps[0].until: 'tomorrow' is not an ISO 8601 time" in text


def test_commands_are_limited_to_what_the_cloud_may_do():
    known = {"CP-1"}.__contains__
    command = command_from({"charger_id": "CP-1", "action": "remote-start-transaction",
                            "params": {"idTag": "APP-7", "connectorId": 1}}, known)
    assert command.action == "RemoteStartTransaction" and command.params["idTag"] == "APP-7"
    assert "not allowed from the cloud" in problems(command_from, {"charger_id": "CP-1", "action": "ClearCache"},
                                                    known)
    assert "unknown parameter(s) bogus" in problems(
        command_from, {"charger_id": "CP-1", "action": "Reset", "params": {"type": "Soft", "bogus": 1}}, known)
    assert "no charger 'CP-2'" in problems(command_from, {"charger_id": "CP-2", "action": "Reset",
                                                          "params": {"type": "Soft"}}, known)
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert expired(None, now) is None and expired("2026-01-02T00:00:00Z", now) is None
    assert expired("2025-12-31T23:59:59Z", now).startswith("expired at")
    assert "not an ISO 8601 time" in expired("soon", now)
