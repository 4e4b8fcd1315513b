"""Configuration documents and commands to a site, and their outcome (the site's ack)."""

from __future__ import annotations

import hashlib
import re

from aiohttp import web

from cloud.api.common import (DOWNLINK, OPERATOR, ApiError, cursor_of, db, json_body, limit_of, page,
                              site_or_404)
from cloud.downlink import PushError
from cloud.store import pushes
from contract.v1 import DOWN_KINDS, RETAINED_DOWN

DEFAULT_COMMAND_EXPIRY_S = 300
MAX_COMMAND_EXPIRY_S = 7 * 24 * 3600
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


async def idempotency(request: web.Request) -> tuple[str, str] | None:
    """The request's Idempotency-Key and a hash of what it asks (method, path, body as sent), or None.
    The same key with the same request gets the first answer again; with another request, 422."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not IDEMPOTENCY_KEY.match(key):
        raise ApiError(400, "Idempotency-Key: 1 to 255 visible ASCII characters (a UUID is a good key)")
    digest = hashlib.sha256(f"{request.method} {request.path}\n".encode() + await request.read()).hexdigest()
    return key, digest


def _answer(row: dict) -> web.Response:
    replayed = bool(row.get("replayed"))
    view = pushes.view({k: v for k, v in row.items() if k != "replayed"})
    return web.json_response(view, status=202, headers={"Idempotent-Replayed": "true"} if replayed else None)


def _document(body: dict) -> dict:
    document = body.get("document")
    if not isinstance(document, dict):
        raise ApiError(400, "document: a JSON object is required")
    unknown = set(body) - {"document", "mode", "expires_in_s"}
    if unknown:
        raise ApiError(400, f"unknown field(s): {', '.join(sorted(unknown))}")
    return document


def _kind(request: web.Request) -> str:
    kind = request.match_info["kind"]
    if kind not in RETAINED_DOWN:
        raise ApiError(404, f"no configuration document {kind!r}; one of {', '.join(sorted(RETAINED_DOWN))}")
    return kind


async def post_config(request: web.Request) -> web.Response:
    site = (await site_or_404(request))["id"]
    kind = _kind(request)
    body = await json_body(request)
    document = _document(body)
    mode = body.get("mode", "full")
    if mode not in ("full", "diff"):
        raise ApiError(400, f"mode={mode!r}: full or diff")
    try:
        row = await request.app[DOWNLINK].push_document(site, kind, document, mode, request[OPERATOR],
                                                        await idempotency(request))
    except PushError as exc:
        raise ApiError(exc.status, str(exc)) from None
    return _answer(row)


async def get_config(request: web.Request) -> web.Response:
    site = (await site_or_404(request))["id"]
    kind = _kind(request)
    newest = await db(request).read(pushes.newest_version, site, kind)
    applied = (await db(request).read(pushes.latest_by_kind, site)).get(kind, {}).get("applied")
    return web.json_response({"kind": kind, "latest": pushes.view(newest) if newest else None,
                              "applied_version": applied})


async def post_command(request: web.Request) -> web.Response:
    site = (await site_or_404(request))["id"]
    body = await json_body(request)
    document = _document(body)
    if "mode" in body:
        raise ApiError(400, "mode: commands have no mode")
    expires = body.get("expires_in_s", DEFAULT_COMMAND_EXPIRY_S)
    if isinstance(expires, bool) or not isinstance(expires, (int, float)) or not 1 <= expires <= MAX_COMMAND_EXPIRY_S:
        raise ApiError(400, f"expires_in_s={expires!r}: seconds, 1 to {MAX_COMMAND_EXPIRY_S}")
    try:
        row = await request.app[DOWNLINK].push_command(site, document, float(expires), request[OPERATOR],
                                                       await idempotency(request))
    except PushError as exc:
        raise ApiError(exc.status, str(exc)) from None
    return _answer(row)


async def list_pushes(request: web.Request) -> web.Response:
    site = (await site_or_404(request))["id"]
    kind = request.query.get("kind") or None
    if kind is not None and kind not in DOWN_KINDS:
        raise ApiError(400, f"kind={kind!r}: one of {', '.join(DOWN_KINDS)}")
    limit, before = limit_of(request), cursor_of(request, (str, str))
    rows = await db(request).read(lambda conn: pushes.listing(conn, site, kind=kind, before=before, limit=limit + 1))
    return web.json_response(page(rows, limit, lambda r: [r["created_at"], r["id"]], pushes.view))


async def get_push(request: web.Request) -> web.Response:
    site = (await site_or_404(request))["id"]
    row = await db(request).read(pushes.get, site, request.match_info["id"])
    if row is None:
        raise ApiError(404, f"no push {request.match_info['id']!r} for site {site!r}")
    return web.json_response(pushes.view(row))
