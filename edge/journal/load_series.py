"""The journal's load series (edge/dlm/history.py): per circuit and phase, what was metered,
allocated and reserved against the limit, pruned to a window.
"""

from __future__ import annotations

from typing import Any

from edge.journal.base import StoreBase, _rows


class LoadSeriesStore(StoreBase):
    def record_load_points(self, points: list[dict[str, Any]], prune_before: str) -> None:
        self.conn.executemany(
            "INSERT OR REPLACE INTO load_series (circuit, phase, at, metered_max, metered_mean, allocated, unmanaged,"
            " reserved, limit_a, failsafe) VALUES (:circuit, :phase, :at, :metered_max, :metered_mean, :allocated,"
            " :unmanaged, :reserved, :limit_a, :failsafe)", points)
        self.conn.execute("DELETE FROM load_series WHERE at < ?", (prune_before,))

    def load_series(self, *, circuit: str | None = None, since: str | None = None, until: str | None = None,
                    limit: int = 10_000) -> list[dict[str, Any]]:
        """Oldest first."""
        clauses, args = [], []
        for clause, value in (("circuit = ?", circuit), ("at >= ?", since), ("at <= ?", until)):
            if value is not None:
                clauses.append(clause)
                args.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return _rows(self.conn.execute(
            f"SELECT * FROM (SELECT * FROM load_series {where} ORDER BY at DESC, circuit, phase LIMIT ?)"
            " ORDER BY at, circuit, phase", (*args, limit)))
