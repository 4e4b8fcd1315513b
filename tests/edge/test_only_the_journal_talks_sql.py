"""The rule of docs/architecture.md, kept: no part of the edge but edge/journal/ runs SQL. A statement
elsewhere would bypass the journal's one commit path (group commit, a savepoint per write, nothing
answered before it is on disk) and its thread."""

from __future__ import annotations

import ast
from pathlib import Path

EDGE = Path(__file__).resolve().parents[2] / "edge"
SQL = {"conn", "execute", "executemany", "executescript"}     # a connection reached for, or a statement run


def sql_outside_the_journal(edge: Path) -> list[str]:
    found = []
    for path in sorted(edge.rglob("*.py")):
        if path.is_relative_to(edge / "journal"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and node.attr in SQL:
                found.append(f"{path.relative_to(edge)}:{node.lineno}: .{node.attr}")
    return found


def test_no_sql_outside_the_journal():
    assert sql_outside_the_journal(EDGE) == []


def test_the_check_sees_a_statement_outside_the_journal_only(tmp_path):
    (tmp_path / "journal").mkdir()
    (tmp_path / "journal" / "store.py").write_text("def f(store):\n    store.conn.execute('SELECT 1')\n")
    (tmp_path / "part.py").write_text("def f(store):\n    return store.conn.execute('SELECT 1')\n")
    assert sorted(sql_outside_the_journal(tmp_path)) == ["part.py:2: .conn", "part.py:2: .execute"]
