"""The OpenAPI 3.1 document, built from the route table (cloud/api/routes.py)."""

from __future__ import annotations

import functools
import re
from typing import Any

from pydantic import TypeAdapter

from cloud.api import csrs
from cloud.api.routes import PARAMETERS, ROUTES
from contract.v1 import DOWN_KINDS
from edge.cdr.record import Cdr

_obj = {"type": "object"}
_str = {"type": "string"}
_int = {"type": "integer"}
_time = {"type": ["string", "null"], "description": "ISO 8601 UTC"}
_opt_int = {"type": ["integer", "null"]}
_opt_str = {"type": ["string", "null"]}
_phases = {"type": "array", "items": {"type": "number"}, "minItems": 3, "maxItems": 3,
           "description": "per site phase: L1, L2, L3"}
_opt_phases = {"oneOf": [_phases, {"type": "null"}]}


def _without_titles(schema: Any) -> Any:
    """pydantic's schema without its generated titles ("Energy Kwh"): the field names say it."""
    if isinstance(schema, dict):
        return {k: _without_titles(v) for k, v in schema.items() if k != "title"}
    if isinstance(schema, list):
        return [_without_titles(v) for v in schema]
    return schema


def _cdr_schema() -> dict[str, Any]:
    """The record as the edge makes it (edge/cdr/record.py, one source for both), plus what the cloud adds."""
    schema = _without_titles(TypeAdapter(Cdr).json_schema())
    schema["description"] = ("a charge detail record as the edge sent it (docs/charge-records.md: amounts are "
                             "decimal strings, times ISO 8601 UTC), plus received_at and superseded_by")
    schema["properties"] |= {"received_at": {**_time, "description": "when the cloud stored it"},
                             "superseded_by": {**_opt_str, "description": "the id of the revision that replaces "
                                                                          "it; null: this is the latest"}}
    schema.pop("required", None)   # a record from an older edge may lack the newer fields
    return schema


def _page(item: str) -> dict[str, Any]:
    return {"type": "object", "required": ["items", "next_cursor"], "properties": {
        "items": {"type": "array", "items": {"$ref": f"#/components/schemas/{item}"}},
        "next_cursor": {"type": ["string", "null"],
                        "description": "pass as cursor= for the next page; null: this is the last page"}}}


_SESSION = {"type": "object", "description": "a charging session (transaction) as the site reported it", "properties": {
    "session_id": {**_str, "description": "the edge's transaction id"}, "charger_id": _str,
    "connector_id": _opt_int, "id_tag": _opt_str, "started_at": _time, "stopped_at": _time,
    "meter_start_wh": _opt_int, "meter_stop_wh": _opt_int,
    "energy_wh": {**_opt_int, "description": "meter_stop_wh - meter_start_wh; null while active"},
    "stop_reason": {**_opt_str, "description": "the charger's OCPP reason"},
    "status": {"enum": ["active", "stopped"]}}}

_TELEMETRY = {"type": "object", "description": "one telemetry interval of the site", "properties": {
    "at": _time,
    "seq": {**_int, "description": "the message's seq; for a 1-minute aggregate the last seq folded in"},
    "resolution": {"enum": ["raw", "1m"], "description": "raw: as the site sent it (kept CLOUD_TELEMETRY_RAW_DAYS); "
                   "1m: a 1-minute aggregate of older points (kept CLOUD_TELEMETRY_AGGREGATE_DAYS)"},
    "points": {**_int, "description": "1m only: how many raw points the aggregate folds"},
    "values": {"type": "object", "properties": {
        "interval_s": {"type": "number"}, "samples": {**_int, "description": "samples taken in the interval"},
        "circuits": {"type": "array", "items": {"type": "object", "properties": {
            "id": _str, "failsafe": {"type": "boolean", "description": "the circuit's meter was lost in it"},
            "limit_a": _phases, "current_max_a": _opt_phases, "current_mean_a": _opt_phases,
            "allocated_a": {**_phases, "description": "what the cars were given, per site phase"},
            "power_mean_w": _opt_phases, "import_wh": {"type": ["number", "null"]},
            "export_wh": {"type": ["number", "null"]}}}}}}}}

_ALERT = {"type": "object", "description": "an alert the site raised (docs/sync-protocol.md lists each type)",
          "properties": {
              "id": {**_str, "description": "the message id"}, "seq": _int, "at": _time,
              "type": {**_str, "examples": ["alert.fault", "alert.failsafe", "alert.over_limit", "alert.over_fuse",
                                            "alert.uncontrollable", "alert.outbox_dropped", "alert.cdr_quarantined",
                                            "alert.part_failed", "alert.recovery", "alert.config_invalid",
                                            "alert.security_event", "alert.station_problem"]},
              "charger_id": _opt_str,
              "body": {"type": "object", "description": "by type, e.g. alert.failsafe {circuit, active}; "
                                                        "alert.over_fuse {circuit, phase, active, limit, since, "
                                                        "ended, lasted_s, peak, excess_as, window_s, done}"}}}

SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": {"type": "object", "properties": {"error": _str}, "required": ["error"]},
    "Health": {"type": "object", "properties": {"status": {"enum": ["ok", "degraded"]},
                                                "mqtt_connected": {"type": "boolean"},
                                                "database_reachable": {"type": "boolean"},
                                                "instance": {"type": "string", "description": "its MQTT client id"},
                                                "ingest_waiting": {"type": "integer",
                                                                   "description": "messages received, not stored yet"},
                                                "ingest_workers": {"type": "integer"}}},
    "Site": {"type": "object", "properties": {
        "id": _str, "online": {"type": ["boolean", "null"], "description": "null: no birth or will seen yet"},
        "state_at": _time, "last_seen": _time, "first_seen": _time, "software_version": {"type": ["string", "null"]},
        "backlog": {"type": "object", "additionalProperties": {"type": "integer"},
                    "description": "undelivered messages per stream, as the site's last birth message said"}}},
    "SiteList": {"type": "object", "properties": {"items": {"type": "array",
                                                            "items": {"$ref": "#/components/schemas/Site"}}}},
    "SiteDetail": {"allOf": [{"$ref": "#/components/schemas/Site"}, {"type": "object", "properties": {
        "streams": {"type": "object", "additionalProperties": {"type": "object", "properties": {
            "last_seq": {"type": "integer"}, "received": {"type": "integer"}, "missing": {"type": "integer"},
            "last_received_at": _time,
            "gaps": {"type": "array", "items": {"type": "array", "items": {"type": "integer"}},
                     "description": "[first, last] seq ranges not received (yet)"}}}},
        "rejected": {"type": "object", "additionalProperties": {"type": "object", "properties": {
            "count": {"type": "integer"}, "last_at": _time, "last_error": _str}},
            "description": "messages from this site refused, per reason (schema, not_json, too_large, version, "
                           "site_mismatch, ...)"},
        "chargers": {"type": "integer"}, "active_sessions": {"type": "integer"},
        "config": {"type": "object", "additionalProperties": {"type": "object", "properties": {
            "pushed_version": {"type": "integer"}, "applied_version": {"type": ["integer", "null"]}}}}}}]},
    "ChargerList": {"type": "object", "properties": {"items": {"type": "array", "items": {
        "type": "object", "properties": {
        "id": _str, "connection_status": {"type": ["string", "null"],
                                          "description": "Available, TemporarilyUnavailable, LongTermUnavailable"},
        "connection_at": _time, "vendor": {"type": ["string", "null"]}, "model": {"type": ["string", "null"]},
        "serial_number": {"type": ["string", "null"]}, "firmware_version": {"type": ["string", "null"]},
        "booted_at": _time, "first_seen": _time, "last_status_at": _time,
        "faulted": {"type": "boolean", "description": "a connector is Faulted or reports an error code"},
        "connectors": {"type": "array", "items": {"type": "object", "properties": {
            "connector_id": {"type": "integer"}, "status": {"type": ["string", "null"]},
            "error_code": {"type": ["string", "null"]}, "info": {"type": ["string", "null"]}, "at": _time}}}}}}}},
    "Session": _SESSION,
    "SessionPage": _page("Session"),
    "Cdr": _cdr_schema(),
    "CdrPage": _page("Cdr"),
    "TelemetryPoint": _TELEMETRY,
    "TelemetryPage": _page("TelemetryPoint"),
    "Alert": _ALERT,
    "AlertPage": _page("Alert"),
    "PushPage": _page("Push"),
    "CdrRevisions": {"type": "object", "properties": {
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Cdr"},
                  "description": "first to latest"}}},
    "DocumentPush": {"type": "object", "required": ["document"], "properties": {
        "document": {"type": "object", "description": "the configuration document, as the edge's config takes it"},
        "mode": {"enum": ["full", "diff"], "default": "full"}}},
    "CommandPush": {"type": "object", "required": ["document"], "properties": {
        "document": {"type": "object", "description": "the command (charger, action, parameters) for the edge"},
        "expires_in_s": {"type": "number", "minimum": 1, "default": 300}}},
    "Push": {"type": "object", "properties": {
        "id": _str, "site": _str, "kind": {"enum": list(DOWN_KINDS)}, "version": {"type": ["integer", "null"]},
        "mode": _str, "document": _obj, "expires_at": _time, "created_at": _time, "created_by": _str,
        "status": {"enum": ["pending", "published", "applied", "ignored", "rejected", "done", "failed", "expired",
                            "superseded"],
                   "description": "pending: not yet at the broker; published: at the broker, no answer from the "
                                  "site yet (sent again until it answers); then the site's answer"},
        "delivery": {"enum": ["pending", "published", "acked", "rejected", "expired", "superseded"],
                     "description": "how far it got: acked only once the site answered, never on the broker's word"},
        "sent_count": {"type": "integer"}, "last_sent_at": _time,
        "published_at": _time, "acked_at": _time, "applied_version": {"type": ["integer", "null"]},
        "error": {"type": ["string", "null"]}, "result": {"type": ["object", "null"]}}},
    **csrs.SCHEMAS,
    "ConfigState": {"type": "object", "properties": {
        "kind": _str, "latest": {"oneOf": [{"$ref": "#/components/schemas/Push"}, {"type": "null"}]},
        "applied_version": {"type": ["integer", "null"]}}},
}

_ERRORS = {400: "bad request (the message says which parameter and why)", 401: "missing or unknown bearer token",
           404: "no such site for this token (another operator's site answers the same)",
           413: "the document is larger than the contract allows",
           422: "the Idempotency-Key was used before with another request"}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _operation(route: Any) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": route.summary,
        "operationId": re.sub(r"[^A-Za-z0-9]+", "_", f"{route.method.lower()}{route.path}").strip("_"),
        "parameters": [{"name": PARAMETERS[p].get("name", p),
                        **{k: v for k, v in PARAMETERS[p].items() if k != "name"}} for p in route.params],
    }
    content: dict[str, Any] = {"application/json": {"schema": _ref(route.response) if route.response else _obj}}
    if "format" in route.params:
        content["text/csv"] = {"schema": _str}
    op["responses"] = {str(route.status): {"description": "success", "content": content}}
    for status in route.errors:
        op["responses"][str(status)] = {"description": _ERRORS[status],
                                        "content": {"application/json": {"schema": _ref("Error")}}}
    if route.body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(route.body)}}}
    op["security"] = [] if route.public else [{"bearer": []}]
    return op


@functools.cache
def document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Site controller cloud API", "version": "1",
                 "description": "Sites, chargers, sessions, charge records and telemetry synced from the sites' "
                                "edges; configuration and commands pushed down. Each operator's token sees only "
                                "that operator's sites. See docs/cloud.md."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {"schemas": SCHEMAS,
                       "securitySchemes": {"bearer": {
                           "type": "http", "scheme": "bearer",
                           "description": "an API token from `python -m cloud tokens add`"}}},
        "security": [{"bearer": []}],
    }
