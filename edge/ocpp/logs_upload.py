"""GetLog and LogStatusNotification (OCPP 1.6 security whitepaper, use case N01; OCA TC_079).

The edge asks a charger for its diagnostics or security log with GetLog; the remoteLocation is the edge's
own upload URL with a one-time token in it (`/api/v1/uploads/{token}`, edge/web/api/security_files.py):
the charger PUTs (or POSTs) the file there, and it lands in the state directory's uploads/, to be
downloaded through the API (`edgectl security logs --get ID`). Only the token's SHA-256 is kept; a token
takes one upload, within TOKEN_HOURS, of at most MAX_UPLOAD_BYTES. LogStatusNotification's statuses
are kept with the request. An OCPP 2.0.1 station is asked with 2.0.1's GetLog, the same fields (N01),
and its LogStatusNotification is kept the same way (edge/ocpp/v201/services.py).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator

from edge.journal import Store
from edge.ocpp.site import Site, speaks_201

if TYPE_CHECKING:
    from edge.ocpp.commands import CommandResult

log = logging.getLogger(__name__)

TOKEN_HOURS = 24
MAX_UPLOAD_BYTES = 64 * 1024 * 1024
LOG_TYPES = ("DiagnosticsLog", "SecurityLog")
UPLOAD_PATH = "/api/v1/uploads/"
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


class UploadRefused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Upload:
    request_id: int
    charger_id: str
    file_name: str
    size: int
    sha256: str


async def send_either(site: "Site", charger_id: str, action: str, params: dict[str, Any], *, actor: str,
                      reason: str) -> "CommandResult":
    """A request whose parameters (camelCase) are the same in the 1.6 security whitepaper and in 2.0.1
    (GetLog; UpdateFirmware is 1.6's SignedUpdateFirmware): sent as the station's version words it, through
    the same actions log."""
    assert site.commands is not None
    if not speaks_201(site.control, charger_id):
        return await site.commands.send(charger_id, action, params, actor=actor, reason=reason)
    from ocpp.charge_point import camel_to_snake_case
    from ocpp.v201 import call as call201
    name = {"SignedUpdateFirmware": "UpdateFirmware"}.get(action, action)
    payload = getattr(call201, name)(**camel_to_snake_case(params))
    return await site.commands.deliver(charger_id, name, params, payload, actor=actor, reason=reason)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def safe_name(name: str) -> str:
    """A file name from a charger or a URL, made harmless for the state directory (no paths, no dots first)."""
    return _SAFE.sub("_", name).lstrip(".")[:80] or "log"


# -- the shell -------------------------------------------------------------------------------

class LogUploads:
    def __init__(self, site: "Site", directory: Path, *, max_bytes: int = MAX_UPLOAD_BYTES):
        self.site = site
        self.directory = directory
        self.max_bytes = max_bytes

    async def request(self, charger_id: str, log_type: str, base_url: str, *, actor: str, reason: str,
                      oldest: str | None = None, latest: str | None = None) -> tuple[int, "CommandResult"]:
        """GetLog with a fresh one-time upload URL; returns the requestId and the charger's answer."""
        if log_type not in LOG_TYPES:
            raise ValueError(f"log type {log_type!r}: one of {', '.join(LOG_TYPES)}")
        assert self.site.commands is not None
        token = secrets.token_urlsafe(32)
        now = self.site.clock.now()
        request_id = await self.site.journal.write(
            Store.create_log_request, charger_id, log_type, token_hash(token), self.site.clock.now_iso(),
            (now + timedelta(hours=TOKEN_HOURS)).isoformat())
        parameters: dict[str, Any] = {"remoteLocation": base_url.rstrip("/") + UPLOAD_PATH + token}
        if oldest:
            parameters["oldestTimestamp"] = oldest
        if latest:
            parameters["latestTimestamp"] = latest
        params = {"logType": log_type, "requestId": request_id, "log": parameters}
        result = await send_either(self.site, charger_id, "GetLog", params, actor=actor, reason=reason)
        return request_id, result

    async def status(self, charger_id: str, request_id: int | None, status: str) -> None:
        known = await self.site.journal.write(Store.log_request_status, charger_id, request_id, status,
                                              self.site.clock.now_iso())
        level = logging.WARNING if status in ("BadMessage", "NotSupportedOperation", "PermissionDenied",
                                              "UploadFailure") else logging.INFO
        log.log(level, "log upload charger=%s request=%s status=%s%s", charger_id, request_id, status,
                "" if known or request_id is None else " (no such request)")

    async def receive(self, token: str, name: str, chunks: AsyncIterator[bytes]) -> Upload:
        """Streams one upload to uploads/<charger>/<request>-<name>, refusing it past max_bytes, for a token
        that is known, unspent and not expired. Written beside and renamed: a cut-off upload leaves nothing."""
        found = await self.site.journal.read(Store.open_log_request, token_hash(token),
                                             self.site.clock.now().isoformat())
        if found is None:
            raise UploadRefused(404, "unknown, used or expired upload URL")
        request_id, charger_id = found
        folder = self.directory / safe_name(charger_id)
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"{request_id}-{safe_name(name)}"
        partial = final.with_name(final.name + ".part")
        digest, size = hashlib.sha256(), 0
        try:
            with open(partial, "wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise UploadRefused(413, f"larger than {self.max_bytes} bytes")
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if final.exists():
                raise UploadRefused(409, "this upload URL was used already")
            # The file first, then the record: a record never names a file that is not there.
            os.replace(partial, final)
            at = self.site.clock.now_iso()
            if not await self.site.journal.write(Store.log_uploaded, request_id, final.name, size,
                                                 digest.hexdigest(), at):
                final.unlink(missing_ok=True)
                raise UploadRefused(409, "this upload URL was used already")
        finally:
            partial.unlink(missing_ok=True)
        log.info("log uploaded charger=%s request=%s file=%s bytes=%d", charger_id, request_id, final.name, size)
        return Upload(request_id, charger_id, final.name, size, digest.hexdigest())

    def path_of(self, charger_id: str, file_name: str) -> Path:
        return self.directory / safe_name(charger_id) / safe_name(file_name)
