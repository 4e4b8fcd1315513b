"""The web page's routes: the page and its static files, login and logout, who am I, live updates (SSE).

The page itself is plain files (edge/web/static, package data); everything it shows comes from the same
/api/v1 routes edgectl uses, authorised by the session cookie instead of the bearer token (server.py).
"""

from __future__ import annotations

import asyncio
import logging
from importlib import resources

from aiohttp import web

from edge.web.common import dumps, error_response, json_object, json_response, public
from edge.web.page.live import LiveView
from edge.web.page.logins import COOKIE, LOGINS_KEY, Logins
from edge.web.site import SiteView

log = logging.getLogger(__name__)

STATIC = resources.files("edge.web") / "static"
TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml",
         ".txt": "text/plain"}
# What a browser may not do with our pages: no framing, no scripts from elsewhere, no inline script.
HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
           "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}


class PageRoutes:
    def __init__(self, site: SiteView):
        self.site = site
        self.live = LiveView(site)

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.get("/", self.index),
            web.get("/static/{name}", self.static),
            web.post("/web/login", self.login),
            web.post("/web/logout", self.logout),
            web.get("/api/v1/web/session", self.session),
            web.get("/api/v1/web/snapshot", self.snapshot),
            web.get("/api/v1/web/live", self.stream),
        ]

    @staticmethod
    def _logins(request: web.Request) -> Logins:
        return request.app[LOGINS_KEY]

    @public
    async def index(self, request: web.Request) -> web.Response:
        return web.Response(body=(STATIC / "index.html").read_bytes(), content_type="text/html", headers=HEADERS)

    @public
    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        suffix = name[name.rfind("."):] if "." in name else ""
        # One flat folder, names without separators: nothing outside it can be named.
        if "/" in name or "\\" in name or name.startswith(".") or suffix not in TYPES:
            raise web.HTTPNotFound()
        file = STATIC / name
        if not file.is_file():
            raise web.HTTPNotFound()
        return web.Response(body=file.read_bytes(), content_type=TYPES[suffix], headers=HEADERS)

    @public
    async def session(self, request: web.Request) -> web.Response:
        """Who the page is: logged in (and its CSRF token), read-only, or asked to log in (and whether it can)."""
        logins = self._logins(request)
        login = logins.get(request.cookies.get(COOKIE))
        return json_response({"logged_in": login is not None, "csrf": login.csrf if login else None,
                              "read_only": login is None and logins.read_only,
                              "password_set": logins.password_hash() is not None,
                              "site": self.site.config.site.id, "name": self.site.config.site.name})

    @public
    async def login(self, request: web.Request) -> web.Response:
        logins = self._logins(request)
        address = request.remote or "?"
        if logins.password_hash() is None:
            return error_response(409, "no installer password is set: run `edgectl web password` on the box "
                                       "(or set [web] installer_password_hash)")
        wait = logins.barred_for(address)
        if wait > 0:
            return json_response({"error": f"too many wrong passwords: try again in {wait:.0f} s"}, status=429,
                                 headers={"Retry-After": str(int(wait) + 1)})
        body = await json_object(request)
        password = body.get("password")
        if not isinstance(password, str) or not await asyncio.to_thread(logins.check, password, address):
            log.warning("web page: wrong installer password from %s", address)
            return error_response(401, "wrong password")
        session_id, login = logins.open()
        response = json_response({"logged_in": True, "csrf": login.csrf})
        response.set_cookie(COOKIE, session_id, httponly=True, samesite="Strict", secure=request.secure, path="/",
                            max_age=None)
        log.info("web page: installer logged in from %s", address)
        return response

    async def logout(self, request: web.Request) -> web.Response:
        self._logins(request).close(request.cookies.get(COOKIE))
        response = json_response({"logged_in": False})
        response.del_cookie(COOKIE, path="/")
        return response

    async def snapshot(self, request: web.Request) -> web.Response:
        return json_response(await self.live.with_alerts())

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: one snapshot a second until the page goes away."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                               "X-Accel-Buffering": "no"})
        await response.prepare(request)
        try:
            while True:
                data = dumps(await self.live.with_alerts())
                await response.write(f"event: snapshot\ndata: {data}\n\n".encode())
                await asyncio.sleep(self.live.every)
        except ConnectionResetError:
            pass       # the page was closed
        return response
