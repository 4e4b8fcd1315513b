"""Operators, their API tokens, and which sites each operator sees."""

from __future__ import annotations

from cloud.db import Connection
from cloud.db.connection import Row


class AdminError(ValueError):
    pass


def add_operator(conn: Connection, name: str, now: str) -> None:
    if conn.one("SELECT 1 AS x FROM operators WHERE name = ?", (name,)):
        raise AdminError(f"operator {name!r} exists already")
    conn.run("INSERT INTO operators (name, created_at) VALUES (?, ?)", (name, now))


def remove_operator(conn: Connection, name: str) -> None:
    _require_operator(conn, name)
    conn.run("DELETE FROM api_tokens WHERE operator = ?", (name,))
    conn.run("DELETE FROM site_operators WHERE operator = ?", (name,))
    conn.run("DELETE FROM operators WHERE name = ?", (name,))


def operators(conn: Connection) -> list[Row]:
    return conn.all("SELECT o.name, o.created_at, "
                    "(SELECT count(*) FROM site_operators s WHERE s.operator = o.name) AS sites, "
                    "(SELECT count(*) FROM api_tokens t WHERE t.operator = o.name) AS tokens "
                    "FROM operators o ORDER BY o.name")


def _require_operator(conn: Connection, name: str) -> None:
    if not conn.one("SELECT 1 AS x FROM operators WHERE name = ?", (name,)):
        raise AdminError(f"no operator {name!r} (add it with: operators add {name})")


def add_token(conn: Connection, operator: str, token_hash: str, prefix: str, label: str, now: str) -> None:
    _require_operator(conn, operator)
    conn.run("INSERT INTO api_tokens (token_hash, prefix, operator, label, created_at) VALUES (?, ?, ?, ?, ?)",
             (token_hash, prefix, operator, label, now))


def tokens(conn: Connection, operator: str | None = None) -> list[Row]:
    if operator is not None:
        _require_operator(conn, operator)
        return conn.all("SELECT prefix, operator, label, created_at FROM api_tokens WHERE operator = ? "
                        "ORDER BY created_at, prefix", (operator,))
    return conn.all("SELECT prefix, operator, label, created_at FROM api_tokens ORDER BY operator, created_at")


def revoke_token(conn: Connection, prefix: str) -> int:
    if len(prefix) < 8:
        raise AdminError("give at least the first 8 characters of the token, as `tokens list` shows them")
    matching = conn.all("SELECT token_hash FROM api_tokens WHERE prefix = ? OR ? LIKE prefix || '%'",
                        (prefix, prefix))
    if len(matching) > 1:
        raise AdminError(f"{prefix!r} matches {len(matching)} tokens; give more of it")
    if not matching:
        raise AdminError(f"no token starts with {prefix!r}")
    return conn.run("DELETE FROM api_tokens WHERE token_hash = ?", (matching[0]["token_hash"],))


def operator_of(conn: Connection, token_hash: str) -> str | None:
    row = conn.one("SELECT operator FROM api_tokens WHERE token_hash = ?", (token_hash,))
    return row["operator"] if row else None


def assign_site(conn: Connection, site: str, operator: str, now: str) -> str | None:
    """-> the operator that had the site before, if another."""
    _require_operator(conn, operator)
    before = conn.one("SELECT operator FROM site_operators WHERE site = ?", (site,))
    conn.run("INSERT INTO site_operators (site, operator, assigned_at) VALUES (?, ?, ?) ON CONFLICT (site) "
             "DO UPDATE SET operator = excluded.operator, assigned_at = excluded.assigned_at", (site, operator, now))
    return before["operator"] if before and before["operator"] != operator else None


def unassign_site(conn: Connection, site: str) -> int:
    return conn.run("DELETE FROM site_operators WHERE site = ?", (site,))


def site_assignments(conn: Connection) -> list[Row]:
    """Every site the cloud knows (from messages or assignments) and its operator, if any."""
    return conn.all("SELECT s.site, a.operator, s.last_seen FROM sites s LEFT JOIN site_operators a ON a.site = s.site "
                    "UNION SELECT a.site, a.operator, NULL FROM site_operators a "
                    "WHERE NOT EXISTS (SELECT 1 FROM sites s WHERE s.site = a.site) ORDER BY 1")


def owns(conn: Connection, operator: str, site: str) -> bool:
    return conn.one("SELECT 1 AS x FROM site_operators WHERE site = ? AND operator = ?", (site, operator)) is not None
