"""POST /api/v1/commission {"detect_rotation": false}: the commissioning report (docs/commissioning.md).

One run at a time: the rotation detection steps chargers, and two runs stepping
at once would read each other's cars on the meter.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from edge.commission.runner import Commissioning
from edge.web.common import error_response, json_object, json_response
from edge.web.site import SiteView


class CommissionRoutes:
    def __init__(self, site: SiteView):
        self.site = site
        self._lock = asyncio.Lock()

    def routes(self) -> list[web.AbstractRouteDef]:
        return [web.post("/api/v1/commission", self.commission)]

    async def commission(self, request: web.Request) -> web.Response:
        body = await json_object(request, empty_ok=True)
        detect = body.get("detect_rotation", False)
        if not isinstance(detect, bool):
            return error_response(400, "detect_rotation must be true or false")
        if self._lock.locked():
            return error_response(409, "a commissioning run is in progress")
        async with self._lock:
            report = await Commissioning(self.site).run(detect_rotation=detect)
        return json_response(report)
