"""A session's needs in the local API: when its car leaves and how much energy it wants,
for load management's `scheduled` strategy (early leavers first; docs/load-management.md)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from aiohttp import web

from edge.dlm.needs import NeedError, departure_of, energy_of
from edge.web.common import error_response, json_object, json_response
from edge.web.site import SiteView


class NeedsRoutes:
    def __init__(self, site: SiteView):
        self.site = site

    def routes(self) -> list[web.AbstractRouteDef]:
        return [web.post("/api/v1/sessions/{id}/needs", self.set_needs)]

    async def set_needs(self, request: web.Request) -> web.Response:
        raw = request.match_info["id"]
        try:
            transaction_id = int(raw)
        except ValueError:
            return error_response(400, f"session id {raw!r} is not an integer")
        body = await json_object(request)
        unknown = sorted(set(body) - {"departure", "energy_kwh"})
        if unknown:
            return error_response(400, f"unknown field(s) {', '.join(unknown)}: give departure and energy_kwh")
        for name in ("departure", "energy_kwh"):
            if name not in body:
                return error_response(400, f"{name} is missing", field=name)
        now = self.site.clock.now()
        try:
            departure = departure_of(body["departure"], now, ZoneInfo(self.site.config.site.timezone))
            energy = energy_of(body["energy_kwh"])
        except NeedError as exc:
            return error_response(400, str(exc), field=exc.field, value=exc.value)
        manager = self.site.load_manager
        if manager is None or not manager.set_needs(transaction_id, departure, energy * 1000.0):
            why = "load management is off" if manager is None else "no such session is running"
            return error_response(404, f"session {transaction_id}: {why}")
        return json_response({"transaction_id": transaction_id, "departure": departure.isoformat(timespec="seconds"),
                              "energy_kwh": energy, "strategy": manager.settings.strategy})
