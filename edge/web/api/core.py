"""The local API's core routes: health, chargers, sessions, logs and commands (what edgectl
uses most). Documented in docs/local-api.md."""

from __future__ import annotations

import logging
from typing import Any, Callable

from aiohttp import web

from edge.journal import Store
from edge.ocpp.commands import ACTIONS, CommandError, resolve_action
from edge.stations.model import Trigger
from edge.web.common import MAX_LIMIT, actor_of, error_response, int_query, json_object, json_response
from edge.web.site import SiteView

log = logging.getLogger(__name__)

LOGS = ("communication", "network", "hardware", "actions", "data_transfers", "authorizations")


class CoreRoutes:
    def __init__(self, site: SiteView):
        self.edge = site

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.get("/api/v1/health", self.health),
            web.get("/api/v1/chargers", self.chargers),
            web.get("/api/v1/chargers/{id}", self.charger),
            web.post("/api/v1/chargers/{id}/adopt", self.adopt),
            web.get("/api/v1/chargers/{id}/logs/{log}", self.charger_log),
            web.post("/api/v1/chargers/{id}/commands/{action}", self.command),
            web.get("/api/v1/sessions", self.sessions),
            web.get("/api/v1/sessions/{id}/samples", self.samples),
            web.get("/api/v1/unmatched-stops", self.unmatched_stops),
            web.get("/api/v1/logs/{log}", self.site_log),
            web.get("/api/v1/commands", self.command_list),
        ]

    async def _read(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await self.edge.journal.read(fn, *args, **kwargs)

    # -- handlers -------------------------------------------------------------

    async def health(self, request: web.Request) -> web.Response:
        return json_response({"site": self.edge.config.site.id, "healthy": self.edge.healthy(),
                                  "connected_chargers": len(self.edge.ocpp.sessions),
                                  "active_transactions": len(self.edge.sessions.active()),
                                  "failed_parts": self.edge.supervisor.report()})

    def _charger_view(self, row: dict[str, Any] | None, charger_id: str, connectors: list[dict]) -> dict[str, Any]:
        directory, presence = self.edge.directory, self.edge.presence
        configured = directory.configured(charger_id)
        row = dict(row or {"id": charger_id, "registration": "never-connected"})
        faults = [c for c in connectors if c["error_code"] != "NoError" or c["status"] == "Faulted"]
        row.update({
            "configured": configured is not None,
            "known": directory.is_known(charger_id),
            "connected": charger_id in self.edge.ocpp.sessions,
            "connection_status": presence.status(charger_id),
            "last_frame_at": presence.last_seen(charger_id) or row.get("last_seen"),
            "hardware_status": "Faulted" if faults else ("Available" if connectors else "Unknown"),
            "connectors": connectors,
        })
        held = self.edge.local_lists.held.get(charger_id)
        row["local_list"] = {k: held[k] for k in ("version", "status", "detail", "at")} | {
            "entries": len(held["entries"])} if held else None
        if configured:
            row.update({"max_current": configured.max_current, "phases": configured.phases,
                        "configured_connectors": configured.connectors})
        return row

    async def chargers(self, request: web.Request) -> web.Response:
        rows = {r["id"]: r for r in await self._read(Store.chargers)}
        connectors: dict[str, list] = {}
        for c in await self._read(Store.connectors):
            connectors.setdefault(c["charger_id"], []).append(c)
        ids = sorted(set(rows) | set(self.edge.directory.ids()))
        return json_response([self._charger_view(rows.get(i), i, connectors.get(i, [])) for i in ids])

    async def charger(self, request: web.Request) -> web.Response:
        charger_id = request.match_info["id"]
        rows = {r["id"]: r for r in await self._read(Store.chargers)}
        if charger_id not in rows and not self.edge.directory.is_known(charger_id):
            return error_response(404, f"no charger {charger_id!r} at this site")
        connectors = await self._read(Store.connectors, charger_id)
        view = self._charger_view(rows.get(charger_id), charger_id, connectors)
        view["active_transactions"] = await self._read(Store.active_transactions, charger_id)
        return json_response(view)

    async def adopt(self, request: web.Request) -> web.Response:
        charger_id = request.match_info["id"]
        if self.edge.directory.is_known(charger_id):
            return error_response(409, f"charger {charger_id!r} is already part of this site")
        at = self.edge.clock.now_iso()
        if not await self.edge.journal.write(Store.adopt_charger, charger_id, at):
            return error_response(404, f"charger {charger_id!r} has not connected yet; "
                                       "it must boot once before adoption")
        self.edge.directory.adopt(charger_id)
        result = None
        if charger_id in self.edge.ocpp.sessions:
            # Ask it to boot again now, so it is Accepted without waiting for its retry interval.
            result = await self.edge.control.trigger(charger_id, Trigger.BOOT, actor=actor_of(request),
                                                     reason="adopted by installer")
        log.info("adopted charger=%s", charger_id)
        return json_response({"adopted": charger_id, "trigger": result.as_dict() if result else None})

    async def charger_log(self, request: web.Request) -> web.Response:
        return await self._log(request, request.match_info["id"])

    async def site_log(self, request: web.Request) -> web.Response:
        return await self._log(request, request.query.get("charger"))

    async def _log(self, request: web.Request, charger_id: str | None) -> web.Response:
        name = request.match_info["log"]
        if name not in LOGS:
            return error_response(404, f"unknown log {name!r}; one of {', '.join(LOGS)}")
        limit = int_query(request, "limit", 100, MAX_LIMIT)
        before = int_query(request, "before", None)
        # The newest frames and network events are still in memory; flush so the log is current.
        if name == "communication":
            await self.edge.communication_log.flush()
        elif name == "network":
            await self.edge.presence.flush()
        return json_response(await self._read(Store.log, name, charger_id, limit, before))

    async def sessions(self, request: web.Request) -> web.Response:
        state = request.query.get("state")
        if state not in (None, "active", "completed"):
            return error_response(400, f"state={state!r}: use active or completed")
        rows = await self._read(Store.transactions, charger_id=request.query.get("charger"), state=state,
                                limit=int_query(request, "limit", 100, MAX_LIMIT),
                                before_id=int_query(request, "before", None))
        return json_response(rows)

    async def samples(self, request: web.Request) -> web.Response:
        try:
            transaction_id = int(request.match_info["id"])
        except ValueError:
            return error_response(400, "session id must be an integer")
        return json_response(await self._read(Store.samples, transaction_id=transaction_id,
                                                  limit=int_query(request, "limit", 1000, 100_000)))

    async def unmatched_stops(self, request: web.Request) -> web.Response:
        return json_response(await self._read(Store.unmatched_stops, request.query.get("charger")))

    async def command_list(self, request: web.Request) -> web.Response:
        return json_response(sorted(ACTIONS))

    async def command(self, request: web.Request) -> web.Response:
        charger_id = request.match_info["id"]
        try:
            action = resolve_action(request.match_info["action"])
        except CommandError as exc:
            return error_response(404, str(exc))
        body = await json_object(request, empty_ok=True)
        params, reason = body.get("params", {}), body.get("reason", "")
        if not isinstance(params, dict) or not isinstance(reason, str):
            return error_response(400, "params must be an object and reason a string")
        if not reason.strip():
            return error_response(400, "reason is required: the actions log says why every command was sent")
        result = await self.edge.commands.send(charger_id, action, params, actor=actor_of(request), reason=reason)
        status = {"invalid": 400, "not-connected": 409, "timeout": 504, "error": 502}.get(result.outcome, 200)
        return json_response(result.as_dict(), status=status)
