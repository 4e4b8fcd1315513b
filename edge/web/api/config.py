"""The config the edge runs on, in the local API: the site config, or the last
good one because the site config is invalid (and why). `edgectl config status`
shows it; monitoring can poll it (`ok` is false while on the last good config)."""

from __future__ import annotations

from aiohttp import web

from edge.web.site import SiteView
from edge.web.common import json_response


class ConfigRoutes:
    def __init__(self, site: SiteView):
        self.site = site

    def routes(self) -> list[web.AbstractRouteDef]:
        return [web.get("/api/v1/config", self.status)]

    async def status(self, request: web.Request) -> web.Response:
        return json_response(self.site.config_status())
