"""Load management in the local API: the allocation now ("why is this car
limited") and the per-phase series against the limits (for the web page)."""

from __future__ import annotations

from aiohttp import web

from edge.web.site import SiteView
from edge.web.common import error_response, int_query, json_response
from edge.clock import parse_iso
from edge.journal import Store


class DlmRoutes:
    def __init__(self, site: SiteView):
        self.site = site

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.get("/api/v1/dlm", self.status),
            web.get("/api/v1/dlm/series", self.series),
        ]

    def _manager(self):
        return self.site.load_manager

    async def status(self, request: web.Request) -> web.Response:
        manager = self._manager()
        if manager is None:
            return json_response({"enabled": False, "circuits": [], "connectors": [], "meters": [],
                                      "note": "no [[circuits]] in the site config: load management is off"})
        body = {"enabled": True, **manager.status()}
        charger = request.query.get("charger")
        if charger is not None:
            body["connectors"] = [c for c in body["connectors"] if c["charger_id"] == charger]
            if not body["connectors"]:
                return error_response(404, f"charger {charger!r} is not under load management")
        return json_response(body)

    async def series(self, request: web.Request) -> web.Response:
        bounds = {}
        for name in ("since", "until"):
            raw = request.query.get(name)
            if raw is not None:
                moment = parse_iso(raw)
                if moment is None:
                    return error_response(400, f"query parameter {name}={raw!r} is not an ISO 8601 time")
                bounds[name] = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        rows = await self.site.journal.read(Store.load_series, circuit=request.query.get("circuit"),
                                                limit=int_query(request, "limit", 10_000, 100_000), **bounds)
        return json_response(rows)
