"""OCPP security in the local API (issue 17, docs/security.md).

- GET /api/v1/security: whether wss:// is served (port, certificate, reloads), each charger's configured
  security profile and the level it was last and at most seen at (TLS version, cipher, client certificate),
  the latest refused TLS handshakes with OpenSSL's reason, and the latest SecurityEventNotifications
  (?charger=ID: only its).
- POST /api/v1/security/reload: read the TLS files again now (they are also checked every reload_every s).
"""

from __future__ import annotations

from aiohttp import web

from edge.journal import Store
from edge.web.common import json_response
from edge.web.site import SiteView


class SecurityRoutes:
    def __init__(self, site: SiteView):
        self.site = site

    def routes(self) -> list[web.AbstractRouteDef]:
        return [web.get("/api/v1/security", self.state), web.post("/api/v1/security/reload", self.reload)]

    def _tls(self) -> dict | None:
        server = self.site.ocpp
        if server.tls is None:
            return None
        certificate, key, ca = server.tls.paths
        return {"port": server.bound_tls_port, "certificate": str(certificate), "key": str(key), "ca": str(ca),
                "reloads": server.tls.reloads, "last_error": server.tls.last_error}

    async def state(self, request: web.Request) -> web.Response:
        server = self.site.ocpp
        chargers = []
        for charger_id in server.site.directory.ids():
            configured = server.site.directory.configured(charger_id)
            seen = server.seen.get(charger_id)
            chargers.append({"charger_id": charger_id,
                             "security_profile": configured.security_profile if configured else 1,
                             "seen": seen.as_dict() if seen else None,
                             "connected": charger_id in server.sessions})
        charger = request.query.get("charger")
        events = await server.site.journal.read(Store.security_events, charger, 50)
        return json_response({"tls": self._tls(), "chargers": chargers,
                              "tls_refused": list(server.tls_failures)[-20:], "security_events": events})

    async def reload(self, request: web.Request) -> web.Response:
        server = self.site.ocpp
        if server.tls is None:
            return json_response({"error": "no [ocpp.tls] in the config: wss:// is not served"}, status=409)
        changed = server.tls.check()
        return json_response({"reloaded": changed, "tls": self._tls()},
                             status=200 if server.tls.last_error is None else 422)
