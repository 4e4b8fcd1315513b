"""The OpenAPI document describes what the API answers: records, sessions, telemetry and alerts
have their fields, not "object", and real answers validate against them."""

from __future__ import annotations

import dataclasses

from jsonschema import Draft202012Validator

from edge.cdr.record import Cdr
from tests.cloud.fakes import cdr_body, message

TELEMETRY = {"interval_s": 60, "samples": 60, "circuits": [{
    "id": "grid", "failsafe": False, "limit_a": [63, 63, 63], "current_max_a": [40.2, 38.0, 20.1],
    "current_mean_a": [30.0, 31.5, 18.2], "allocated_a": [16.0, 16.0, 0.0], "power_mean_w": [6900, 7200, 4100],
    "import_wh": 123456.7, "export_wh": 0.0}]}


def validator(document: dict, name: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": document["components"]})


async def test_records_sessions_telemetry_and_alerts_are_described_and_answers_match(cloud, make_site):
    status, document = await cloud.get("/api/openapi.json", None)
    schemas = document["components"]["schemas"]
    for name in ("Cdr", "Session", "Alert"):
        assert len(schemas[name]["properties"]) >= 5, name
    assert "current_max_a" in schemas["TelemetryPoint"]["properties"]["values"]["properties"]["circuits"]["items"][
        "properties"]
    # The record's schema is the edge's own record: every field it makes is described.
    assert {f.name for f in dataclasses.fields(Cdr)} <= set(schemas["Cdr"]["properties"])
    responses = {path: ops["get"]["responses"]["200"]["content"]["application/json"]["schema"].get("$ref", "")
                 for path, ops in document["paths"].items() if "get" in ops}
    assert responses["/api/v1/sites/{site}/sessions"].endswith("/SessionPage")
    assert responses["/api/v1/sites/{site}/cdrs"].endswith("/CdrPage")
    assert responses["/api/v1/sites/{site}/telemetry"].endswith("/TelemetryPage")
    assert responses["/api/v1/sites/{site}/alerts"].endswith("/AlertPage")
    assert responses["/api/v1/sites/{site}/pushes"].endswith("/PushPage")

    token = await cloud.add_operator("acme", "site-a")
    site = make_site()
    await site.up("cdr", [message(1, "cdr", cdr_body(1))])
    await site.up("session", [message(1, "session.started", {
        "transaction_id": 1, "charger_id": "CP-1", "connector_id": 1, "id_tag": "TAG", "meter_start": 1000,
        "start_time": "2026-03-01T01:00:00Z"})])
    await site.up("telemetry", [message(1, "telemetry", TELEMETRY, at="2026-03-01T10:01:00Z")])
    await site.up("alert", [message(1, "alert.over_fuse", {
        "charger_id": None, "circuit": "grid", "phase": "L2", "active": True, "limit": 63, "since": "x",
        "ended": None, "lasted_s": 2.5, "peak": 66.0, "excess_as": 7.5, "window_s": 2.0, "done": "cut"})])
    await cloud.wait_handled(4)
    for path, schema in (("cdrs", "CdrPage"), ("sessions", "SessionPage"), ("telemetry", "TelemetryPage"),
                         ("alerts", "AlertPage")):
        status, page = await cloud.get(f"/api/v1/sites/site-a/{path}", token)
        assert status == 200 and len(page["items"]) == 1, path
        validator(document, schema).validate(page)
        # Every field an answer carries is described (the schemas allow more, so validation alone
        # would not notice a new field left out).
        item_schema = schemas[schema]["properties"]["items"]["items"]["$ref"].rsplit("/", 1)[1]
        assert set(page["items"][0]) <= set(schemas[item_schema]["properties"]), (path, set(page["items"][0]))
    status, one = await cloud.get("/api/v1/sites/site-a/cdrs/cdr-0001", token)
    validator(document, "Cdr").validate(one)
    # And the schemas are not vacuous: a session with a wrong type is caught.
    assert not validator(document, "Session").is_valid({"session_id": "1", "energy_wh": "a lot"})
