"""The uplink in the local API: GET /api/v1/uplink (connected, backlog per stream,
last delivery, what the cloud sent down and what became of it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from edge.api import LocalApi


class UplinkRoutes:
    def __init__(self, api: "LocalApi"):
        self.api = api
        api.app.add_routes([web.get("/api/v1/uplink", self.status)])

    async def status(self, request: web.Request) -> web.Response:
        uplink = self.api.edge.uplink
        if uplink is None:
            return web.json_response({"enabled": False, "note": "[uplink] is not enabled in the site config"})
        return web.json_response(await uplink.status())
