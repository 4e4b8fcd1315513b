"""Configuration documents and commands on their way down, and what the site answered."""

from __future__ import annotations

import json
from typing import Any

from cloud.db import Connection
from cloud.db.connection import Row

COLUMNS = ("id, site, kind, version, mode, document, expires_at, created_at, created_by, status, published_at, "
           "acked_at, applied_version, error, result, sent_count, last_sent_at")
# Sent, or to be sent, and not answered by the site yet.
OPEN = ("pending", "published")
# What the API shows as `delivery`: how far a push got, from its status.
DELIVERY = {"pending": "pending", "published": "published", "applied": "acked", "done": "acked",
            "ignored": "acked", "failed": "acked", "rejected": "rejected", "expired": "expired",
            "superseded": "superseded"}


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
             "NULL, 0, NULL)", (id, site, kind, version, mode, document, expires_at, now, operator))
    row = get(conn, site, id)
    assert row is not None
    return row


class KeyReused(Exception):
    """An Idempotency-Key that came before with another request."""


def create_once(conn: Connection, *, key: str | None, operator: str, request_hash: str, **push: Any) -> Row:
    """create(), or with an Idempotency-Key that came before with the same request, the push that
    request made. The key is claimed first, in the same transaction: of two requests racing with one
    key (two instances), the second waits on the first's row and then finds its push."""
    if key is not None:
        claimed = conn.run("INSERT INTO idempotency_keys (operator, key, request_hash, push_id, created_at) "
                           "VALUES (?, ?, ?, ?, ?) ON CONFLICT (operator, key) DO NOTHING",
                           (operator, key, request_hash, push["id"], push["now"]))
        if not claimed:
            first = conn.one("SELECT request_hash, push_id FROM idempotency_keys WHERE operator = ? AND key = ?",
                             (operator, key))
            assert first is not None
            if first["request_hash"] != request_hash:
                raise KeyReused(key)
            row = get(conn, push["site"], first["push_id"])
            assert row is not None
            return {**row, "replayed": True}
    return create(conn, operator=operator, **push)


def prune_idempotency_keys(conn: Connection, before: str) -> int:
    return conn.run("DELETE FROM idempotency_keys WHERE created_at < ?", (before,))


def get(conn: Connection, site: str, id: str) -> Row | None:
    return conn.one(f"SELECT {COLUMNS} FROM pushes WHERE site = ? AND id = ?", (site, id))


def mark_published(conn: Connection, id: str, now: str) -> None:
    """The broker has it (PUBACK): that is not delivery (a broker can lose it), only a step;
    the push stays open until the site's ack. An ack may have come back before this runs: keep it."""
    conn.run("UPDATE pushes SET published_at = COALESCE(published_at, ?), last_sent_at = ?, "
             "sent_count = sent_count + 1, "
             "status = CASE WHEN status = 'pending' THEN 'published' ELSE status END WHERE id = ?", (now, now, id))


def mark(conn: Connection, id: str, status: str) -> None:
    """Close an open push (expired, superseded); an answer from the site is never overwritten."""
    conn.run("UPDATE pushes SET status = ? WHERE id = ? AND status IN (?, ?)", (status, id, *OPEN))


def open_pushes(conn: Connection, site: str | None = None, limit: int = 1000) -> list[Row]:
    """Pushes the site has not answered yet, oldest first (one site's, or every site's)."""
    where, args = "status IN (?, ?)", list(OPEN)
    if site is not None:
        where += " AND site = ?"
        args.append(site)
    return conn.all(f"SELECT {COLUMNS} FROM pushes WHERE {where} ORDER BY created_at, id LIMIT ?", (*args, limit))


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
    out["delivery"] = DELIVERY.get(row["status"], row["status"])
    return out
