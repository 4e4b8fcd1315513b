"""Local API routes for authorization: the model, tokens, authorization
records, learning unknown tags, remote start/stop and reservations.
Registered through edge/web/server.py's ROUTES (one app, one token check)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Callable

from aiohttp import web

from edge.auth.authorizer import ModelRejected
from edge.auth.tokens import TokenError, canonical_id, canonical_uid, reversed_uid
from edge.journal import Store
from edge.stations.model import IdToken, IdTokenType

from edge.web.site import SiteView
from edge.web.common import MAX_LIMIT, actor_of, error_response, int_query, json_object, json_response


def _canonical(entry: dict) -> str | None:
    try:
        return canonical_uid(entry["uid"]) if entry.get("uid") else canonical_id(entry.get("id_tag") or "")
    except TokenError:
        return None


class AuthRoutes:
    def __init__(self, site: SiteView):
        self.edge = site

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.get("/api/v1/auth/model", self.get_model),
            web.put("/api/v1/auth/model", self.put_model),
            web.get("/api/v1/auth/history", self.history),
            web.get("/api/v1/tokens", self.tokens),
            web.post("/api/v1/tokens", self.add_token),
            web.post("/api/v1/tokens/{tag}/block", self.block),
            web.post("/api/v1/tokens/{tag}/unblock", self.unblock),
            web.delete("/api/v1/tokens/{tag}", self.remove),
            web.get("/api/v1/authorizations", self.authorizations),
            web.get("/api/v1/tags/learn", self.learn),
            web.post("/api/v1/chargers/{id}/remote-start", self.remote_start),
            web.post("/api/v1/sessions/{id}/remote-stop", self.remote_stop),
            web.post("/api/v1/chargers/{id}/reservations", self.reserve),
            web.delete("/api/v1/chargers/{id}/reservations/{reservation}", self.cancel_reservation),
        ]

    # -- the model ------------------------------------------------------------

    async def get_model(self, request: web.Request) -> web.Response:
        auth = self.edge.authorizer
        return json_response({"version": auth.model.version, "document": auth.document})

    async def put_model(self, request: web.Request) -> web.Response:
        body = await json_object(request)
        return await self._apply(request, lambda: self.edge.authorizer.replace(
            body.get("document", body), source="api", actor=actor_of(request), note=str(body.get("note", "import"))))

    async def history(self, request: web.Request) -> web.Response:
        return json_response(await self.edge.journal.read(Store.auth_model_history))

    async def _apply(self, request: web.Request, change: Callable) -> web.Response:
        try:
            model = await change()
        except ModelRejected as exc:
            return error_response(400, "the change was not applied: " + "; ".join(exc.problems), problems=exc.problems)
        return json_response({"version": model.version})

    async def _edit(self, request: web.Request, note: str, edit: Callable[[dict], None]) -> web.Response:
        return await self._apply(request, lambda: self.edge.authorizer.change(
            edit, source="api", actor=actor_of(request), note=note))

    # -- tokens ---------------------------------------------------------------

    async def tokens(self, request: web.Request) -> web.Response:
        model = self.edge.authorizer.model
        return json_response([{
            "id_tag": t.id_tag, "rfid": t.is_uid, "user": t.user, "user_group": t.user_group,
            "card_number": t.card_number, "status": t.status,
            "expiry": t.expiry.isoformat() if t.expiry else None} for t in model.tokens.values()])

    def _find(self, tag: str) -> str:
        token = self.edge.authorizer.model.find(tag)
        if token is None:
            raise web.HTTPNotFound(text=json.dumps({"error": f"no token {tag!r} at this site"}),
                                   content_type="application/json")
        return token.id_tag

    async def add_token(self, request: web.Request) -> web.Response:
        entry = await json_object(request)
        tag = _canonical(entry)

        same_card = {tag, reversed_uid(tag)} if tag and entry.get("uid") else {tag}

        def edit(document: dict) -> None:
            # Replaces a token that is the same card, so `tags learn` can re-assign one.
            document["tokens"] = [t for t in document.get("tokens", []) if _canonical(t) not in same_card] + [entry]
        return await self._edit(request, f"token {entry.get('uid') or entry.get('id_tag')} added", edit)

    async def _set_status(self, request: web.Request, status: str) -> web.Response:
        tag = self._find(request.match_info["tag"])

        def edit(document: dict) -> None:
            for entry in document.get("tokens", []):
                if _canonical(entry) == tag:
                    entry["status"] = status
        return await self._edit(request, f"token {tag} {status.lower()}", edit)

    async def block(self, request: web.Request) -> web.Response:
        return await self._set_status(request, "Blocked")

    async def unblock(self, request: web.Request) -> web.Response:
        return await self._set_status(request, "Active")

    async def remove(self, request: web.Request) -> web.Response:
        tag = self._find(request.match_info["tag"])

        def edit(document: dict) -> None:
            document["tokens"] = [t for t in document.get("tokens", []) if _canonical(t) != tag]
        return await self._edit(request, f"token {tag} removed", edit)

    # -- authorization records ---------------------------------------------------

    async def authorizations(self, request: web.Request) -> web.Response:
        limit = int_query(request, "limit", 100, MAX_LIMIT)
        return json_response(await self.edge.journal.read(
            Store.authorizations, status=request.query.get("status"), unknown_only=request.query.get("unknown") == "1",
            charger_id=request.query.get("charger"), limit=limit))

    async def learn(self, request: web.Request) -> web.Response:
        """The latest unknown tags that were refused, newest first, one row per tag."""
        rows = await self.edge.journal.read(Store.authorizations, unknown_only=True, limit=500)
        seen: dict[str, dict] = {}
        for row in rows:
            if row["id_tag"] not in seen and self.edge.authorizer.model.find(row["id_tag"]) is None:
                seen[row["id_tag"]] = {"id_tag": row["id_tag"], "last_seen": row["at"], "charger_id": row["charger_id"],
                                       "attempts": 0}
            if row["id_tag"] in seen:
                seen[row["id_tag"]]["attempts"] += 1
        return json_response(list(seen.values())[:20])

    # -- remote start / stop, reservations -------------------------------------------

    async def remote_start(self, request: web.Request) -> web.Response:
        """Start for a token on a chosen EVSE, if that token may charge there now."""
        charger_id, body = request.match_info["id"], await json_object(request)
        connector, tag = body.get("connector"), body.get("token")
        if not isinstance(connector, int) or connector < 1 or not isinstance(tag, str):
            return error_response(400, 'body must be {"connector": <1..>, "token": "<id tag, uid or user name>"}')
        token = self.edge.authorizer.model.find(tag) or self._token_of_user(tag)
        if token is not None:
            tag = token.id_tag
        decision = await self.edge.sessions.authorize(charger_id, tag, connector, "remote")
        if decision.status != "Accepted":
            return error_response(403, f"token {tag} may not charge at {charger_id} connector {connector}: "
                               f"{decision.status} ({decision.reason})")
        result = await self.edge.control.remote_start(charger_id, connector, IdToken(tag, IdTokenType.CENTRAL),
                                                      actor=actor_of(request),
                                                      reason=body.get("reason") or "remote start")
        return json_response(result.as_dict(), status=200 if result.outcome in ("ok", "rejected") else 502)

    def _token_of_user(self, user: str):
        """A remote start may name the user instead of a token: their one active token."""
        tokens = [t for t in self.edge.authorizer.model.tokens.values() if t.user == user and t.status == "Active"]
        return tokens[0] if len(tokens) == 1 else None

    async def remote_stop(self, request: web.Request) -> web.Response:
        try:
            tx = int(request.match_info["id"])
        except ValueError:
            return error_response(400, "session id must be an integer")
        body = await json_object(request, empty_ok=True)   # optional {"reason": "why"} for the actions log
        owner = self.edge.sessions.active().get(tx)
        if owner is None:
            return error_response(404, f"session {tx} is not running")
        result = await self.edge.control.remote_stop(owner[0], tx, actor=actor_of(request),
                                                     reason=str(body.get("reason") or "remote stop"))
        return json_response(result.as_dict(), status=200 if result.outcome in ("ok", "rejected") else 502)

    async def reserve(self, request: web.Request) -> web.Response:
        charger_id, body = request.match_info["id"], await json_object(request)
        connector, tag, minutes = body.get("connector"), body.get("token"), body.get("minutes", 15)
        if not isinstance(connector, int) or connector < 0 or not isinstance(tag, str) \
                or not isinstance(minutes, int) or not 1 <= minutes <= 24 * 60:
            return error_response(400, 'body must be {"connector": <0..>, "token": "<tag>", "minutes": 1..1440}')
        decision = await self.edge.sessions.authorize(charger_id, tag, connector or None, "reservation")
        if decision.status != "Accepted":
            return error_response(403, f"token {tag} may not charge there: {decision.status} ({decision.reason})")
        now = self.edge.clock.now()
        # Reservation ids only need to be unique per charger; seconds since 2024 are.
        reservation_id = int(now.timestamp()) - 1_704_067_200
        result = await self.edge.control.reserve(
            charger_id, connector, IdToken(decision.token.id_tag if decision.token else tag),
            reservation_id=reservation_id, expires=(now + timedelta(minutes=minutes)).isoformat(),
            parent=decision.parent_id_tag, actor=actor_of(request),
            reason=body.get("reason") or f"reservation for {minutes} min")
        return json_response(result.as_dict(), status=200 if result.outcome in ("ok", "rejected") else 502)

    async def cancel_reservation(self, request: web.Request) -> web.Response:
        try:
            reservation_id = int(request.match_info["reservation"])
        except ValueError:
            return error_response(400, "reservation id must be an integer")
        result = await self.edge.control.cancel_reservation(request.match_info["id"], reservation_id,
                                                            actor=actor_of(request), reason="reservation cancelled")
        return json_response(result.as_dict(), status=200 if result.outcome in ("ok", "rejected") else 502)


