"""The OCPP security extensions in the local API (issue 17, docs/security.md).

For chargers (no bearer token; a one-time token in the URL instead, which the edge handed that charger):
- PUT or POST /api/v1/uploads/{token}: a log the charger uploads for GetLog (size-limited, one upload).
- GET /api/v1/firmware/{token}: the firmware file offered with SignedUpdateFirmware.

For the installer (bearer token or the page's login):
- POST /api/v1/security/chargers/{id}/logs {log_type, base_url?, oldest?, latest?, reason}: GetLog.
- GET /api/v1/security/logs[?charger=ID]; GET /api/v1/security/logs/{request_id}/file: the uploaded file.
- POST /api/v1/security/chargers/{id}/firmware {path, signing_certificate, signature, manufacturer_root?, base_url?,
  retrieve_at?, reason}: SignedUpdateFirmware of a file on the box (the signing certificate is checked against the
  manufacturer root, PEM, default the state directory's tls/manufacturer-roots.pem, and the signature; 422 if
  either fails).
- GET /api/v1/security/firmware[?charger=ID].
- POST /api/v1/security/chargers/{id}/renew: ExtendedTriggerMessage(SignChargePointCertificate).
- GET /api/v1/security/certificates[?charger=ID]: what the site CA signed, with each charger's answer.
- GET /api/v1/security/transparency.xml[?transaction=ID][&charger=ID]: the records' signed meter values in the
  XML the S.A.F.E. transparency software reads.
- POST /api/v1/security/rotate {kinds: [certificate, password], chargers?}; GET /api/v1/security/rotate.

base_url is where chargers upload and download. Default: for a charger connected over TLS, the edge's HTTPS
port ([ocpp.tls] https_port, edge/web/charger_files.py) under the name it used for wss://; for one on ws://,
the address this request came in at.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from edge.cdr.signed_data import transparency_xml
from edge.journal import Store
from edge.ocpp import rotation as rot
from edge.ocpp.logs_upload import UploadRefused
from edge.ocpp.tls import https_base_url
from edge.web.common import actor_of, error_response, json_object, json_response, public
from edge.web.site import SiteView

CHUNK = 64 * 1024


class SecurityFileRoutes:
    def __init__(self, site: SiteView):
        self.site = site

    def charger_routes(self) -> list[web.AbstractRouteDef]:
        """What chargers reach, with the token in the URL: here, and over HTTPS (edge/web/charger_files.py)."""
        return [
            web.put("/api/v1/uploads/{token}", self.upload), web.post("/api/v1/uploads/{token}", self.upload),
            web.get("/api/v1/firmware/{token}", self.firmware_file),
        ]

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            *self.charger_routes(),
            web.post("/api/v1/security/chargers/{id}/logs", self.get_log),
            web.get("/api/v1/security/logs", self.logs),
            web.get("/api/v1/security/logs/{request_id}/file", self.log_file),
            web.post("/api/v1/security/chargers/{id}/firmware", self.signed_update),
            web.get("/api/v1/security/firmware", self.firmware_list),
            web.post("/api/v1/security/chargers/{id}/renew", self.renew),
            web.get("/api/v1/security/certificates", self.certificates),
            web.get("/api/v1/security/transparency.xml", self.transparency),
            web.post("/api/v1/security/rotate", self.rotate),
            web.get("/api/v1/security/rotate", self.rotation),
        ]

    @property
    def _security(self):
        security = self.site.ocpp.site.security
        if security is None:
            raise web.HTTPServiceUnavailable(text="the security extensions are not wired")
        return security

    def _base_url(self, request: web.Request, body: dict, charger_id: str) -> str:
        """Where the charger is sent to upload or download: the one asked for; else, for a charger connected
        over TLS, the edge's HTTPS port under the name the charger used for wss:// (the server certificate
        names it); else this API's own address (plain HTTP, as the charger's own connection is)."""
        if body.get("base_url"):
            return str(body["base_url"])
        https = self._security.https
        reached = self.site.ocpp.reached_as(charger_id)
        if https is not None and reached is not None and reached[1]:
            url = https_base_url(reached[0], https.bound_port)
            if url is not None:
                return url
        return str(request.url.origin())

    def _charger(self, request: web.Request) -> str:
        charger_id = request.match_info["id"]
        if not self.site.directory.is_known(charger_id):
            raise web.HTTPNotFound(text=f"no charger {charger_id!r} at this site")
        return charger_id

    # -- for chargers ------------------------------------------------------------------

    @public
    async def upload(self, request: web.Request) -> web.Response:
        name = request.headers.get("X-File-Name") or Path(request.query.get("name", "")).name or "log"
        if request.content_length is not None and request.content_length > self._security.logs.max_bytes:
            return error_response(413, f"larger than {self._security.logs.max_bytes} bytes")
        try:
            upload = await self._security.logs.receive(request.match_info["token"], name,
                                                       request.content.iter_chunked(CHUNK))
        except UploadRefused as refused:
            return error_response(refused.status, str(refused))
        return json_response({"stored": upload.file_name, "bytes": upload.size, "sha256": upload.sha256},
                             status=201)

    @public
    async def firmware_file(self, request: web.Request) -> web.StreamResponse:
        path = await self._security.firmware.download(request.match_info["token"])
        if path is None or not path.exists():
            return error_response(404, "unknown firmware URL")
        return web.FileResponse(path, headers={"Content-Type": "application/octet-stream"})

    # -- for the installer -------------------------------------------------------------------

    async def get_log(self, request: web.Request) -> web.Response:
        charger_id = self._charger(request)
        body = await json_object(request, empty_ok=True)
        try:
            request_id, result = await self._security.logs.request(
                charger_id, str(body.get("log_type", "SecurityLog")), self._base_url(request, body, charger_id),
                actor=actor_of(request), reason=str(body.get("reason") or "GetLog")[:200],
                oldest=body.get("oldest"), latest=body.get("latest"))
        except ValueError as exc:
            return error_response(400, str(exc))
        return json_response({"request_id": request_id, **result.as_dict()})

    async def logs(self, request: web.Request) -> web.Response:
        return json_response(await self.site.journal.read(Store.log_requests, request.query.get("charger")))

    async def log_file(self, request: web.Request) -> web.StreamResponse:
        try:
            request_id = int(request.match_info["request_id"])
        except ValueError:
            return error_response(400, "request_id must be an integer")
        rows = [r for r in await self.site.journal.read(Store.log_requests, None, 5000)
                if r["request_id"] == request_id]
        if not rows or not rows[0]["file_name"]:
            return error_response(404, f"no uploaded file for log request {request_id}")
        path = self._security.logs.path_of(rows[0]["charger_id"], rows[0]["file_name"])
        return web.FileResponse(path, headers={
            "Content-Type": "application/octet-stream",
            "Content-Disposition": f'attachment; filename="{rows[0]["file_name"]}"'})

    async def signed_update(self, request: web.Request) -> web.Response:
        charger_id = self._charger(request)
        body = await json_object(request)
        try:
            firmware = Path(str(body["path"])).read_bytes()
            certificate = str(body["signing_certificate"]).encode()
            signature = str(body["signature"])
        except KeyError as missing:
            return error_response(400, f"missing {missing}")
        except OSError as exc:
            return error_response(400, f"cannot read the firmware file: {exc.strerror}: {exc.filename}")
        request_id, result, refusal = await self._security.firmware.offer(
            charger_id, firmware, Path(str(body["path"])).name, certificate, signature,
            self._base_url(request, body, charger_id), retrieve_at=body.get("retrieve_at"),
            actor=actor_of(request), reason=str(body.get("reason") or "SignedUpdateFirmware")[:200],
            manufacturer_roots=str(body["manufacturer_root"]).encode() if body.get("manufacturer_root") else None)
        if refusal is not None or result is None:
            return error_response(422, f"not offered: {refusal}")
        return json_response({"request_id": request_id, **result.as_dict()})

    async def firmware_list(self, request: web.Request) -> web.Response:
        return json_response(await self.site.journal.read(Store.firmware_requests, request.query.get("charger")))

    async def renew(self, request: web.Request) -> web.Response:
        charger_id = self._charger(request)
        result = await self._security.certificates.renew(charger_id, actor=actor_of(request),
                                                         reason="renewal asked for by the installer")
        return json_response(result.as_dict())

    async def certificates(self, request: web.Request) -> web.Response:
        return json_response(await self.site.journal.read(Store.issued_certificates, request.query.get("charger")))

    async def transparency(self, request: web.Request) -> web.Response:
        """The signed meter values of the records (?transaction=ID, ?charger=ID) as the transparency XML."""
        rows = await self.site.journal.read(Store.cdrs, charger_id=request.query.get("charger"))
        wanted = request.query.get("transaction")
        if wanted is not None:
            rows = [r for r in rows if str(r.get("transaction_id")) == wanted]
        return web.Response(text=transparency_xml(rows), content_type="application/xml",
                            headers={"Content-Disposition": 'attachment; filename="signed-meter-values.xml"'})

    async def rotate(self, request: web.Request) -> web.Response:
        body = await json_object(request, empty_ok=True)
        kinds = tuple(body.get("kinds") or ("certificate",))
        if not kinds or any(k not in rot.KINDS for k in kinds):
            return error_response(400, f"kinds: some of {', '.join(rot.KINDS)}")
        chargers = body.get("chargers")
        if chargers is not None and (not isinstance(chargers, list) or
                                     any(not self.site.directory.is_known(str(c)) for c in chargers)):
            return error_response(400, "chargers: a list of this site's charger ids")
        try:
            state = await self._security.rotation.start(kinds, chargers, actor=actor_of(request))
        except RuntimeError as exc:
            return error_response(409, str(exc))
        return json_response(state, status=202)

    async def rotation(self, request: web.Request) -> web.Response:
        return json_response(rot.progress(await self.site.journal.read(Store.rotation_steps, None)))
