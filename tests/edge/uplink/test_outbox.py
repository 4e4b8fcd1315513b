"""The outbox in a real journal: messages written in the same commit as what they
report, seqs without gaps, delivery by prefix, the budget's thinning; and the
batch encoding against the contract."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from contract.v1 import MAX_PAYLOAD_BYTES, parse, up_topic
from edge.clock import ManualClock
from edge.journal import Journal, Store
from edge.uplink.outbox import MAX_BATCH_MESSAGES, Outbox, encode_batch
from tests.edge.uplink.helpers import cdr_document


@pytest.fixture
async def journal(tmp_path: Path):
    j = Journal(str(tmp_path / "journal.sqlite"))
    await j.open()
    task = asyncio.create_task(j.run())
    await j.write(Store.uplink_recording, True)
    yield j
    task.cancel()
    await j.close()


def _start(store: Store, fail: bool) -> None:
    store.start_transaction("CP-1", 1, "TAG", "Accepted", 0, "2026-01-01T00:00:00Z", None, "2026-01-01T00:00:01.000Z")
    if fail:
        raise ValueError("the write fails after the transaction row")


async def test_a_message_is_written_with_what_it_reports_or_not_at_all(journal):
    with pytest.raises(ValueError):
        await journal.write(_start, True)
    assert await journal.read(Store.outbox_backlog) == {}
    await journal.write(_start, False)
    assert await journal.read(Store.outbox_backlog) == {"session": 1}


async def test_triggers_write_only_while_recording(journal):
    await journal.write(Store.uplink_recording, False)
    await journal.write(Store.record_cdr, cdr_document(1), None)
    await journal.write(Store.record_status, "CP-1", 1, "Available", "NoError", None, None, None, None, "t")
    assert await journal.read(Store.outbox_backlog) == {}
    # Switching on feeds the records made meanwhile (status changes are not kept for later).
    assert await journal.write(Store.uplink_recording, True) == 1
    assert await journal.read(Store.outbox_backlog) == {"cdr": 1}


async def test_seqs_have_no_gaps_and_delivery_goes_by_prefix(journal):
    clock = ManualClock()
    outbox = Outbox(journal, clock, site_id="s", budget_bytes=10**9)
    for n in range(5):
        await outbox.add("alert", "alert.test", {"n": n})
    payload, first, last = await outbox.next_batch("alert", 0)
    assert (first, last) == (1, 5)
    # Sent again from the oldest undelivered (a new connection): the same seqs, the same ids.
    again, first2, last2 = await outbox.next_batch("alert", 0)
    assert again == payload and (first2, last2) == (1, 5)
    assert await outbox.delivered("alert", 1, 3) == 3
    # A receipt that names another message at its last seq is about another journal: ignored.
    assert await outbox.delivered("alert", 4, 5, last_id="not-ours") == -1
    await outbox.add("alert", "alert.test", {"n": 5})
    _, first, last = await outbox.next_batch("alert", 0)
    assert (first, last) == (4, 6)
    assert await outbox.next_batch("alert", 6) is None
    streams = {r["stream"]: r for r in await journal.read(Store.outbox_streams)}
    assert streams["alert"]["delivered"] == 3 and streams["alert"]["last_seq"] == 6


def test_encode_batch_follows_the_contract_and_its_limits():
    rows = [{"id": f"id-{n}", "seq": n + 1, "at": "2026-01-01T00:00:00.000Z", "type": "telemetry",
             "body": json.dumps({"n": n, "text": "é" * 10})} for n in range(600)]
    payload, count = encode_batch("site-1", "telemetry", rows)
    assert count == MAX_BATCH_MESSAGES
    batch = parse(up_topic("site-1", "telemetry"), payload)
    assert [m.seq for m in batch.messages] == list(range(1, 501)) and batch.messages[3].body["text"] == "é" * 10
    payload, count = encode_batch("site-1", "telemetry", rows, max_bytes=5000)
    assert len(payload) <= 5000 and 0 < count < 100
    assert len(parse(up_topic("site-1", "telemetry"), payload).messages) == count
    big = [{**rows[0], "body": json.dumps({"x": "y" * MAX_PAYLOAD_BYTES})}]
    assert encode_batch("site-1", "telemetry", big)[1] == 0


async def test_a_message_too_large_for_any_payload_is_reported_not_stuck(journal):
    outbox = Outbox(journal, ManualClock(), site_id="s", budget_bytes=10**9)
    await outbox.add("status", "connector.status", {"info": "x" * MAX_PAYLOAD_BYTES})
    await outbox.add("status", "connector.status", {"info": "fine"})
    payload, first, last = await outbox.next_batch("status", 0)
    assert json.loads(payload)["messages"][0]["body"] == {"info": "fine"}
    [alert] = json.loads((await outbox.next_batch("alert", 0))[0])["messages"]
    assert alert["type"] == "alert.outbox_dropped" and alert["body"]["stream"] == "status"


async def test_budget_thins_telemetry_then_drops_the_oldest_never_cdrs(journal):
    outbox = Outbox(journal, ManualClock(), site_id="s", budget_bytes=30_000)
    await asyncio.gather(*(outbox.add("telemetry", "telemetry", {"n": n, "pad": "x" * 100}) for n in range(400)))
    await asyncio.gather(*(journal.write(Store.record_cdr, cdr_document(n), None) for n in range(40)))
    before = await journal.read(Store.outbox_size)
    assert before > 30_000
    [report] = await outbox.enforce_budget()
    assert report["stream"] == "telemetry" and report["thinned"] > 0
    backlog = await outbox.backlog()
    assert backlog["cdr"] == 40 and 0 < backlog["telemetry"] < 400
    assert await journal.read(Store.outbox_size) <= 30_000 + 1000   # plus the alert that reports it
    # What is left of the telemetry is spread over the whole time, oldest thinned as much as the rest.
    kept = [json.loads(m["body"])["n"] for m in await journal.read(Store.outbox_next, "telemetry", 0, 500)]
    assert kept == sorted(kept) and kept[0] < 10 and kept[-1] > 350
    # Only precious messages left and still over: they stay, and the status says so.
    tight = Outbox(journal, ManualClock(), site_id="s", budget_bytes=1000)
    await tight.enforce_budget()
    assert (await tight.backlog())["cdr"] == 40 and tight.over_budget


async def test_the_disk_budget_may_drop_an_expendable_message_set_aside_but_never_a_cdr(journal):
    outbox = Outbox(journal, ManualClock(), site_id="s", budget_bytes=10**9)
    status_id = await outbox.add("status", "connector.status", {"pad": "x" * 2000})
    cdr_id = await outbox.add("cdr", "cdr", {"pad": "x" * 2000})
    for stream in ("status", "cdr"):
        await outbox.next_batch(stream, 0)                     # sent: they have a seq now
    assert await outbox.hold("status", 1, status_id, "refused") is not None
    assert await outbox.hold("cdr", 1, cdr_id, "refused") is not None
    assert await outbox.next_batch("cdr", 0) is None           # set aside: not sent
    outbox.budget_bytes = 100
    [report] = await outbox.enforce_budget()
    assert report["stream"] == "status" and report["dropped"] == 1
    backlog = await outbox.backlog()
    assert outbox.over_budget and backlog["cdr"] == 1 and backlog["status"] == 0
    held = await journal.read(Store.outbox_held)
    assert [(h["stream"], h["id"], h["why"]) for h in held] == [("cdr", cdr_id, "refused")]
    assert await outbox.release() == 1
    _, first, last = await outbox.next_batch("cdr", 0)
    assert (first, last) == (1, 1)
