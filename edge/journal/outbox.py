"""The journal's outbox (edge/uplink): messages for the cloud, by stream and seq, until the
cloud's receipt; set aside, thinned or dropped when the cloud refuses them or the disk is short.

uplink_recording feeds the outbox with the charge records and quarantines made while the uplink
was off (it marks those quarantines reported): it lives here because the outbox rows are what it writes.
The uplink's own settings row (uplink_settings: recording, the CDR cursor, the connection counter) is here too.
"""

from __future__ import annotations

import json
from typing import Any, Collection

from edge.journal.base import StoreBase, _rows


class OutboxStore(StoreBase):
    def uplink_recording(self, on: bool) -> int:
        """While on, the outbox triggers (migration 5) write a message in the same commit as what it
        reports. Switching on first feeds the records made while it was off (in the same transaction,
        so a record made meanwhile cannot move the cursor past them). -> records fed."""
        fed = self._outbox_feed_cdrs() if on else 0
        if on:
            self._outbox_feed_quarantine()
        self.conn.execute("UPDATE uplink_settings SET recording = ? WHERE id = 1", (int(on),))
        return fed

    def next_uplink_connection(self, floor: int) -> int:
        """The connection counter for the connection about to be made, committed before it is made: one
        more than the last, and at least `floor` (the Unix time in seconds), so a site whose journal was
        replaced does not start again below what the cloud has seen. Its birth and its last will carry it
        (docs/sync-protocol.md, "Site state")."""
        self.conn.execute("UPDATE uplink_settings SET connection = max(connection + 1, ?) WHERE id = 1", (floor,))
        return int(self.conn.execute("SELECT connection FROM uplink_settings WHERE id = 1").fetchone()[0])

    def _outbox_feed_quarantine(self) -> None:
        """Records quarantined while the uplink did not record are reported now."""
        self.conn.execute(
            """INSERT INTO outbox (id, stream, type, at, body, size)
               SELECT lower(hex(randomblob(16))), 'alert', 'alert.cdr_quarantined', first_at, body,
                      length(CAST(body AS BLOB)) + 64
               FROM (SELECT first_at, json_object('transaction_id', transaction_id, 'charger_id', charger_id,
                                                  'error', error) AS body
                     FROM cdr_quarantine WHERE reported = 0 ORDER BY transaction_id)""")
        self.conn.execute("UPDATE cdr_quarantine SET reported = 1 WHERE reported = 0")

    def _outbox_feed_cdrs(self) -> int:
        """Records made while the uplink was off (or before it existed) join the outbox, by seq."""
        cur = self.conn.execute(
            """INSERT INTO outbox (id, stream, type, at, body, size)
               SELECT id, 'cdr', 'cdr', created_at, document, length(CAST(document AS BLOB)) + 64 FROM cdrs
               WHERE seq > (SELECT cdr_seq FROM uplink_settings WHERE id = 1) ORDER BY seq
               ON CONFLICT (id) DO NOTHING""")
        self.conn.execute("UPDATE uplink_settings SET cdr_seq = (SELECT coalesce(max(seq), 0) FROM cdrs) WHERE id = 1")
        return cur.rowcount

    def outbox_add(self, messages: list[tuple[str, str, str, str, str]]) -> None:
        """messages: (id, stream, type, at, body JSON)."""
        self.conn.executemany(
            "INSERT INTO outbox (id, stream, type, at, body, size) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            [(*m, len(m[4].encode()) + 64) for m in messages])

    def outbox_next(self, stream: str, after_seq: int, limit: int) -> list[dict[str, Any]]:
        """The next undelivered messages of a stream after `after_seq`, oldest first. Messages that
        never were in a batch get their seq now (the caller publishes only after this commit)."""
        rows = _rows(self.conn.execute(
            "SELECT n, id, seq, type, at, body FROM outbox WHERE stream = ? AND seq > ? AND held IS NULL "
            "ORDER BY seq LIMIT ?", (stream, after_seq, limit)))
        if len(rows) < limit:
            fresh = _rows(self.conn.execute(
                "SELECT n, id, seq, type, at, body FROM outbox WHERE stream = ? AND seq IS NULL ORDER BY n LIMIT ?",
                (stream, limit - len(rows))))
            if fresh:
                last = self.conn.execute("SELECT last_seq FROM outbox_streams WHERE stream = ?", (stream,)).fetchone()[0]
                for offset, row in enumerate(fresh, start=1):
                    row["seq"] = last + offset
                self.conn.executemany("UPDATE outbox SET seq = ? WHERE n = ?", [(r["seq"], r["n"]) for r in fresh])
                self.conn.execute("UPDATE outbox_streams SET last_seq = ? WHERE stream = ?", (last + len(fresh), stream))
                rows += fresh
        return rows

    def outbox_delivered(self, stream: str, first_seq: int, last_seq: int, last_id: str | None, at: str) -> int:
        """The cloud has stored seqs first_seq..last_seq of `stream` (its receipt): they leave the
        outbox, except messages set aside in that range (not in what it stored). A receipt whose
        last_id is not the id of the message at last_seq here is not about this journal (a reinstalled
        site's old session) and changes nothing. -> messages removed."""
        if last_id is not None:
            row = self.conn.execute("SELECT id FROM outbox WHERE stream = ? AND seq = ?", (stream, last_seq)).fetchone()
            if row is not None and row[0] != last_id:
                return -1
        # A message set aside (held) inside the range was not in the batch the receipt is for: it stays.
        cur = self.conn.execute("DELETE FROM outbox WHERE stream = ? AND seq BETWEEN ? AND ? AND held IS NULL",
                                (stream, first_seq, last_seq))
        if cur.rowcount:
            self.conn.execute(
                "UPDATE outbox_streams SET delivered = delivered + ?, last_delivered_at = ? WHERE stream = ?",
                (cur.rowcount, at, stream))
        return cur.rowcount

    def outbox_hold(self, stream: str, seq: int, message_id: str, why: str) -> dict[str, Any] | None:
        """The cloud refused this one message alone: set it aside (kept, not sent) with the reason.
        -> the message (id, type, at, seq), or None when it is not here (any more) or already aside."""
        row = self.conn.execute("SELECT id, type, at FROM outbox WHERE stream = ? AND seq = ? AND id = ? "
                                "AND held IS NULL", (stream, seq, message_id)).fetchone()
        if row is None:
            return None
        self.conn.execute("UPDATE outbox SET held = ? WHERE stream = ? AND seq = ?", (why, stream, seq))
        return {"id": row[0], "type": row[1], "at": row[2], "seq": seq}

    def outbox_release(self, stream: str | None = None) -> int:
        """Messages set aside go again (the cloud has been fixed). -> how many."""
        cur = self.conn.execute("UPDATE outbox SET held = NULL WHERE held IS NOT NULL AND (? IS NULL OR stream = ?)",
                                (stream, stream))
        return cur.rowcount

    def outbox_held(self, limit: int = 50) -> list[dict[str, Any]]:
        """Messages set aside (the first `limit`), oldest first per stream."""
        return _rows(self.conn.execute(
            "SELECT stream, seq, id, type, at, held AS why FROM outbox WHERE held IS NOT NULL ORDER BY stream, seq "
            "LIMIT ?", (limit,)))

    def outbox_backlog(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self.conn.execute("SELECT stream, count(*) FROM outbox GROUP BY stream")}

    def outbox_streams(self) -> list[dict[str, Any]]:
        """Per stream: last seq given, delivered and dropped counts, last delivery, backlog and its oldest message."""
        return _rows(self.conn.execute(
            """SELECT s.stream, s.last_seq, s.delivered, s.last_delivered_at, s.dropped, count(o.n) AS backlog,
                      min(o.at) AS oldest_at, coalesce(sum(o.size), 0) AS backlog_bytes, count(o.held) AS held
               FROM outbox_streams s LEFT JOIN outbox o ON o.stream = s.stream GROUP BY s.stream ORDER BY s.stream"""))

    def outbox_size(self) -> int:
        return self.conn.execute("SELECT coalesce(sum(size), 0) FROM outbox").fetchone()[0]

    def outbox_thin(self, stream: str, max_level: int,
                    keep_types: Collection[str] = ()) -> tuple[int, str | None, str | None]:
        """Halve the resolution of a stream's messages that were never sent: every second one of
        those thinned fewer than `max_level` times goes; messages of `keep_types` are not thinned.
        -> (removed, first at, last at)."""
        rows = self.conn.execute(
            "SELECT n, at FROM outbox WHERE stream = ? AND seq IS NULL AND level < ? "
            "AND type NOT IN (SELECT value FROM json_each(?)) ORDER BY n",
            (stream, max_level, json.dumps(sorted(keep_types)))).fetchall()
        gone = rows[1::2]
        self.conn.executemany("DELETE FROM outbox WHERE n = ?", [(r[0],) for r in gone])
        self.conn.executemany("UPDATE outbox SET level = level + 1 WHERE n = ?", [(r[0],) for r in rows[0::2]])
        self._count_dropped(stream, len(gone))
        return len(gone), (gone[0][1] if gone else None), (gone[-1][1] if gone else None)

    def outbox_drop_oldest(self, stream: str, free_bytes: int,
                           keep_types: Collection[str]) -> tuple[int, str | None, str | None]:
        """Drop a stream's oldest never-sent messages, and those the cloud refused (set aside), until
        `free_bytes` are freed; messages of `keep_types` stay whatever the need. -> (removed, first at, last at)."""
        freed, gone = 0, []
        for n, at, size in self.conn.execute(
                "SELECT n, at, size FROM outbox WHERE stream = ? AND (seq IS NULL OR held IS NOT NULL) "
                "AND type NOT IN (SELECT value FROM json_each(?)) ORDER BY n",
                (stream, json.dumps(sorted(keep_types)))):
            if freed >= free_bytes:
                break
            gone.append((n, at))
            freed += size
        self.conn.executemany("DELETE FROM outbox WHERE n = ?", [(g[0],) for g in gone])
        self._count_dropped(stream, len(gone))
        return len(gone), (gone[0][1] if gone else None), (gone[-1][1] if gone else None)

    def outbox_remove(self, message_id: str) -> bool:
        """One message that can never be sent (larger than a payload may be)."""
        row = self.conn.execute("SELECT stream FROM outbox WHERE id = ?", (message_id,)).fetchone()
        if row is None:
            return False
        self.conn.execute("DELETE FROM outbox WHERE id = ?", (message_id,))
        self._count_dropped(row[0], 1)
        return True

    def _count_dropped(self, stream: str, count: int) -> None:
        if count:
            self.conn.execute("UPDATE outbox_streams SET dropped = dropped + ? WHERE stream = ?", (count, stream))
