"""Central system commands through the one command interface and the local API;
each lands in the actions log with who, what, why and the outcome."""

from __future__ import annotations

import pytest
from ocpp.v16 import call

from edge.journal import Store
from edge.ocpp.commands import CommandError, build_payload, resolve_action
from tests.edge.conftest import api_call, charger


async def test_command_round_trip_and_actions_log(edge):
    async with charger(edge) as cp:
        result = await api_call(edge, "POST", "/chargers/CP-1/commands/Reset",
                                body={"params": {"type": "Soft"}, "reason": "stuck display"})
        assert (result["outcome"], result["response"]) == ("ok", {"status": "Accepted"})
        assert cp.received[-1] == ("Reset", {"type": "Soft"})

        config = await api_call(edge, "POST", "/chargers/CP-1/commands/get-configuration",
                                body={"params": {"key": ["HeartbeatInterval"]}, "reason": "audit"})
        assert config["response"]["configurationKey"][0]["key"] == "HeartbeatInterval"

        refused = await api_call(edge, "POST", "/chargers/CP-1/commands/ChangeConfiguration",
                                 body={"params": {"key": "ReadOnlyKey", "value": "1"}, "reason": "try"})
        assert refused["outcome"] == "rejected"

        started = await api_call(edge, "POST", "/chargers/CP-1/commands/RemoteStartTransaction",
                                 body={"params": {"idTag": "TAG-OK", "connectorId": 2}, "reason": "app"})
        assert started["outcome"] == "ok"
        assert cp.received[-1] == ("RemoteStartTransaction", {"id_tag": "TAG-OK", "connector_id": 2})

    log = await edge.journal.read(Store.log, "actions", "CP-1")
    assert [(a["action"], a["actor"], a["reason"], a["outcome"]) for a in reversed(log)] == [
        ("Reset", "tester", "stuck display", "ok"),
        ("GetConfiguration", "tester", "audit", "ok"),
        ("ChangeConfiguration", "tester", "try", "rejected"),
        ("RemoteStartTransaction", "tester", "app", "ok"),
    ]


async def test_command_failures_are_clear_and_logged(make_edge):
    async with make_edge(response_timeout=1) as edge:      # the unanswered command times out in 1 s, not 5
        missing = await api_call(edge, "POST", "/chargers/CP-2/commands/Reset",
                                 body={"params": {"type": "Soft"}, "reason": "x"}, expect=409)
        assert missing["outcome"] == "not-connected"
        async with charger(edge):
            bad = await api_call(edge, "POST", "/chargers/CP-1/commands/Reset",
                                 body={"params": {"kind": "Soft"}, "reason": "x"}, expect=400)
            assert "unknown parameter(s) kind" in bad["response"] and "expected type" in bad["response"]
            wrong_value = await api_call(edge, "POST", "/chargers/CP-1/commands/Reset",
                                         body={"params": {"type": "Gentle"}, "reason": "x"}, expect=502)
            assert wrong_value["outcome"] == "error" and "Gentle" in wrong_value["response"]
            not_handled = await api_call(edge, "POST", "/chargers/CP-1/commands/ClearCache",
                                         body={"reason": "x"}, expect=502)
            assert "NotImplemented" in not_handled["response"] or "NotSupported" in not_handled["response"]
            timeout = await api_call(edge, "POST", "/chargers/CP-1/commands/UnlockConnector",
                                     body={"params": {"connectorId": 1}, "reason": "x"}, expect=504)
            assert timeout["outcome"] == "timeout"
        unknown = await api_call(edge, "POST", "/chargers/CP-1/commands/SelfDestruct", body={"reason": "x"}, expect=404)
        assert "unknown action" in unknown["error"]
        no_reason = await api_call(edge, "POST", "/chargers/CP-1/commands/Reset", body={"params": {"type": "Hard"}},
                                   expect=400)
        assert "reason is required" in no_reason["error"]
        outcomes = [a["outcome"] for a in await edge.journal.read(Store.log, "actions", None)]
        assert sorted(outcomes) == ["error", "error", "invalid", "not-connected", "timeout"]


async def test_api_needs_token(edge):
    answer = await api_call(edge, "GET", "/chargers", token="nope", expect=401)
    assert "bearer token" in answer["error"]


async def test_api_lists_chargers_sessions_and_logs(edge):
    async with charger(edge) as cp:
        await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Charging"))
        tx = (await cp.call(call.StartTransaction(connector_id=1, id_tag="TAG-OK", meter_start=5,
                                                  timestamp="2026-11-23T10:00:00Z"))).transaction_id
        chargers = {c["id"]: c for c in await api_call(edge, "GET", "/chargers")}
        assert chargers["CP-1"]["connected"] and chargers["CP-1"]["connection_status"] == "Available"
        assert chargers["CP-2"]["registration"] == "never-connected"
        assert chargers["CP-1"]["connectors"][0]["status"] == "Charging"
        frames = await api_call(edge, "GET", "/chargers/CP-1/logs/communication?limit=2")
        assert [f["direction"] for f in frames] == ["out", "in"] and "StartTransaction" in frames[1]["frame"]
    sessions = await api_call(edge, "GET", "/sessions?state=active")
    assert [s["id"] for s in sessions] == [tx]
    bad = await api_call(edge, "GET", "/sessions?limit=lots", expect=400)
    assert "limit" in bad["error"]


def test_build_payload_names_the_problem():
    assert resolve_action("remote-stop-transaction") == "RemoteStopTransaction"
    with pytest.raises(CommandError, match="missing required parameter"):
        build_payload("RemoteStopTransaction", {})
    assert build_payload("TriggerMessage", {"requestedMessage": "Heartbeat"}).requested_message == "Heartbeat"


def test_answers_become_plain_json_numbers():
    from decimal import Decimal

    from edge.ocpp.commands import plain_numbers
    answer = {"chargingSchedule": {"chargingSchedulePeriod": [{"startPeriod": 0, "limit": Decimal("16.5")},
                                                              {"startPeriod": 600, "limit": Decimal("20.0")}]},
              "status": "Accepted", "odd": Decimal("NaN")}
    plain = plain_numbers(answer)
    assert plain["chargingSchedule"]["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 16.5},
                                                                   {"startPeriod": 600, "limit": 20}]
    assert type(plain["chargingSchedule"]["chargingSchedulePeriod"][1]["limit"]) is int and plain["odd"] == "NaN"


def test_what_is_worth_asking_again():
    from edge.ocpp.commands import CommandResult, worth_retrying

    def result(outcome, response="x"):
        return CommandResult(1, "CP-1", "ChangeConfiguration", outcome, response)
    assert worth_retrying(result("timeout"))
    assert worth_retrying(result("error", "SecurityError: not accepted yet"))
    assert not worth_retrying(result("error", "NotImplemented: no such action"))
    assert not worth_retrying(result("rejected", {"status": "Rejected"}))
    assert not worth_retrying(result("not-connected"))
    assert not worth_retrying(result("ok", {"status": "Accepted"}))
