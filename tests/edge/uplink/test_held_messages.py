"""A message set aside after the cloud refused it stays until it is released and
delivered: a receipt for a range of its stream that spans its seq (the batch
sent around it) does not delete it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from edge.clock import ManualClock
from edge.journal import Journal, Store
from edge.uplink.outbox import Outbox


@pytest.fixture
async def journal(tmp_path: Path):
    j = Journal(str(tmp_path / "journal.sqlite"))
    await j.open()
    task = asyncio.create_task(j.run())
    await j.write(Store.uplink_recording, True)
    yield j
    task.cancel()
    await j.close()


async def test_a_receipt_spanning_a_held_message_leaves_it_in_the_outbox(journal):
    outbox = Outbox(journal, ManualClock(), site_id="s", budget_bytes=10**9)
    ids = [await outbox.add("cdr", "cdr", {"n": n}) for n in range(5)]
    await outbox.next_batch("cdr", 0)                           # seqs 1..5
    assert await outbox.hold("cdr", 3, ids[2], "refused: bad document") is not None
    # The next round sends 1, 2, 4, 5 (3 is set aside); the cloud stores them and confirms 1..5.
    payload, first, last = await outbox.next_batch("cdr", 0)
    assert (first, last) == (1, 5) and ids[2].encode() not in payload
    assert await outbox.delivered("cdr", 1, 5, last_id=ids[4]) == 4
    held = await journal.read(Store.outbox_held)
    assert [(h["id"], h["seq"], h["why"]) for h in held] == [(ids[2], 3, "refused: bad document")]
    assert (await outbox.backlog())["cdr"] == 1
    # Released (the cloud was fixed), it goes again at its place, and leaves on its own receipt.
    assert await outbox.release() == 1
    payload, first, last = await outbox.next_batch("cdr", 0)
    assert (first, last) == (3, 3) and ids[2].encode() in payload
    assert await outbox.delivered("cdr", 3, 3, last_id=ids[2]) == 1
    assert (await outbox.backlog())["cdr"] == 0
    [streams] = [r for r in await journal.read(Store.outbox_streams) if r["stream"] == "cdr"]
    assert streams["delivered"] == 5 and streams["dropped"] == 0
