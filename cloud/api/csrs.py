"""Chargers' CSRs a site sent up to be signed with the operator's CA, and what became of each
(cloud/certificates.py; docs/security.md, "Signed in the cloud")."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from cloud.api.common import ApiError, db, limit_of, site_or_404
from cloud.store import certificates, pushes

_opt_str = {"type": ["string", "null"]}
_time = {"type": ["string", "null"], "description": "ISO 8601 UTC"}

SCHEMAS: dict[str, dict[str, Any]] = {
    "Csr": {"type": "object", "description": "a charger's CSR the site sent up, and what the cloud made of it",
            "required": ["charger_id", "csr_sha256", "status", "delivery"], "properties": {
                "charger_id": {"type": "string"},
                "csr_sha256": {"type": "string", "description": "SHA-256 of the CSR (PEM) as the charger sent it"},
                "requested_at": {**_time, "description": "when the charger sent it (site time)"},
                "received_at": _time,
                "status": {"enum": list(certificates.STATUSES),
                           "description": "pending: to be signed; issued: signed (serial, not_after); refused: not "
                                          "signed (error says why); resend: the site asked again, the same answer "
                                          "goes again"},
                "error": {**_opt_str, "description": "why it was refused"},
                "serial": {**_opt_str, "description": "the certificate's serial number (hex)"},
                "not_after": _time, "settled_at": _time,
                "push_id": {**_opt_str, "description": "the certificate push that carries the answer down"},
                "delivery": {"enum": ["none", "pending", "published", "acked", "rejected", "expired"],
                             "description": "how far that push got (acked: the site has it)"},
                "push_status": {**_opt_str, "description": "the site's ack of the push: done (kept for the "
                                                          "charger), ignored or rejected (with its error in the push)"},
                "delivered_at": {**_time, "description": "when the site acknowledged the push"},
                "answer": {**_opt_str, "description": "what the charger said to CertificateSigned (Accepted, "
                                                     "Rejected, ...); null: not sent to it yet"},
                "answered_at": _time}},
    "CsrList": {"type": "object", "required": ["items"],
                "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Csr"},
                                         "description": "newest first"}}},
}


async def list_csrs(request: web.Request) -> web.Response:
    site = (await site_or_404(request))["id"]
    status = request.query.get("status")
    if status is not None and status not in certificates.STATUSES:
        raise ApiError(400, f"status={status!r}: one of {', '.join(certificates.STATUSES)}")
    charger, limit = request.query.get("charger"), limit_of(request)
    rows = await db(request).read(lambda conn: certificates.listing(conn, site, status=status, charger=charger,
                                                                    limit=limit))
    items = [{**row, "delivery": pushes.DELIVERY.get(row["push_status"], "none") if row["push_status"] else "none"}
             for row in rows]
    return web.json_response({"items": items})
