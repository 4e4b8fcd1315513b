"""The aiohttp application: dependencies under AppKeys, bearer-token auth, JSON errors."""

from __future__ import annotations

import logging
from typing import Awaitable, Callable

from aiohttp import web

from cloud.api.common import DB, DOWNLINK, INGEST, LINK, OPENAPI, OPERATOR, ApiError, error_response
from cloud.api.openapi import document
from cloud.api.routes import PUBLIC_PATHS, add_routes
from cloud.db import Database
from cloud.downlink import Downlink
from cloud.ingest import Ingest
from cloud.mqtt import MqttLink
from cloud.store import admin
from cloud.tokens import token_hash

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_BODY = 512 * 1024        # above the contract's 256 KiB payload limit, which the downlink enforces


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, str(exc))
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/json":
            return error_response(exc.status, exc.reason)
        raise


@web.middleware
async def bearer(request: web.Request, handler: Handler) -> web.StreamResponse:
    resource = request.match_info.route.resource
    path = resource.canonical if resource is not None else request.path
    if path in PUBLIC_PATHS or not request.path.startswith("/api/"):
        return await handler(request)
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    operator = None
    if scheme.lower() == "bearer" and token.strip():
        operator = await request.app[DB].read(admin.operator_of, token_hash(token.strip()))
    if operator is None:
        return web.json_response({"error": "missing or unknown bearer token"}, status=401,
                                 headers={"WWW-Authenticate": 'Bearer realm="cloud"'})
    request[OPERATOR] = operator
    return await handler(request)


def make_app(db: Database, downlink: Downlink, ingest: Ingest, link: MqttLink) -> web.Application:
    app = web.Application(middlewares=[errors, bearer], client_max_size=MAX_BODY)
    app[DB] = db
    app[DOWNLINK] = downlink
    app[INGEST] = ingest
    app[LINK] = link
    app[OPENAPI] = document
    add_routes(app)
    return app
