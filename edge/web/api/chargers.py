"""Charger credentials and refused handshakes in the local API.

- POST /api/v1/chargers/{id}/password {"rotate": true, "reason": "..."}: the edge makes a new key, sets it on the
  charger (ChangeConfiguration AuthorizationKey) and keeps its hash; the key is never shown to anyone.
  {"forget": true}: drop the keys the edge set, back to the config's password_hash.
- GET /api/v1/chargers/{id}/password: the state of its keys (never a key, never a hash) and its last refusal.
- GET /api/v1/refused-handshakes[?charger=ID]: each charger's last refused handshake, with the reason.
- GET /api/v1/chargers/{id}/variables[?component=NAME&limit=N&offset=N]: an OCPP 2.0.1 station's device model as
  the edge keeps it (NotifyReport, GetVariables/SetVariables answers: edge/ocpp/v201/device_model.py; each
  variable's `read_at` says when it was last read from the station), its latest reports, and `settings`: per
  variable the edge manages, what the edge set and what someone else set through the edge (which the edge keeps);
  a secret's value is never kept.
- POST /api/v1/chargers/{id}/variables {"set": [{"component", "variable", "value", ...}], "reason": "..."}: an
  operator's SetVariables on an OCPP 2.0.1 station; what it sets of the variables the edge manages is kept (the
  edge no longer sets them after a boot).
- GET /api/v1/chargers/{id}/events[?problems=1&limit=N&offset=N]: an OCPP 2.0.1 station's recent NotifyEvent
  entries as the edge keeps them (in the journal, the newest KEEP_EVENTS per station: edge/ocpp/v201/station_events.py),
  newest first.
- GET /api/v1/chargers/{id}/smart-charging: what an OCPP 2.0.1 station reported of its charging profiles
  (ReportChargingProfiles) and the schedules its cars chose (NotifyEVChargingSchedule), as kept in memory.
- POST /api/v1/chargers/{id}/security-profile {"profile": N, "reason": "..."}: move the charger to security profile N.
  An OCPP 2.0.1 station: A05 (edge/ocpp/v201/security.py upgrade_security_profile: SetNetworkProfile, SetVariables
  NetworkConfigurationPriority, Reset); a 1.6 charger: ChangeConfiguration SecurityProfile (the whitepaper's
  migration, guarded by edge/ocpp/security_state.py). 409 with `error` when the edge refuses it (nothing sent).
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from aiohttp import web

from edge.web.site import SiteView
from edge.web.common import actor_of, error_response, json_object, json_response
from edge.journal import Store
from edge.ocpp.site import speaks_201
from edge.ocpp.credentials import CredentialError
from edge.ocpp.v201 import services as v201_services
from edge.ocpp.v201 import device_model as v201_device_model
from edge.ocpp.v201 import station_events
from edge.ocpp.v201.security import upgrade_security_profile

PROFILE_FIELDS = ("profile", "reason")
MAX_REASON = 200


def security_profile_request(body: Mapping[str, Any]) -> tuple[int, str]:
    """The body of POST /chargers/{id}/security-profile -> (profile, reason). ValueError names the bad field."""
    unknown = sorted(str(k) for k in body if k not in PROFILE_FIELDS)
    if unknown:
        raise ValueError(f"unknown field {unknown[0][:40]!r}: the body is {{\"profile\": 1..3, \"reason\": \"...\"}}")
    if "profile" not in body:
        raise ValueError("profile is missing: the security profile to move to, 1 (HTTP Basic), 2 (TLS and HTTP "
                         "Basic) or 3 (TLS client certificate)")
    profile = body["profile"]
    if isinstance(profile, bool) or not isinstance(profile, int) or not 0 <= profile <= 3:
        raise ValueError(f"profile must be a whole number 0 to 3, not {json_text(profile)}")
    reason = body.get("reason", "")
    if reason is None:
        reason = ""
    if not isinstance(reason, str):
        raise ValueError(f"reason must be a string, not {json_text(reason)}")
    if len(reason) > MAX_REASON:
        raise ValueError(f"reason is {len(reason)} characters long: at most {MAX_REASON}")
    return profile, reason.strip() or f"security profile {profile}"


def json_text(value: Any) -> str:
    return json.dumps(value)[:40]


# A rotation's HTTP status follows the ChangeConfiguration's outcome, as for any command.
_STATUS = {"invalid": 400, "not-connected": 409, "timeout": 504, "error": 502}


def events_page(kept: list[dict[str, Any]], query: Mapping[str, str]) -> dict[str, Any]:
    """A page of a station's kept events (oldest first as kept), newest first, by the query's `limit` (1 to
    KEEP_EVENTS, 50 by default), `offset` (0 on) and `problems` (1: only problems). ValueError says what is wrong."""
    try:
        limit = int(query.get("limit", "50"))
        offset = int(query.get("offset", "0"))
    except ValueError:
        raise ValueError("limit and offset are whole numbers") from None
    if not 1 <= limit <= station_events.KEEP_EVENTS or offset < 0:
        raise ValueError(f"limit is 1..{station_events.KEEP_EVENTS} and offset 0 or more")
    problems = query.get("problems", "0")
    if problems not in ("0", "1"):
        raise ValueError("problems is 0 or 1")
    newest_first = [event for event in reversed(kept) if problems == "0" or event["problem"]]
    return {"events": newest_first[offset:offset + limit], "total": len(newest_first),
            "kept_at_most": station_events.KEEP_EVENTS, "limit": limit, "offset": offset}


class ChargerRoutes:
    def __init__(self, site: SiteView):
        self.site = site

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.get("/api/v1/chargers/{id}/password", self.password_state),
            web.post("/api/v1/chargers/{id}/password", self.password),
            web.get("/api/v1/refused-handshakes", self.refused),
            web.get("/api/v1/chargers/{id}/variables", self.variables),
            web.post("/api/v1/chargers/{id}/variables", self.set_variables),
            web.get("/api/v1/chargers/{id}/events", self.events),
            web.get("/api/v1/chargers/{id}/smart-charging", self.smart_charging),
            web.post("/api/v1/chargers/{id}/security-profile", self.security_profile),
        ]

    async def security_profile(self, request: web.Request) -> web.Response:
        """Move a charger to another security profile, in its OCPP version's way; each request sent is in the
        actions log. 409 with `error` when the edge refuses it (nothing sent), else 200 with the outcome."""
        charger_id = request.match_info["id"]
        if not self.site.directory.is_known(charger_id):
            return error_response(404, f"no charger {charger_id!r} at this site")
        try:
            profile, reason = security_profile_request(await json_object(request))
        except ValueError as exc:
            return error_response(400, str(exc))
        actor = actor_of(request)
        if speaks_201(self.site.control, charger_id):
            result = await upgrade_security_profile(self.site.ocpp, charger_id, profile,  # type: ignore[arg-type]
                                                    actor=actor, reason=reason)
            result = {"charger_id": charger_id, "ocpp": "2.0.1", "target": profile, **result}
        else:
            sent = await self.site.commands.send(
                charger_id, "ChangeConfiguration", {"key": "SecurityProfile", "value": str(profile)},
                actor=actor, reason=reason)
            result = {"charger_id": charger_id, "ocpp": "1.6", "target": profile, "outcome": sent.outcome,
                      "steps": [sent.as_dict()]}
            if sent.outcome == "invalid":
                result["error"] = str(sent.response)
        return json_response(result, status=409 if result["outcome"] == "invalid" else 200)

    async def smart_charging(self, request: web.Request) -> web.Response:
        charger_id = request.match_info["id"]
        if not self.site.directory.is_known(charger_id):
            return error_response(404, f"no charger {charger_id!r} at this site")
        return json_response({"charger_id": charger_id,
                              **v201_services.smart_charging_kept(self.site, charger_id)})  # type: ignore[arg-type]

    async def events(self, request: web.Request) -> web.Response:
        """What a 2.0.1 station told in NotifyEvent (edge/ocpp/v201/station_events.py keeps the newest KEEP_EVENTS
        per station in the journal, across restarts), newest first; `problems=1` only the problems (those alerted)."""
        charger_id = request.match_info["id"]
        if not self.site.directory.is_known(charger_id):
            return error_response(404, f"no charger {charger_id!r} at this site")
        try:
            page = events_page(await station_events.kept_events(self.site, charger_id),  # type: ignore[arg-type]
                               request.query)
        except ValueError as exc:
            return error_response(400, str(exc))
        return json_response({"charger_id": charger_id, **page})

    async def variables(self, request: web.Request) -> web.Response:
        charger_id = request.match_info["id"]
        if not self.site.directory.is_known(charger_id):
            return error_response(404, f"no charger {charger_id!r} at this site")
        try:
            limit = min(max(int(request.query.get("limit", "500")), 1), 2000)
            offset = max(int(request.query.get("offset", "0")), 0)
        except ValueError:
            return error_response(400, "limit and offset are whole numbers")
        rows = await self.site.journal.read(Store.device_variables, charger_id,
                                            component=request.query.get("component") or None, limit=limit,
                                            offset=offset)
        reports = await self.site.journal.read(Store.device_reports, charger_id, 5)
        settings = await self.site.journal.read(Store.device_settings, charger_id)
        return json_response({"charger_id": charger_id, "variables": rows, "reports": reports,
                              "settings": settings, "limit": limit, "offset": offset})

    async def set_variables(self, request: web.Request) -> web.Response:
        """An operator's SetVariables (edge/ocpp/v201/device_model.py operator_request): sent as asked; a value of
        a variable the edge manages that the station takes is kept from then on (the edge no longer sets it)."""
        charger_id = request.match_info["id"]
        if not self.site.directory.is_known(charger_id):
            return error_response(404, f"no charger {charger_id!r} at this site")
        if not speaks_201(self.site.control, charger_id):
            return error_response(409, f"charger {charger_id!r} is not an OCPP 2.0.1 station (1.6: the "
                                       "ChangeConfiguration command)")
        try:
            data, reason = v201_device_model.operator_request(await json_object(request))
        except ValueError as exc:
            return error_response(400, str(exc))
        result = await v201_device_model.set_by_operator(self.site, charger_id, data,  # type: ignore[arg-type]
                                                         actor=actor_of(request), reason=reason)
        return json_response(result.as_dict(), status=_STATUS.get(result.outcome, 200))

    async def _refusals(self, charger_id: str | None) -> list[dict]:
        await self.site.presence.flush()   # the newest notes are still in memory
        return await self.site.journal.read(Store.latest_refusals, charger_id)

    async def password_state(self, request: web.Request) -> web.Response:
        charger_id = request.match_info["id"]
        if not self.site.directory.is_known(charger_id):
            return error_response(404, f"no charger {charger_id!r} at this site")
        refusals = await self._refusals(charger_id)
        return json_response({"charger_id": charger_id, **self.site.ocpp.credentials.describe(charger_id),
                                  "last_refusal": refusals[0] if refusals else None})

    async def password(self, request: web.Request) -> web.Response:
        charger_id = request.match_info["id"]
        body = await json_object(request)
        reason = body.get("reason", "key rotation")
        if not isinstance(reason, str):
            return error_response(400, "reason must be a string")
        credentials = self.site.ocpp.credentials
        try:
            if body.get("rotate") is True:
                result = await credentials.rotate(charger_id, actor=actor_of(request), reason=reason)
                return json_response(result, status=_STATUS.get(result["command"]["outcome"], 200))
            if body.get("forget") is True:
                if not self.site.directory.is_known(charger_id):
                    return error_response(404, f"no charger {charger_id!r} at this site")
                dropped = await credentials.forget(charger_id)
                return json_response({"charger_id": charger_id, "keys_dropped": dropped,
                                          "credentials": credentials.describe(charger_id)})
        except CredentialError as exc:
            return error_response(exc.status, str(exc))
        return error_response(400, 'send {"rotate": true} to set a new key on the charger, or {"forget": true} '
                                   "to go back to the config's password_hash; the edge never takes a key from you")

    async def refused(self, request: web.Request) -> web.Response:
        return json_response(await self._refusals(request.query.get("charger")))
