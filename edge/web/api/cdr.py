"""Local API routes for charge records: list, one record and its revisions, CSV export, and the
quarantine (transactions whose record could not be made) with its retry. Lists and the export
give the latest revision of each transaction (`?revisions=all`: every revision).
Registered through edge/web/server.py's ROUTES (one app, one token check)."""

from __future__ import annotations

import json
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from edge.web.site import SiteView
from edge.web.common import MAX_LIMIT, error_response, int_query, json_object, json_response
from edge.cdr.export import range_bound, to_csv, to_items_csv
from edge.cdr.plausibility import STATUSES
from edge.journal import Store


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")


class CdrRoutes:
    def __init__(self, site: SiteView):
        self.edge = site

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.get("/api/v1/cdrs", self.list),
            web.get("/api/v1/cdrs/export", self.export),
            web.get("/api/v1/cdrs/quarantine", self.quarantine),
            web.post("/api/v1/cdrs/quarantine/retry", self.retry),
            web.get("/api/v1/cdrs/{id}/revisions", self.revisions),
            web.get("/api/v1/cdrs/{id}", self.one),
        ]

    def _filters(self, request: web.Request) -> dict[str, Any]:
        """The query's filters, or a 400 naming the bad one."""
        query, tz = request.query, ZoneInfo(self.edge.config.site.timezone)
        status = query.get("status") or None
        if status is not None and status not in STATUSES:
            raise _bad_request(f"status={status!r}: use one of {', '.join(STATUSES)}")
        try:
            since, until = range_bound(query.get("from"), tz, end=False), range_bound(query.get("to"), tz, end=True)
        except ValueError as exc:
            raise _bad_request(f"from/to: {exc}") from None
        revisions = query.get("revisions") or "latest"
        if revisions not in ("latest", "all"):
            raise _bad_request(f"revisions={revisions!r}: use latest (the default) or all")
        return {"since": since, "until": until, "charger_id": query.get("charger") or None,
                "user_group": query.get("user_group") or None, "status": status,
                "all_revisions": revisions == "all"}

    async def list(self, request: web.Request) -> web.Response:
        limit = int_query(request, "limit", 1000, MAX_LIMIT)
        rows = await self.edge.journal.read(Store.cdrs, **self._filters(request), limit=limit,
                                            after_seq=int_query(request, "after", None),
                                            newest_first=request.query.get("newest") == "1")
        return json_response(rows)

    async def one(self, request: web.Request) -> web.Response:
        rows = await self.edge.journal.read(Store.cdrs, cdr_id=request.match_info["id"], limit=1)
        if not rows:
            return error_response(404, f"no charge record {request.match_info['id']!r}")
        return json_response(rows[0])

    async def revisions(self, request: web.Request) -> web.Response:
        """Every record of the transaction of record {id}, first to latest (credit the superseded, bill the latest)."""
        rows = await self.edge.journal.read(Store.cdr_revisions, request.match_info["id"])
        if not rows:
            return error_response(404, f"no charge record {request.match_info['id']!r}")
        return json_response(rows)

    async def export(self, request: web.Request) -> web.Response:
        rows = await self.edge.journal.read(Store.cdrs, **self._filters(request))
        # ?items=1: one row per price component (the invoice lines) instead of one per record.
        write = to_items_csv if request.query.get("items") == "1" else to_csv
        return web.Response(text=write(rows, ZoneInfo(self.edge.config.site.timezone)), content_type="text/csv",
                            headers={"Content-Disposition": 'attachment; filename="charge-records.csv"'})

    async def quarantine(self, request: web.Request) -> web.Response:
        """Completed transactions whose record could not be made, with the error."""
        return json_response(await self.edge.journal.read(Store.cdr_quarantine))

    async def retry(self, request: web.Request) -> web.Response:
        """Body (optional): {"transaction_id": N}; without it every quarantined record is tried again."""
        transaction_id = (await json_object(request, empty_ok=True)).get("transaction_id")
        if transaction_id is not None and (isinstance(transaction_id, bool) or not isinstance(transaction_id, int)):
            raise _bad_request(f"transaction_id: {transaction_id!r} is not a transaction id")
        outcomes = await self.edge.charge_records.retry(transaction_id)
        if transaction_id is not None and not outcomes:
            return error_response(404, f"transaction {transaction_id} is not in quarantine")
        return json_response(outcomes)
