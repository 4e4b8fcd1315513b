"""Health and the OpenAPI document."""

from __future__ import annotations

from aiohttp import web

from cloud.api.common import DB, INGEST, LINK, OPENAPI


async def health(request: web.Request) -> web.Response:
    database = True
    try:
        await request.app[DB].read(lambda conn: conn.one("SELECT 1 AS ok"))
    except Exception:        # any failure to reach the database is what this endpoint reports
        database = False
    link, ingest = request.app[LINK], request.app[INGEST]
    mqtt = link.connected.is_set() and link.subscribed.is_set()
    # Per instance (a load balancer's health check takes an instance out on 503): which one, and its backlog.
    return web.json_response({"status": "ok" if database and mqtt else "degraded", "mqtt_connected": mqtt,
                              "database_reachable": database, "instance": link.settings.client_id,
                              "ingest_waiting": ingest.waiting, "ingest_workers": ingest.workers,
                              "brokers": link.status()},      # each broker: connected and subscribed
                             status=200 if database and mqtt else 503)


async def openapi(request: web.Request) -> web.Response:
    # Built from the route table, which names this handler: the app hands the builder over (make_app).
    return web.json_response(request.app[OPENAPI]())
