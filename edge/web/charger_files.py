"""HTTPS for what chargers fetch and send: GetLog uploads and firmware downloads ([ocpp.tls] https_port).

The local API speaks plain HTTP (it is the installer's, on the box's LAN); a charger at security profile 2
or 3 should not PUT its security log, or fetch its firmware, in clear. When [ocpp.tls] is configured the
edge serves the two charger-facing routes (edge/web/api/security_files.py) on a port of their own with the
wss:// listener's server certificate (reloaded with it, tls.ServerTls), and hands chargers that came over
TLS https:// URLs on it, under the name they used to reach the edge. Only those two routes are here: the
installer's API does not become reachable on one more port. The token in the URL is the credential, so no
client certificate is asked for.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from aiohttp import web

from edge.web.api.security_files import SecurityFileRoutes

if TYPE_CHECKING:
    from edge.ocpp.tls import ServerTls
    from edge.web.site import SiteView

log = logging.getLogger(__name__)


class ChargerFilesHttps:
    def __init__(self, site: "SiteView", tls: "ServerTls", *, host: str, port: int):
        self.host, self.port, self.tls = host, port, tls
        self.ready = asyncio.Event()
        self._runner: web.AppRunner | None = None
        # Uploads stream to disk in chunks: the size limit is LogUploads', not aiohttp's body limit.
        self.app = web.Application()
        self.app.add_routes(SecurityFileRoutes(site).charger_routes())

    @property
    def bound_port(self) -> int:
        assert self._runner is not None
        return self._runner.addresses[0][1]

    async def run(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port, ssl_context=self.tls.https_context).start()
        log.info("chargers' uploads and downloads on https://%s:%s", self.host, self.bound_port)
        self.ready.set()
        try:
            await asyncio.Future()
        finally:
            await self._runner.cleanup()
