"""Sessions, charge detail records (JSON and CSV), telemetry, alerts: filtered, cursor-paginated.

A corrected session has several charge records (revisions, each superseding the one before):
lists and the CSV give the latest of each session unless ?revisions=all; /cdrs/{id}/revisions
gives the history."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web

from cloud.api.common import ApiError, cursor_of, db, limit_of, page, site_or_404, time_filter
from cloud.store import views
from contract.cdr_csv import COLUMNS
from contract.spreadsheet import safe_row

SESSION_STATUSES = ("active", "stopped")
CDR_STATUSES = ("Successful", "Error", "Exclusion", "Failed")
CSV_PAGE = 1000


async def sessions(request: web.Request) -> web.Response:
    site = (await site_or_404(request))["id"]
    flt, limit = time_filter(request, statuses=SESSION_STATUSES), limit_of(request)
    rows = await db(request).read(views.sessions, site, flt, cursor_of(request, (str, str)), limit + 1)
    return web.json_response(page(rows, limit, lambda r: [r["sort_at"], r["session_id"]],
                                  lambda r: {k: v for k, v in r.items() if k != "sort_at"}))


def _cdr_view(row: dict[str, Any]) -> dict[str, Any]:
    return _record(row) | {"received_at": row["received_at"], "superseded_by": row["superseded_by"]}


def _record(row: dict[str, Any]) -> dict[str, Any]:
    """The record as the edge sent it; its revision links as stored (a body from before revisions has none)."""
    return json.loads(row["body"]) | {"revision": row["revision"], "supersedes": row["supersedes"]}


def _revisions(request: web.Request) -> bool:
    value = request.query.get("revisions") or "latest"
    if value not in ("latest", "all"):
        raise ApiError(400, f"revisions={value!r}: latest (the default) or all")
    return value == "all"


async def cdrs(request: web.Request) -> web.StreamResponse:
    site = (await site_or_404(request))["id"]
    flt = replace(time_filter(request, statuses=CDR_STATUSES), all_revisions=_revisions(request))
    fmt = request.query.get("format", "json")
    if fmt == "csv":
        return await _cdrs_csv(request, site, flt)
    if fmt != "json":
        raise ApiError(400, f"format={fmt!r}: json or csv")
    limit = limit_of(request)
    rows = await db(request).read(views.cdrs, site, flt, cursor_of(request, (str, str)), limit + 1)
    return web.json_response(page(rows, limit, lambda r: [r["start_time"], r["id"]], _cdr_view))


def _zone(name: Any) -> ZoneInfo:
    try:
        return ZoneInfo(name) if isinstance(name, str) and name else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


async def _cdrs_csv(request: web.Request, site: str, flt: views.Filter) -> web.StreamResponse:
    """Every matching record (the latest revision of each session unless ?revisions=all), oldest
    first, in the edge's CSV columns (docs/charge-records.md, `revision` among them); times in each
    record's site time zone, as the edge writes them. Streamed page by page."""
    response = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="cdrs-{site}.csv"'})
    await response.prepare(request)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([name for name, _ in COLUMNS])
    cursor = None
    while True:
        rows = await db(request).read(views.cdrs, site, flt, cursor, CSV_PAGE, True)
        for row in rows:
            record = _record(row)
            zone = _zone(record.get("timezone"))
            # What a charger or a user typed (an id tag, a reason) must not become a live formula.
            writer.writerow(safe_row(_cell(get, record, zone) for _, get in COLUMNS))
        await response.write(out.getvalue().encode())
        out.seek(0)
        out.truncate()
        if len(rows) < CSV_PAGE:
            break
        cursor = [rows[-1]["start_time"], rows[-1]["id"]]
    await response.write_eof()
    return response


def _cell(get: Any, record: dict[str, Any], zone: ZoneInfo) -> str:
    try:
        return get(record, zone)
    except (KeyError, TypeError, ValueError):     # a field the edge did not send, or of another type
        return ""


async def cdr(request: web.Request) -> web.Response:
    site = (await site_or_404(request))["id"]
    row = await db(request).read(views.cdr, site, request.match_info["id"])
    if row is None:
        raise ApiError(404, f"no charge record {request.match_info['id']!r} at site {site!r}")
    return web.json_response(_cdr_view(row))


async def cdr_revisions(request: web.Request) -> web.Response:
    site = (await site_or_404(request))["id"]
    rows = await db(request).read(views.cdr_revisions, site, request.match_info["id"])
    if not rows:
        raise ApiError(404, f"no charge record {request.match_info['id']!r} at site {site!r}")
    return web.json_response({"items": [_cdr_view(r) for r in rows]})


async def telemetry(request: web.Request) -> web.Response:
    site = (await site_or_404(request))["id"]
    flt, limit = time_filter(request), limit_of(request)
    rows = await db(request).read(views.telemetry_points, site, flt, cursor_of(request, (str, int)), limit + 1)
    return web.json_response(page(rows, limit, lambda r: [r["at"], r["seq"]], _point_view))


def _point_view(row: dict[str, Any]) -> dict[str, Any]:
    """A point as the site sent it, or beyond the raw retention a minute's aggregate of `points`
    points (`resolution` says which; `seq` is then the last seq folded in)."""
    point = {"at": row["at"], "seq": row["seq"], "values": json.loads(row["body"])}
    if row["points"] is None:
        return point | {"resolution": "raw"}
    return point | {"resolution": "1m", "points": row["points"]}


async def alerts(request: web.Request) -> web.Response:
    site = (await site_or_404(request))["id"]
    flt, limit = time_filter(request), limit_of(request)
    rows = await db(request).read(views.alerts, site, flt, cursor_of(request, (str, str)), limit + 1)
    return web.json_response(page(rows, limit, lambda r: [r["at"], r["message_id"]], _alert_view))


def _alert_view(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["message_id"], "seq": row["seq"], "at": row["at"], "type": row["type"],
            "charger_id": row["charger_id"], "body": json.loads(row["body"])}
