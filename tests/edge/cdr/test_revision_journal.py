"""The journal side of charge-record revisions: a journal from before them keeps its records,
their order and the uplink's trigger; a transaction changed after its record is found again."""

from __future__ import annotations

import json
import sqlite3

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.journal import Store
from edge.journal.migrations import MIGRATIONS, migrate
from edge.journal.store import connect, transaction_mark


def _document(n: int, transaction_id: int | None) -> dict:
    return {"id": f"cdr-{n}", "transaction_id": transaction_id, "charger_id": "CP-1", "user_group": None,
            "status": "Successful", "start_time": f"2026-06-0{n}T06:00:00.000Z", "created_at": "2026-06-01T07:00:00Z"}


def test_a_journal_from_before_revisions_keeps_its_records_seqs_and_outbox_trigger(tmp_path):
    path = str(tmp_path / "j.sqlite")
    old = sqlite3.connect(path, isolation_level=None)
    migrate(old, MIGRATIONS[:7])
    for n, tx in ((1, 10), (2, None), (3, 11)):
        old.execute("INSERT INTO cdrs (id, transaction_id, charger_id, status, start_time, created_at, document) "
                    "VALUES (?, ?, 'CP-1', 'Successful', ?, '2026-06-01T07:00:00Z', ?)",
                    (f"cdr-{n}", tx, f"2026-06-0{n}T06:00:00.000Z", json.dumps(_document(n, tx))))
    old.execute("DELETE FROM cdrs WHERE id = 'cdr-3'")            # a seq used once is not given again
    old.close()
    store = Store(connect(path))
    rows = store.cdrs()
    assert [(r["id"], r["seq"], r["revision"], r["supersedes"]) for r in rows] == [
        ("cdr-1", 1, 1, None), ("cdr-2", 2, 1, None)]
    store.conn.execute("UPDATE uplink_settings SET recording = 1")
    assert store.record_cdr(_document(4, 12), None)
    [(seq, body)] = store.conn.execute("SELECT c.seq, o.body FROM cdrs c JOIN outbox o ON o.id = c.id").fetchall()
    assert seq == 4 and json.loads(body)["id"] == "cdr-4"
    # Old records have no source: they are taken as they are, never revised on their own.
    store.conn.execute("INSERT INTO transactions (id, charger_id, connector_id, id_tag, auth_status, meter_start, "
                       "start_time, start_received_at, state) VALUES (10, 'CP-1', 1, 'T', 'Accepted', 0, "
                       "'2026-06-01T06:00:00Z', '2026-06-01T06:00:00Z', 'completed')")
    assert store.cdrs_out_of_date() == []


def test_a_record_built_from_the_transaction_as_it_is_is_up_to_date_and_a_changed_one_is_not(tmp_path):
    store = Store(connect(str(tmp_path / "j.sqlite")))
    started = store.start_transaction("CP-1", 1, "T", "Accepted", 1000, "2026-06-01T06:00:00Z", None,
                                      "2026-06-01T06:00:00Z")
    store.close_transaction(started.transaction_id, 1500, "2026-06-01T06:30:00Z", "2026-06-01T08:30:00Z",
                            "finished after inactivity")
    tx, _ = store.cdr_source(started.transaction_id)
    assert store.record_cdr(_document(1, started.transaction_id), None, transaction_mark(tx))
    assert store.cdrs_out_of_date() == []
    store.conn.execute("UPDATE transactions SET meter_stop = 4160, stop_time = '2026-06-01T09:00:00Z', "
                       "stop_reason = NULL WHERE id = ?", (started.transaction_id,))
    assert store.cdrs_out_of_date() == [started.transaction_id]
    tx, _ = store.cdr_source(started.transaction_id)
    revision = {**_document(1, started.transaction_id), "id": "cdr-1-r2", "revision": 2, "supersedes": "cdr-1"}
    assert store.record_cdr(revision, None, transaction_mark(tx))
    assert store.cdrs_out_of_date() == []
    # The old one is kept and points at its successor; a second revision of the old one is refused.
    assert [(r["id"], r["superseded_by"]) for r in store.cdr_revisions("cdr-1-r2")] == [
        ("cdr-1", "cdr-1-r2"), ("cdr-1-r2", None)]
    assert not store.record_cdr({**revision, "id": "cdr-1-other"}, None, "x")
    assert [r["id"] for r in store.cdrs()] == ["cdr-1-r2"]
    assert [r["id"] for r in store.cdrs(all_revisions=True)] == ["cdr-1", "cdr-1-r2"]
    assert store.latest_cdr(started.transaction_id)["id"] == "cdr-1-r2"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(1, 3), st.booleans()), min_size=1, max_size=8))
def test_any_run_of_revisions_and_repeats_leaves_one_chain_one_latest_and_each_record_once_in_the_outbox(
        tmp_path_factory, steps):
    """steps: (which earlier revision a builder read as the latest: 1 = the true latest, 2 = the one
    before, ...; whether the same record is kept twice, as after a crash)."""
    store = Store(connect(str(tmp_path_factory.mktemp("j") / "j.sqlite")))
    store.conn.execute("UPDATE uplink_settings SET recording = 1")
    assert store.record_cdr(_document(1, 7), None, "m0")
    for stale, twice in steps:
        chain = store.cdr_revisions("cdr-1")
        read = chain[max(0, len(chain) - stale)]            # a builder that read an older latest loses
        revision = {**_document(1, 7), "id": f"cdr-1-r{read['revision'] + 1}", "revision": read["revision"] + 1,
                    "supersedes": read["id"]}
        kept = store.record_cdr(revision, None, f"m{read['revision']}")
        assert kept == (read["id"] == chain[-1]["id"])
        if twice:
            assert not store.record_cdr(revision, None, "again")
    chain = store.cdr_revisions("cdr-1")
    assert [r["revision"] for r in chain] == list(range(1, len(chain) + 1))
    assert all(b["supersedes"] == a["id"] and a["superseded_by"] == b["id"] for a, b in zip(chain, chain[1:]))
    assert [r["id"] for r in store.cdrs()] == [chain[-1]["id"]]
    sent = [r[0] for r in store.conn.execute("SELECT id FROM outbox WHERE stream = 'cdr' ORDER BY n")]
    assert sent == [r["id"] for r in chain]
