"""Sites and chargers."""

from __future__ import annotations

from aiohttp import web

from cloud.api.common import OPERATOR, db, site_or_404
from cloud.store import pushes, views


async def list_sites(request: web.Request) -> web.Response:
    return web.json_response({"items": await db(request).read(views.operator_sites, request[OPERATOR])})


async def site(request: web.Request) -> web.Response:
    found = await site_or_404(request)
    detail = await db(request).read(views.site_detail, found["id"])
    config = await db(request).read(pushes.latest_by_kind, found["id"])
    detail["config"] = {kind: {"pushed_version": r["pushed"], "applied_version": r["applied"]}
                        for kind, r in sorted(config.items())}
    return web.json_response(found | detail)


async def chargers(request: web.Request) -> web.Response:
    found = await site_or_404(request)
    return web.json_response({"items": await db(request).read(views.chargers, found["id"])})
