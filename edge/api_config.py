"""The config the edge runs on, in the local API: the site config, or the last
good one because the site config is invalid (and why). `edgectl config status`
shows it; monitoring can poll it (`ok` is false while on the last good config)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from edge.api_common import json_response

if TYPE_CHECKING:
    from edge.api import LocalApi


class ConfigRoutes:
    def __init__(self, api: "LocalApi"):
        self.api = api
        api.app.add_routes([web.get("/api/v1/config", self.status)])

    async def status(self, request: web.Request) -> web.Response:
        return json_response(self.api.edge.config_status())
