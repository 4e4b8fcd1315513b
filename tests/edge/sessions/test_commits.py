"""Item 10 of issue 14: a StartTransaction, and a StopTransaction with an
idTag, cost one journal commit each (one fsync), the authorization record
included, and are acknowledged only after it.

Counted, not timed: the journal group-commits, so other parts' writes (the
tariff pin a start triggers, start-up work) may share or add commits around
ours; what the charger waits for is the commits its own message's writes
need, so those are counted: the journal writes awaited by the handling task."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Iterator

from edge.journal import Store

T0 = "2026-06-01T06:00:00Z"


@contextlib.contextmanager
def commits_awaited(journal: Any) -> Iterator[list[str]]:
    """The journal writes (each its own commit: awaited one after the other) of the current task."""
    task, real, seen = asyncio.current_task(), journal.write, []

    async def write(fn, *args, **kwargs):
        if asyncio.current_task() is task:
            seen.append(getattr(fn, "__name__", repr(fn)))
        return await real(fn, *args, **kwargs)
    journal.write = write
    try:
        yield seen
    finally:
        del journal.write


async def test_a_start_and_a_stop_with_an_id_tag_are_one_commit_each(make_edge):
    async with make_edge() as edge:
        journal = edge.journal
        before = journal.commits
        with commits_awaited(journal) as start_writes:
            started = await edge.sessions.start("CP-1", 1, "TAG-OK", 1000, T0, None)
        assert journal.commits > before
        # Acknowledged after the commit: both records are on disk when start() returns.
        [auth] = await journal.read(Store.authorizations, charger_id="CP-1")
        [row] = await journal.read(Store.active_transactions, "CP-1")
        with commits_awaited(journal) as stop_writes:
            outcome, decision = await edge.sessions.stop("CP-1", started.transaction_id, 5000, T0, "Local",
                                                         "TAG-OK", [])
        stop_auth = (await journal.read(Store.authorizations, charger_id="CP-1"))[0]
    assert (len(start_writes), len(stop_writes)) == (1, 1), (start_writes, stop_writes)
    assert (auth["method"], auth["status"], row["id"]) == ("start", "Accepted", started.transaction_id)
    assert (outcome.kind, decision.status, stop_auth["method"]) == ("stopped", "Accepted", "stop")


async def test_a_start_that_supersedes_a_session_is_still_one_commit(make_edge):
    async with make_edge() as edge:
        first = await edge.sessions.start("CP-1", 1, "TAG-OK", 1000, T0, None)
        with commits_awaited(edge.journal) as writes:
            second = await edge.sessions.start("CP-1", 1, "TAG-2", 1500, "2026-06-01T07:00:00Z", None)
        [row] = [t for t in await edge.journal.read(Store.transactions) if t["id"] == first.transaction_id]
    assert len(writes) == 1
    assert row["edge_stop"].startswith(f"superseded-by-new-start: transaction {second.transaction_id}")
