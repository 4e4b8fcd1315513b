"""OCPP 2.0.1 block E, OCA test cases (CSMS side) not covered in test_transactions.py, and the TransactionEvent
Started redelivery / conflict fault: a real edge, an OCTT-like station over real WebSockets (RawStation)."""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import example, given, settings, strategies as st
from ocpp.exceptions import GenericError

from edge.cdr.record import ENERGY
from edge.journal import Store
from tests.edge.conftest import site_toml
from tests.edge.v201.conftest import SITE_CHARGERS, STATION
from tests.edge.v201.test_device_model import poll
from tests.edge.v201.test_transactions import RawStation, raw_event


def status_asks(edge_rows: list[dict]) -> list[dict]:
    """The GetTransactionStatus requests in the actions log, oldest first, as sent on the wire."""
    return [json.loads(a["request"]) for a in reversed(edge_rows) if a["action"] == "GetTransactionStatus"]


async def next_status(events: asyncio.Queue) -> dict:
    while (event := await asyncio.wait_for(events.get(), 20)).kind != "transaction.status":
        pass
    return event.data


async def test_TC_E_34_CSMS_without_transaction_id_nothing_queued(make_edge):
    """E14.FR.06/08 (TC_E_34: without transactionId, without message in queue): a station of which the edge holds no
    transaction connects; the edge asks GetTransactionStatus without a transactionId, and takes the answer without
    ongoingIndicator (messagesInQueue false) as it is: published with ongoing unknown, nothing else done."""
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        events = edge.bus.subscribe()
        async with RawStation(edge, queued=False, ongoing=None) as cs:
            await asyncio.wait_for(cs.asked_event.wait(), 20)
            assert cs.asked == [{"transaction_id": None}]
            assert await next_status(events) == {"station_transaction_id": None, "messages_in_queue": False,
                                                 "ongoing": None}
            [ask] = status_asks(await edge.journal.read(Store.log, "actions", STATION, 50))
            assert ask == {}          # transactionId omitted on the wire
            assert await edge.journal.read(Store.transactions, charger_id=STATION) == []


async def test_TC_E_33_CSMS_without_transaction_id_messages_queued_then_delivered(make_edge):
    """E14.FR.06/07 (TC_E_33: without transactionId, with message in queue): the station ran a whole transaction
    while the edge could not hear it. At its connection the edge asks without a transactionId, hears messages are
    queued, and asks again as they arrive until the station says none is left: the queued transaction is billed
    from its own registers, and the last answer published says nothing is queued."""
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        events = edge.bus.subscribe()
        queue = [("Started", 0, 1000.0), ("Updated", 1, 1700.0), ("Ended", 2, 2300.0)]
        unsent = {seq_no for _, seq_no, _ in queue}
        async with RawStation(edge, queued=lambda: bool(unsent), ongoing=None) as cs:
            await asyncio.wait_for(cs.asked_event.wait(), 20)
            assert cs.asked[0] == {"transaction_id": None}
            assert await next_status(events) == {"station_transaction_id": None, "messages_in_queue": True,
                                                 "ongoing": None}
            for kind, seq_no, wh in queue:
                unsent.discard(seq_no)
                await cs.cp.call(raw_event(kind, seq_no, wh, offline=True, tx="tx-33",
                                           **({"stopped_reason": "EVDisconnected"} if kind == "Ended" else {})))
            while (status := await next_status(events))["messages_in_queue"]:
                pass
            assert status == {"station_transaction_id": None, "messages_in_queue": False, "ongoing": None}
            assert all(a == {"transaction_id": None} for a in cs.asked) and len(cs.asked) >= 2
            [tx] = await poll(edge, lambda s: [t for t in s.transactions(charger_id=STATION)
                                               if t["state"] == "completed"])
            assert (tx["meter_start"], tx["meter_stop"], tx["stop_reason"]) == (1000, 2300, "EVDisconnected")


# -- a Started delivered again, and a Started that repeats another transaction ---------------------------------

# What the station sends after the first Started of tx-R: "again" the same Started (its answer got lost),
# "conflict" a Started under a new transactionId with the very same content (EVSE, token, time, register).
DELIVERIES = st.lists(st.sampled_from(["again", "conflict"]), min_size=1, max_size=6)
TOKENS = st.sampled_from(["TAG-OK", "TAG-BLOCKED", "TAG-UNKNOWN"])


async def _redeliver(token: str, register: float | None, deliveries: list[str]) -> dict:
    from edge.config import parse_config
    from tests.edge.conftest import running_edge

    def started(tx: str):
        event = raw_event("Started", 0, register, tx=tx)
        event.id_token = {"id_token": token, "type": "ISO14443"}
        return event

    with tempfile.TemporaryDirectory() as tmp:
        config = parse_config(site_toml(Path(tmp), chargers=SITE_CHARGERS), "test.toml", state_dir=tmp)
        async with running_edge(config, None) as edge:
            async with RawStation(edge, queued=False, ongoing=True) as cs:
                first = await cs.cp.call(started("tx-R"), suppress=False)
                answers, refusals = [], []
                for n, kind in enumerate(deliveries):
                    if kind == "again":
                        answers.append(await cs.cp.call(started("tx-R"), suppress=False))
                    else:
                        with pytest.raises(GenericError) as refused:
                            await cs.cp.call(started(f"tx-C{n}"), suppress=False)
                        refusals.append((f"tx-C{n}", refused.value))
                return {"first": first, "answers": answers, "refusals": refusals,
                        "transactions": await edge.journal.read(Store.transactions, charger_id=STATION),
                        "station_txs": await edge.journal.read(lambda s: [r[0] for r in s.conn.execute(
                            "SELECT station_tx_id FROM station_transactions WHERE charger_id = ?", (STATION,))]),
                        "ready": await edge.journal.read(Store.transaction_event_seen, STATION, "tx-R", 0)}


@settings(max_examples=8, deadline=None)
@given(TOKENS, st.sampled_from([1000.0, None]), DELIVERIES)
@example("TAG-OK", 1000.0, ["again", "conflict", "again"])
@example("TAG-BLOCKED", None, ["conflict", "again"])
def test_a_redelivered_started_is_answered_as_the_first_and_a_repeating_one_is_refused(token, register, deliveries):
    """The known fault (an InternalError): a Started delivered again under its transactionId and seqNo gets the
    very answer the first got (status, group; nothing decided again) and starts nothing; a Started under another
    transactionId with the same EVSE, token, time and register (the key the journal tells a session by) is
    answered with a CALLERROR GenericError naming both transactionIds, and nothing of it is stored. One session."""
    out = asyncio.run(_redeliver(token, register, deliveries))
    assert all(answer == out["first"] for answer in out["answers"]), (out["first"], out["answers"])
    for tx, refused in out["refusals"]:
        assert f"transactionId {tx} starts exactly as transactionId tx-R" in refused.description
        assert refused.details == {"transactionId": tx, "conflictsWith": "tx-R", "seqNo": 0}
    [row] = out["transactions"]
    assert (row["id_tag"], row["meter_start"]) == (token, int(register or 0))
    assert out["station_txs"] == ["tx-R"] and out["ready"]


async def test_a_started_repeating_another_transaction_is_refused_also_when_its_token_comes_later(make_edge):
    """The same conflict on the later path: a Started without idToken (TxStartPoint EVConnected) waits for its
    token; when its token comes (an Updated) the session it would start is another transactionId's: refused with
    the clear error, the waiting transaction kept as it was (nothing lost), the first session untouched."""
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        async with RawStation(edge, queued=False, ongoing=True) as cs:
            await cs.cp.call(raw_event("Started", 0, 1000.0, tx="tx-A"), suppress=False)
            waiting = raw_event("Started", 0, 1000.0, tx="tx-B")
            waiting.id_token = None
            assert (await cs.cp.call(waiting, suppress=False)).id_token_info is None
            token = raw_event("Updated", 1, None, tx="tx-B")
            token.id_token = {"id_token": "TAG-OK", "type": "ISO14443"}
            with pytest.raises(GenericError, match="transactionId tx-B starts exactly as transactionId tx-A"):
                await cs.cp.call(token, suppress=False)
            [row] = await edge.journal.read(Store.transactions, charger_id=STATION)
            assert row["state"] == "active" and row["meter_start"] == 1000
            assert (await edge.journal.read(Store.station_transaction, STATION, "tx-B"))["transaction_id"] is None
            samples = await edge.journal.read(Store.samples, transaction_id=row["id"])
            assert [s["value"] for s in samples if s["measurand"] == ENERGY] == [1000.0]
