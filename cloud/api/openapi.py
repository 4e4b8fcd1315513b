"""The OpenAPI 3.1 document, built from the route table (cloud/api/routes.py)."""

from __future__ import annotations

import functools
import re
from typing import Any

from cloud.api.routes import PARAMETERS, ROUTES
from contract.v1 import DOWN_KINDS

_obj = {"type": "object"}
_str = {"type": "string"}
_time = {"type": ["string", "null"], "description": "ISO 8601 UTC"}

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
    "Page": {"type": "object", "properties": {
        "items": {"type": "array", "items": _obj},
        "next_cursor": {"type": ["string", "null"],
                        "description": "pass as cursor= for the next page; null: this is the last page"}}},
    "Cdr": {"type": "object", "description": "the edge's charge detail record as it sent it (docs/charge-records.md), "
                                             "plus received_at and superseded_by (the id of the revision that "
                                             "replaces it; null: the latest)",
            "properties": {"revision": {"type": "integer", "minimum": 1},
                           "supersedes": {"type": ["string", "null"]},
                           "superseded_by": {"type": ["string", "null"]}}},
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
