"""The route table: every route once, with what the OpenAPI document says about it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from aiohttp import web

from cloud.api import csrs, meta, pushes, records, sites

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Parameters by name, for the OpenAPI document.
PARAMETERS: dict[str, dict[str, Any]] = {
    "site": {"in": "path", "required": True, "schema": {"type": "string"}, "description": "site id"},
    "kind": {"in": "path", "required": True, "schema": {"type": "string", "enum": ["auth", "tariffs", "limits"]},
             "description": "which configuration document"},
    "id": {"in": "path", "required": True, "schema": {"type": "string"}},
    "from": {"in": "query", "schema": {"type": "string"},
             "description": "inclusive start: a date (2026-03-01, midnight UTC) or a time (2026-03-01T08:00:00Z; "
                            "without offset: UTC)"},
    "to": {"in": "query", "schema": {"type": "string"},
           "description": "exclusive end: a date includes that whole day (UTC)"},
    "charger": {"in": "query", "schema": {"type": "string"}, "description": "only this charger"},
    "limit": {"in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}},
    "cursor": {"in": "query", "schema": {"type": "string"},
               "description": "next_cursor of the previous page; keep the other parameters the same"},
    "session_status": {"name": "status", "in": "query", "schema": {"type": "string", "enum": ["active", "stopped"]}},
    "cdr_status": {"name": "status", "in": "query",
                   "schema": {"type": "string", "enum": ["Successful", "Error", "Exclusion", "Failed"]},
                   "description": "plausibility status of the record"},
    "alert_type": {"name": "status", "in": "query", "schema": {"type": "string"},
                   "description": "only alerts of this type (e.g. alert.failsafe)"},
    "format": {"in": "query", "schema": {"type": "string", "enum": ["json", "csv"], "default": "json"},
               "description": "csv: every matching record, oldest first, in the edge's CSV columns "
                              "(cursor and limit do not apply)"},
    "revisions": {"in": "query", "schema": {"type": "string", "enum": ["latest", "all"], "default": "latest"},
                  "description": "latest: only the latest revision of each session's record; all: every "
                                 "revision (a corrected session's record comes again, superseding the one before)"},
    "idempotency_key": {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string", "maxLength": 255},
                        "description": "the same key with the same request within a day: the first request's push "
                                       "again (Idempotent-Replayed: true), never a second push; with another "
                                       "request: 422"},
    "csr_status": {"name": "status", "in": "query",
                   "schema": {"type": "string", "enum": ["pending", "resend", "issued", "refused"]}},
    "push_kind": {"name": "kind", "in": "query",
                  "schema": {"type": "string", "enum": ["auth", "tariffs", "limits", "command"]}},
}


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    params: tuple[str, ...] = ()
    body: str | None = None                  # name of a request body schema (components/schemas)
    response: str | None = None              # name of the success response schema
    status: int = 200
    public: bool = False                     # no bearer token needed
    errors: tuple[int, ...] = field(default=(401, 404))


PAGE = ("from", "to", "limit", "cursor")

ROUTES: tuple[Route, ...] = (
    Route("GET", "/api/openapi.json", meta.openapi, "This OpenAPI document", public=True, errors=()),
    Route("GET", "/api/v1/health", meta.health, "Is this instance connected to the broker and the database",
          public=True, response="Health", errors=()),
    Route("GET", "/api/v1/sites", sites.list_sites, "The caller's sites: online, last seen, software, backlog",
          response="SiteList", errors=(401,)),
    Route("GET", "/api/v1/sites/{site}", sites.site, "One site, with its streams (last seq, missing, gaps), "
          "rejected messages and configuration versions", ("site",), response="SiteDetail"),
    Route("GET", "/api/v1/sites/{site}/chargers", sites.chargers, "Chargers, their connection and connector status",
          ("site",), response="ChargerList"),
    Route("GET", "/api/v1/sites/{site}/sessions", records.sessions, "Charging sessions, newest first",
          ("site", *PAGE, "charger", "session_status"), response="SessionPage", errors=(400, 401, 404)),
    Route("GET", "/api/v1/sites/{site}/cdrs", records.cdrs, "Charge detail records (the latest revision of each "
          "session), newest first; or CSV", ("site", *PAGE, "charger", "cdr_status", "revisions", "format"),
          response="CdrPage", errors=(400, 401, 404)),
    Route("GET", "/api/v1/sites/{site}/cdrs/{id}", records.cdr, "One charge detail record (any revision), with "
          "superseded_by", ("site", "id"), response="Cdr"),
    Route("GET", "/api/v1/sites/{site}/cdrs/{id}/revisions", records.cdr_revisions, "Every revision of the "
          "record's session, first to latest (credit the superseded, bill the latest)", ("site", "id"),
          response="CdrRevisions"),
    Route("GET", "/api/v1/sites/{site}/telemetry", records.telemetry, "Site telemetry points, oldest first",
          ("site", *PAGE), response="TelemetryPage", errors=(400, 401, 404)),
    Route("GET", "/api/v1/sites/{site}/alerts", records.alerts, "Alerts (faults, meter lost, failsafe, ...), "
          "newest first", ("site", *PAGE, "charger", "alert_type"), response="AlertPage", errors=(400, 401, 404)),
    Route("POST", "/api/v1/sites/{site}/config/{kind}", pushes.post_config, "Push a configuration document "
          "(next version; retained on down/{kind})", ("site", "kind", "idempotency_key"), body="DocumentPush",
          response="Push", status=202, errors=(400, 401, 404, 413, 422)),
    Route("GET", "/api/v1/sites/{site}/config/{kind}", pushes.get_config, "The newest version pushed and the "
          "version the site applied", ("site", "kind"), response="ConfigState"),
    Route("POST", "/api/v1/sites/{site}/commands", pushes.post_command, "Send a charger command (not retained, "
          "expires)", ("site", "idempotency_key"), body="CommandPush", response="Push", status=202,
          errors=(400, 401, 404, 413, 422)),
    Route("GET", "/api/v1/sites/{site}/pushes", pushes.list_pushes, "Documents and commands sent, newest first, "
          "with the site's answer", ("site", "limit", "cursor", "push_kind"), response="PushPage",
          errors=(400, 401, 404)),
    Route("GET", "/api/v1/sites/{site}/pushes/{id}", pushes.get_push, "One push and its outcome (the site's ack)",
          ("site", "id"), response="Push"),
    Route("GET", "/api/v1/sites/{site}/csrs", csrs.list_csrs, "Chargers' CSRs the site sent to be signed with the "
          "operator's CA: pending, issued or refused (why), and the charger's answer", ("site", "csr_status",
                                                                                          "charger", "limit"),
          response="CsrList", errors=(400, 401, 404)),
)

PUBLIC_PATHS = frozenset(r.path for r in ROUTES if r.public)


def add_routes(app: web.Application) -> None:
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.handler)
