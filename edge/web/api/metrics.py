"""GET /metrics (Prometheus text format) and GET /healthz (liveness, no token).

/metrics needs the API's bearer token like every route, unless [api]
metrics_without_token = true: then a scraper on the network reads it without
one (it shows currents, charger ids and counts, no tokens or card ids; keep
the port behind a firewall). docs/metrics.md lists the series.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from edge.metrics import render
from edge.web.common import json_response, public
from edge.web.site import SiteView


class MetricsRoutes:
    def __init__(self, site: SiteView):
        self.site = site

    def routes(self) -> list[web.AbstractRouteDef]:
        async def metrics(request: web.Request) -> web.Response:
            return await self.metrics(request)

        async def healthz(request: web.Request) -> web.Response:
            return await self.healthz(request)
        # Marked on plain functions: a bound method takes no attributes.
        if self.site.config.api.metrics_without_token:
            public(metrics)
        return [web.get("/metrics", metrics), web.get("/healthz", public(healthz))]

    async def metrics(self, request: web.Request) -> web.Response:
        body = await render(self.site, self.site.metrics)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(self, request: web.Request) -> web.Response:
        """200 while the journal commits (what systemd's watchdog asks too), else 503."""
        healthy = self.site.healthy()
        return json_response({"healthy": healthy}, status=200 if healthy else 503)
