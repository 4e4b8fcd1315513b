"""Helpers shared by the HTTP side's route modules."""

from __future__ import annotations

import functools
import json
from decimal import Decimal
from typing import Any, Callable, TypeVar

from aiohttp import web

from edge.ocpp.commands import plain_numbers

MAX_LIMIT = 5000
# Who acts, when the server knows better than the X-Actor header (a login on the web page).
ACTOR = web.RequestKey("actor", str)

Handler = TypeVar("Handler", bound=Callable[..., Any])


def public(handler: Handler) -> Handler:
    """Mark a route's handler as answered without the token or a login (a liveness probe, the login page)."""
    handler.public = True  # type: ignore[attr-defined]
    return handler


def is_public(request: web.Request) -> bool:
    route = request.match_info.route
    # An unknown path has no handler of ours: the 404 is answered after the token check, as before.
    return bool(getattr(getattr(route, "handler", None), "public", False))


def _json_default(value: Any) -> Any:
    # Chargers' answers carry Decimals (the ocpp library parses their numbers so);
    # JSON has numbers, so every answer of the local API shows them as numbers.
    if isinstance(value, Decimal):
        return plain_numbers(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# The local API's one JSON encoder: every route module answers through json_response.
dumps = functools.partial(json.dumps, default=_json_default)


def json_response(data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(data, status=status, dumps=dumps, headers=headers)


def error_response(status: int, message: str, **extra: object) -> web.Response:
    return json_response({"error": message, **extra}, status=status)


def int_query(request: web.Request, name: str, default: int | None, maximum: int | None = None) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=json.dumps({"error": f"query parameter {name}={raw!r} is not an integer"}),
                                 content_type="application/json") from None
    if value < 1 or (maximum is not None and value > maximum):
        raise web.HTTPBadRequest(text=json.dumps({"error": f"query parameter {name}={value} must be 1..{maximum}"}),
                                 content_type="application/json")
    return value


def actor_of(request: web.Request) -> str:
    # The token proves access to the box; the name is who says they are acting. A page login is the installer.
    return request.get(ACTOR) or request.headers.get("X-Actor", "").strip()[:64] or "local-api"


async def json_object(request: web.Request, *, empty_ok: bool = False) -> dict:
    """The request body as a JSON object, or a 400 that says what is wrong with it."""
    if empty_ok and not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except json.JSONDecodeError as exc:
        raise web.HTTPBadRequest(text=json.dumps({"error": f"request body is not JSON: {exc}"}),
                                 content_type="application/json") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text=json.dumps({"error": "request body must be a JSON object"}),
                                 content_type="application/json")
    return body
