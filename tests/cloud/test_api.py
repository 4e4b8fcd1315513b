"""The REST API: per-operator tokens and isolation, the views, pagination, CSV, OpenAPI."""

from __future__ import annotations

import csv
import io

from cloud.api.routes import ROUTES
from tests.cloud.fakes import cdr_body, message


async def test_each_operator_sees_only_its_own_sites(cloud, make_site):
    token_a = await cloud.add_operator("acme", "site-a")
    token_b = await cloud.add_operator("bolt", "site-b")
    for name in ("site-a", "site-b"):
        site = make_site(name)
        await site.birth()
        await site.up("cdr", [message(1, "cdr", cdr_body(1, site=name))])
    await cloud.wait_handled(4)

    status, sites = await cloud.get("/api/v1/sites", token_a)
    assert status == 200 and [s["id"] for s in sites["items"]] == ["site-a"]
    for path in ("/api/v1/sites/site-b", "/api/v1/sites/site-b/chargers", "/api/v1/sites/site-b/sessions",
                 "/api/v1/sites/site-b/cdrs", "/api/v1/sites/site-b/cdrs/cdr-0001", "/api/v1/sites/site-b/telemetry",
                 "/api/v1/sites/site-b/alerts", "/api/v1/sites/site-b/pushes", "/api/v1/sites/site-b/config/auth"):
        status, body = await cloud.get(path, token_a)
        assert status == 404, path
        assert body == {"error": "no site 'site-b'"}        # the same as for a site that does not exist
    assert await cloud.get("/api/v1/sites/site-nowhere", token_a) == (404, {"error": "no site 'site-nowhere'"})
    status, _ = await cloud.post("/api/v1/sites/site-b/config/tariffs", token_a, {"document": {}})
    assert status == 404
    status, _ = await cloud.post("/api/v1/sites/site-b/commands", token_a, {"document": {"action": "Reset"}})
    assert status == 404
    assert (await cloud.get("/api/v1/sites/site-b/cdrs/cdr-0001", token_b))[0] == 200

    for token in (None, "sct_not-a-token", token_a + "x"):
        status, body = await cloud.get("/api/v1/sites", token)
        assert status == 401 and "bearer token" in body["error"]
    stored = await cloud.db.read(lambda c: c.all("SELECT token_hash FROM api_tokens"))
    assert all(token_a not in r["token_hash"] and len(r["token_hash"]) == 64 for r in stored)


async def test_cdrs_paginate_filter_and_export_as_csv(cloud, make_site):
    token = await cloud.add_operator("acme", "site-a")
    site = make_site()
    records = [cdr_body(n, charger="CP-1" if n % 2 else "CP-2", status="Error" if n == 7 else "Successful")
               for n in range(1, 26)]
    await site.up("cdr", [message(n, "cdr", body) for n, body in enumerate(records, start=1)])
    await cloud.wait_handled(1)

    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": "10"} | ({"cursor": cursor} if cursor else {})
        status, page = await cloud.get("/api/v1/sites/site-a/cdrs", token, **params)
        assert status == 200
        seen += [r["id"] for r in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and seen == [f"cdr-{n:04d}" for n in range(25, 0, -1)]      # newest first, each once

    status, page = await cloud.get("/api/v1/sites/site-a/cdrs", token, charger="CP-2", **{
        "from": "2026-03-01T00:05:00Z", "to": "2026-03-01T00:15:00Z"})
    assert [r["id"] for r in page["items"]] == ["cdr-0014", "cdr-0012", "cdr-0010", "cdr-0008", "cdr-0006"]
    status, page = await cloud.get("/api/v1/sites/site-a/cdrs", token, status="Error")
    assert [r["id"] for r in page["items"]] == ["cdr-0007"]
    assert page["items"][0]["energy_kwh"] == "1.007" and page["items"][0]["received_at"]

    async with cloud.http.get(f"{cloud.base}/api/v1/sites/site-a/cdrs", params={"format": "csv", "charger": "CP-1"},
                              headers={"Authorization": f"Bearer {token}"}) as response:
        assert response.status == 200 and response.content_type == "text/csv"
        rows = list(csv.DictReader(io.StringIO(await response.text())))
    assert [r["id"] for r in rows] == [f"cdr-{n:04d}" for n in range(1, 26, 2)]      # oldest first, all of them
    assert rows[0]["start"] == "2026-03-01T01:01:00+01:00"                          # the site's time zone
    assert rows[0]["price_gross"] == "1.19" and rows[0]["charger_id"] == "CP-1"

    assert (await cloud.get("/api/v1/sites/site-a/cdrs", token, cursor="garbage"))[0] == 400
    assert (await cloud.get("/api/v1/sites/site-a/cdrs", token, limit="0"))[0] == 400
    status, body = await cloud.get("/api/v1/sites/site-a/cdrs", token, **{"from": "yesterday"})
    assert status == 400 and "from='yesterday'" in body["error"]
    assert (await cloud.get("/api/v1/sites/site-a/cdrs", token, status="Great"))[0] == 400
    assert (await cloud.get("/api/v1/sites/site-a/cdrs/cdr-9999", token))[0] == 404


async def test_sessions_chargers_telemetry_and_alerts(cloud, make_site):
    token = await cloud.add_operator("acme", "site-a")
    site = make_site()
    started = [message(n, "session.started", {
        "transaction_id": n, "charger_id": "CP-1", "connector_id": 1, "id_tag": "TAG", "meter_start": 1000,
        "start_time": f"2026-03-01T0{n}:00:00Z"}) for n in range(1, 4)]
    stopped = message(4, "session.stopped", {
        "transaction_id": 1, "charger_id": "CP-1", "connector_id": 1, "meter_start": 1000, "meter_stop": 8500,
        "start_time": "2026-03-01T01:00:00Z", "stop_time": "2026-03-01T02:00:00Z", "stop_reason": "EVDisconnected"})
    await site.up("session", started + [stopped])
    await site.up("status", [
        message(1, "charger.booted", {"charger_id": "CP-1", "vendor": "ACME", "model": "W1",
                                      "firmware_version": "4.2"}),
        message(2, "charger.presence", {"charger_id": "CP-1", "status": "Available", "why": "frame"}),
        message(3, "connector.status", {"charger_id": "CP-1", "connector_id": 1, "status": "Charging",
                                        "error_code": "NoError"}),
        message(4, "connector.status", {"charger_id": "CP-1", "connector_id": 2, "status": "Faulted",
                                        "error_code": "GroundFailure"})])
    await site.up("telemetry", [message(n, "telemetry", {"interval_s": 60, "circuits": [{"id": "main"}]},
                                        at=f"2026-03-01T10:0{n}:00Z") for n in range(1, 6)])
    await site.up("alert", [message(1, "alert.failsafe", {"circuit": "main"}),
                            message(2, "alert.fault", {"charger_id": "CP-1", "error_code": "GroundFailure"})])
    await cloud.wait_handled(4)

    status, page = await cloud.get("/api/v1/sites/site-a/sessions", token)
    assert [s["session_id"] for s in page["items"]] == ["3", "2", "1"]
    done = page["items"][2]
    assert done["status"] == "stopped" and done["energy_wh"] == 7500 and done["stop_reason"] == "EVDisconnected"
    status, page = await cloud.get("/api/v1/sites/site-a/sessions", token, status="active", limit="1")
    assert [s["session_id"] for s in page["items"]] == ["3"] and page["next_cursor"]
    status, page = await cloud.get("/api/v1/sites/site-a/sessions", token, status="active",
                                   cursor=page["next_cursor"])
    assert [s["session_id"] for s in page["items"]] == ["2"] and page["next_cursor"] is None   # exactly the last

    status, chargers = await cloud.get("/api/v1/sites/site-a/chargers", token)
    [cp] = chargers["items"]
    assert cp["id"] == "CP-1" and cp["vendor"] == "ACME" and cp["firmware_version"] == "4.2"
    assert cp["connection_status"] == "Available" and cp["faulted"] is True
    assert [(c["connector_id"], c["status"]) for c in cp["connectors"]] == [(1, "Charging"), (2, "Faulted")]

    status, series = await cloud.get("/api/v1/sites/site-a/telemetry", token, limit="3",
                                     **{"from": "2026-03-01T10:01:00Z"})
    assert [p["at"] for p in series["items"]] == ["2026-03-01T10:01:00.000Z", "2026-03-01T10:02:00.000Z",
                                                  "2026-03-01T10:03:00.000Z"]
    assert series["items"][0]["values"]["circuits"] == [{"id": "main"}]
    status, series = await cloud.get("/api/v1/sites/site-a/telemetry", token, cursor=series["next_cursor"])
    assert [p["seq"] for p in series["items"]] == [4, 5]

    status, alerts = await cloud.get("/api/v1/sites/site-a/alerts", token, charger="CP-1")
    assert [a["type"] for a in alerts["items"]] == ["alert.fault"]
    status, detail = await cloud.get("/api/v1/sites/site-a", token)
    assert detail["chargers"] == 1 and detail["active_sessions"] == 2
    assert set(detail["streams"]) == {"session", "status", "telemetry", "alert"}


async def test_openapi_lists_every_route_and_health_needs_no_token(cloud):
    status, document = await cloud.get("/api/openapi.json", None)
    assert status == 200 and document["openapi"].startswith("3.")
    served = {(r.method, r.resource.canonical) for r in cloud.service.app.router.routes() if r.method != "HEAD"}
    listed = {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}
    assert served == listed and len(served) == len(ROUTES)
    for path, ops in document["paths"].items():
        for op in ops.values():
            names = {p["name"] for p in op["parameters"] if p["in"] == "path"}
            assert names == set(part[1:-1] for part in path.split("/") if part.startswith("{")), path

    status, health = await cloud.get("/api/v1/health", None)
    assert status == 200 and health == {"status": "ok", "mqtt_connected": True, "database_reachable": True,
                                        "instance": "cloud-1", "ingest_waiting": 0,
                                        "ingest_workers": health["ingest_workers"], "brokers": {"main": {
                                            "host": "127.0.0.1", "port": cloud.service.settings.mqtt.port,
                                            "connected": True, "subscribed": True}}}
    assert health["ingest_workers"] == cloud.db.writers
