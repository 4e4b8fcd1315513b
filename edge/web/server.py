"""The edge's local HTTP server (aiohttp): the API edgectl talks to, and the web page.

Bound to 127.0.0.1 by default; every API request needs `Authorization: Bearer <token>` (the
token file lives in the state directory), or the web page's session cookie. Documented in
docs/local-api.md and docs/web-page.md.

ROUTES below is the one list of route modules: each entry is a class built with the SiteView
whose `routes()` returns aiohttp route definitions. Adding a module is one line here.
Handlers marked with edge.web.common.public (e.g. a liveness probe) skip the token check.
A module with an async `close()` (commissioning runs in the background) has it called at the server's stop.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from pathlib import Path
from typing import Awaitable, Callable, Protocol

from aiohttp import web

from edge.web.api.auth import AuthRoutes
from edge.web.api.cdr import CdrRoutes
from edge.web.api.chargers import ChargerRoutes
from edge.web.api.config import ConfigRoutes
from edge.web.api.core import CoreRoutes
from edge.web.api.dlm import DlmRoutes
from edge.web.api.commission import CommissionRoutes
from edge.web.api.metrics import MetricsRoutes
from edge.web.api.needs import NeedsRoutes
from edge.web.api.security import SecurityRoutes
from edge.web.api.security_files import SecurityFileRoutes
from edge.web.api.uplink import UplinkRoutes
from edge.web.common import ACTOR, error_response, is_public
from edge.web.page.logins import COOKIE, CSRF_HEADER, LOGINS_KEY, PASSWORD_FILE, Logins, is_loopback
from edge.web.page.routes import PageRoutes
from edge.web.site import SiteView

log = logging.getLogger(__name__)


class RouteModule(Protocol):
    def __init__(self, site: SiteView) -> None: ...

    def routes(self) -> list[web.AbstractRouteDef]: ...


# The route modules, in registration order (a fixed path before a {placeholder} of the same shape).
ROUTES: list[type[RouteModule]] = [
    CoreRoutes,
    AuthRoutes,
    ChargerRoutes,
    ConfigRoutes,
    DlmRoutes,
    NeedsRoutes,
    CdrRoutes,
    UplinkRoutes,
    SecurityRoutes,
    SecurityFileRoutes,
    MetricsRoutes,
    CommissionRoutes,
    PageRoutes,
]

# What a page may see without a login when [web] read_only_without_login = true (GET only).
READ_ONLY = ("/api/v1/web/", "/api/v1/dlm", "/api/v1/chargers", "/api/v1/sessions", "/api/v1/health")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
SHUTDOWN_S = 2.0


class LocalApi:
    def __init__(self, site: SiteView, *, host: str, port: int, token: str):
        self.site = site
        self.host, self.port = host, port
        self._token = token
        self.ready = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.app = web.Application(middlewares=[self._auth], client_max_size=1024 * 1024)
        web_cfg = site.config.web
        self.logins = self.app[LOGINS_KEY] = Logins(
            password_file=Path(site.config.state_path(PASSWORD_FILE)), config_hash=web_cfg.installer_password_hash,
            session_seconds=web_cfg.session_minutes * 60.0, read_only_without_login=web_cfg.read_only_without_login,
            loopback=is_loopback(host))
        for module in ROUTES:
            routes = module(site)
            self.app.add_routes(routes.routes())
            close = getattr(routes, "close", None)
            if close is not None:       # work a module runs in the background ends with the server
                self.app.on_shutdown.append(lambda app, close=close: close())

    @property
    def bound_port(self) -> int:
        assert self._runner is not None
        return self._runner.addresses[0][1]

    async def run(self) -> None:
        # An open page holds a live stream for ever: on stop, give requests a moment, not aiohttp's 60 s.
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=SHUTDOWN_S)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        if self.logins.password_hash() is None:
            # The page stays a login page that says how to set the password: nobody can log in or act.
            log.warning("web page on http://%s:%s/ has no installer password: nobody can log in until one is "
                        "set with `edgectl web password`%s", self.host, self.bound_port,
                        "" if self.logins.loopback else " (and nothing is shown without a login off loopback)")
        self.ready.set()
        try:
            await asyncio.Future()
        finally:
            await self._runner.cleanup()

    @web.middleware
    async def _auth(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        if is_public(request):
            return await handler(request)
        header = request.headers.get("Authorization", "")
        if header:
            # edgectl and scripts: the bearer token, as always; a wrong one is not rescued by a cookie.
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self._token.encode()):
                return error_response(401, "missing or wrong bearer token (see the api-token file in the state "
                                           "directory)")
            return await handler(request)
        login = self.logins.get(request.cookies.get(COOKIE))
        if login is not None:
            # A cookie rides along with any request the browser makes: state changes need the page's CSRF token.
            if request.method not in SAFE_METHODS and not self.logins.csrf_ok(login, request.headers.get(CSRF_HEADER)):
                return error_response(403, "missing or wrong CSRF token: reload the page")
            request[ACTOR] = "installer (web page)"
            return await handler(request)
        if request.method in SAFE_METHODS and self.logins.read_only and request.path.startswith(READ_ONLY):
            return await handler(request)
        return error_response(401, "missing or wrong bearer token (see the api-token file in the state directory)")
