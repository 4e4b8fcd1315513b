"""Configuration documents and commands on their way down, and what the site answered."""

from __future__ import annotations

import json
from typing import Any

from cloud.db import Connection
from cloud.db.connection import Row

COLUMNS = ("id, site, kind, version, mode, document, expires_at, created_at, created_by, status, published_at, "
           "acked_at, applied_version, error, result")


def next_version(conn: Connection, site: str, kind: str) -> int:
    """Strictly increasing per site and kind, also with several cloud instances (the upsert locks the row)."""
    row = conn.one("INSERT INTO doc_versions (site, kind, version) VALUES (?, ?, 1) ON CONFLICT (site, kind) "
                   "DO UPDATE SET version = doc_versions.version + 1 RETURNING version", (site, kind))
    assert row is not None
    return int(row["version"])


def create(conn: Connection, *, id: str, site: str, kind: str, versioned: bool, mode: str, document: str,
           expires_at: str | None, now: str, operator: str) -> Row:
    version = next_version(conn, site, kind) if versioned else None
    conn.run(f"INSERT INTO pushes ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', NULL, NULL, NULL, NULL, "
             "NULL)", (id, site, kind, version, mode, document, expires_at, now, operator))
    row = get(conn, site, id)
    assert row is not None
    return row


def get(conn: Connection, site: str, id: str) -> Row | None:
    return conn.one(f"SELECT {COLUMNS} FROM pushes WHERE site = ? AND id = ?", (site, id))


def mark_published(conn: Connection, id: str, now: str) -> None:
    # An ack may have come back before this runs: keep its outcome.
    conn.run("UPDATE pushes SET published_at = COALESCE(published_at, ?), "
             "status = CASE WHEN status = 'pending' THEN 'published' ELSE status END WHERE id = ?", (now, id))


def mark(conn: Connection, id: str, status: str) -> None:
    conn.run("UPDATE pushes SET status = ? WHERE id = ? AND status = 'pending'", (status, id))


def unpublished(conn: Connection, created_before: str, limit: int = 500) -> list[Row]:
    return conn.all(f"SELECT {COLUMNS} FROM pushes WHERE published_at IS NULL AND status = 'pending' "
                    "AND created_at <= ? ORDER BY created_at, id LIMIT ?", (created_before, limit))


def newest_version(conn: Connection, site: str, kind: str) -> Row | None:
    return conn.one(f"SELECT {COLUMNS} FROM pushes WHERE site = ? AND kind = ? AND version IS NOT NULL "
                    "ORDER BY version DESC LIMIT 1", (site, kind))


def latest_by_kind(conn: Connection, site: str) -> dict[str, Row]:
    """Per kind of configuration document: the newest version pushed, and the newest the site applied."""
    rows = conn.all("SELECT kind, max(version) AS pushed, max(CASE WHEN status = 'applied' THEN version END) "
                    "AS applied FROM pushes WHERE site = ? AND version IS NOT NULL GROUP BY kind", (site,))
    return {r["kind"]: r for r in rows}


def listing(conn: Connection, site: str, *, kind: str | None, before: tuple[str, str] | None,
            limit: int) -> list[Row]:
    where, args = ["site = ?"], [site]
    if kind:
        where.append("kind = ?")
        args.append(kind)
    if before:
        where.append("(created_at, id) < (?, ?)")
        args += before
    return conn.all(f"SELECT {COLUMNS} FROM pushes WHERE {' AND '.join(where)} "
                    "ORDER BY created_at DESC, id DESC LIMIT ?", (*args, limit))


def view(row: Row) -> dict[str, Any]:
    """A push as the API shows it."""
    out = dict(row)
    out["document"] = json.loads(row["document"])
    out["result"] = json.loads(row["result"]) if row.get("result") else None
    return out
