"""The uplink in the local API: GET /api/v1/uplink (connected, backlog per stream,
last delivery, messages set aside, what the cloud sent down and what became of it),
and POST /api/v1/uplink/release (messages set aside go again)."""

from __future__ import annotations

from aiohttp import web

from contract.v1 import STREAMS
from edge.web.site import SiteView
from edge.web.common import json_object, json_response


class UplinkRoutes:
    def __init__(self, site: SiteView):
        self.site = site

    def routes(self) -> list[web.AbstractRouteDef]:
        return [web.get("/api/v1/uplink", self.status),
                web.post("/api/v1/uplink/release", self.release)]

    async def status(self, request: web.Request) -> web.Response:
        uplink = self.site.uplink
        if uplink is None:
            return json_response({"enabled": False, "note": "[uplink] is not enabled in the site config"})
        return json_response(await uplink.status())

    async def release(self, request: web.Request) -> web.Response:
        """Body (optional): {"stream": "cdr"}; without it every stream."""
        uplink = self.site.uplink
        if uplink is None:
            return json_response({"error": "[uplink] is not enabled in the site config"}, status=409)
        stream = (await json_object(request, empty_ok=True)).get("stream")
        if stream is not None and stream not in STREAMS:
            return json_response({"error": f"stream: {stream!r} is not one of {', '.join(STREAMS)}"}, status=400)
        return json_response({"released": await uplink.release(stream)})
