"""What every handler shares: the app keys, errors, query parsing, cursors, site access."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Callable
from zoneinfo import ZoneInfo

from aiohttp import web

from cloud.db import Database
from cloud.downlink import Downlink
from cloud.ingest import Ingest
from cloud.mqtt import MqttLink
from cloud.store import views
from edge.cdr.export import range_bound

DB = web.AppKey("db", Database)
DOWNLINK = web.AppKey("downlink", Downlink)
INGEST = web.AppKey("ingest", Ingest)
LINK = web.AppKey("link", MqttLink)
# The OpenAPI document's builder (cloud/api/openapi.py, which reads the route table: handlers reach it here).
OPENAPI = web.AppKey("openapi", Callable[[], dict])
# Request key: the operator the bearer token belongs to (RequestKey from aiohttp 3.12 on).
OPERATOR: Any = web.RequestKey("operator", str) if hasattr(web, "RequestKey") else "operator"

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
UTC = ZoneInfo("UTC")


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def error_response(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def db(request: web.Request) -> Database:
    return request.app[DB]


async def site_or_404(request: web.Request) -> dict[str, Any]:
    """The site in the path, if the caller's operator has it. Another operator's site and a site that
    does not exist answer the same 404, so a token cannot find out which sites exist."""
    site = request.match_info["site"]
    row = await db(request).read(views.site_of, request[OPERATOR], site)
    if row is None:
        raise ApiError(404, f"no site {site!r}")
    return row


def limit_of(request: web.Request) -> int:
    text = request.query.get("limit")
    if text is None:
        return DEFAULT_LIMIT
    try:
        value = int(text)
    except ValueError:
        raise ApiError(400, f"limit={text!r}: not a whole number") from None
    if not 1 <= value <= MAX_LIMIT:
        raise ApiError(400, f"limit={value}: must be 1 to {MAX_LIMIT}")
    return value


def time_filter(request: web.Request, *, statuses: tuple[str, ...] | None = None) -> views.Filter:
    bounds = {}
    for name, end in (("from", False), ("to", True)):
        text = request.query.get(name)
        try:
            bounds[name] = range_bound(text, UTC, end=end)
        except ValueError as exc:
            raise ApiError(400, f"{name}={text!r}: {exc} (a time without offset is UTC)") from None
    status = request.query.get("status") or None
    if status is not None and statuses is not None and status not in statuses:
        raise ApiError(400, f"status={status!r}: one of {', '.join(statuses)}")
    return views.Filter(bounds["from"], bounds["to"], request.query.get("charger") or None, status)


def encode_cursor(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode().rstrip("=")


def cursor_of(request: web.Request, types: tuple[type, ...]) -> list[Any] | None:
    text = request.query.get("cursor")
    if not text:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        key = None
    if not isinstance(key, list) or len(key) != len(types) or not all(
            isinstance(v, t) and not isinstance(v, bool) for v, t in zip(key, types)):
        raise ApiError(400, "cursor: not one this API handed out (use next_cursor from the previous page)")
    return key


def page(rows: list[Any], limit: int, key: Callable[[Any], list[Any]],
         view: Callable[[Any], Any] = lambda row: row) -> dict[str, Any]:
    """rows: up to limit + 1 (one more than shown tells that there is a next page);
    key: a row's sort key, the cursor to continue after it; view: a row as the API shows it."""
    shown = rows[:limit]
    more = len(rows) > limit
    return {"items": [view(r) for r in shown], "next_cursor": encode_cursor(key(shown[-1])) if more else None}


async def json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "the request body is not JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return body
