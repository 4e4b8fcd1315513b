"""Health and the OpenAPI document."""

from __future__ import annotations

from aiohttp import web

from cloud.api.common import DB, LINK


async def health(request: web.Request) -> web.Response:
    database = True
    try:
        await request.app[DB].read(lambda conn: conn.one("SELECT 1 AS ok"))
    except Exception:        # any failure to reach the database is what this endpoint reports
        database = False
    mqtt = request.app[LINK].connected.is_set()
    return web.json_response({"status": "ok" if database and mqtt else "degraded", "mqtt_connected": mqtt,
                              "database_reachable": database}, status=200 if database and mqtt else 503)


async def openapi(request: web.Request) -> web.Response:
    from cloud.api.openapi import document     # built from the route table, which imports this module
    return web.json_response(document())
