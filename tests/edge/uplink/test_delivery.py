"""Exactly once, in order, through a real Mosquitto: what the site records reaches
the cloud's subscriber; a broker outage, a lost PUBACK and a broker killed
mid-flight lose nothing, and the cloud can drop redeliveries by message id."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone

import pytest

from ocpp.v16 import call

from contract.v1 import parse
from edge.clock import ManualClock
from edge.journal import Store
from edge.cli import main
from tests.edge.conftest import api_call, charger, site_toml
from tests.edge.uplink.conftest import drained, eventually, uplink_toml
from tests.edge.uplink.helpers import Proxy, make_cdrs
from tests.stations import V201_CHARGER, VERSIONS, simulated_station


def assert_in_order_once(messages: list[dict], ids: list[str]) -> None:
    """Every id arrived; after dropping redeliveries (same id) they are in seq order with no gaps."""
    first_copies: dict[str, dict] = {}
    for message in messages:
        if message["id"] in first_copies:
            assert first_copies[message["id"]] == message, "a redelivery must be identical"
        first_copies.setdefault(message["id"], message)
    assert set(first_copies) >= set(ids)
    seqs = [m["seq"] for m in first_copies.values()]
    assert seqs == sorted(seqs) and seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs[:20]
    order = [m["id"] for m in first_copies.values() if m["id"] in set(ids)]
    assert order == ids


@pytest.mark.parametrize("version", VERSIONS)
async def test_sessions_status_and_cdr_reach_the_cloud(make_uplinked_edge, cloud, version):
    """A session on a 1.6 charger or a 2.0.1 station reaches the cloud as the same messages: its start and
    stop, one charge record (exactly once, the same energy and times), the statuses and the fault's alert."""
    clock = ManualClock(datetime(2026, 1, 1, 10, tzinfo=timezone.utc))

    def alerts() -> list[str]:
        return [m["type"] for m in cloud.up_messages("alert")]
    async with make_uplinked_edge(clock=clock, extra=V201_CHARGER) as edge:
        async with simulated_station(version, edge, manual_clock=clock) as station:
            await station.plug_in(1)
            await station.start(1, "TAG-OK")
            await eventually(lambda: cloud.up_messages("session"), what="the start at the cloud")
            await drained(edge)     # acknowledged before the hour passes: no batch is due again
            clock.advance(3600)
            await station.stop(1, "Local")
            await station.fault(1, "RCD")
        await eventually(lambda: len(cloud.up_messages("session")) >= 2, what="session events")
        await eventually(lambda: cloud.up_messages("cdr"), what="the charge record")
        await eventually(lambda: "alert.fault" in alerts(), what="the fault alert")
        await drained(edge)
        [row] = await edge.journal.read(Store.transactions, charger_id=station.id)

    started_msg, stopped_msg = cloud.up_messages("session")[:2]
    assert (started_msg["type"], started_msg["seq"]) == ("session.started", 1)
    assert (stopped_msg["type"], stopped_msg["seq"]) == ("session.stopped", 2)
    assert started_msg["body"]["transaction_id"] == row["id"]
    # 32 A on 3 phases at 230 V for an hour, less the 0.2 s ramp: the same on both versions.
    assert stopped_msg["body"]["energy_wh"] == 22079
    [cdr] = cloud.up_messages("cdr")
    assert cdr["body"]["transaction_id"] == row["id"] and cdr["id"] == cdr["body"]["id"]
    assert (cdr["body"]["charger_id"], cdr["body"]["id_tag"], cdr["body"]["energy_kwh"]) == \
        (station.id, "TAG-OK", "22.079")
    assert (cdr["body"]["start_time"], cdr["body"]["stop_time"]) == \
        ("2026-01-01T10:00:00.000Z", "2026-01-01T11:00:00.000Z")
    statuses = [(m["type"], m["body"].get("status")) for m in cloud.up_messages("status")]
    assert ("charger.booted", None) in statuses and ("connector.status", "Faulted") in statuses
    # (a 2.0.1 station also tells its start-up as a security event, alerted as 1.6's security events are)
    assert alerts().count("alert.fault") == 1
    # Every payload follows the contract, topic and all.
    for topic, payload, _ in cloud.received("/up/"):
        parse(topic, json.dumps(payload).encode())


async def test_outage_cdrs_pile_up_and_all_arrive_once_in_order(make_uplinked_edge, cloud, live_broker):
    async with make_uplinked_edge() as edge:
        await eventually(lambda: edge.uplink.connection is not None, what="connected")
        live_broker.stop()
        await eventually(lambda: edge.uplink.connection is None, what="the edge to see the outage")
        ids = await make_cdrs(edge, 300)
        assert (await edge.uplink.outbox.backlog())["cdr"] == 300
        assert edge.charge_records is not None      # charging goes on: the journal takes records as ever
        live_broker.start()
        await eventually(lambda: len({m["id"] for m in cloud.up_messages("cdr")}) >= 300, timeout=20,
                         what="all 300 records after the outage")
        await drained(edge)
        status = await edge.uplink.status()
    assert_in_order_once(cloud.up_messages("cdr"), ids)
    assert len(cloud.up_messages("cdr")) == 300        # nothing was in flight: not even a duplicate
    assert status["streams"]["cdr"]["delivered"] == 300 and status["streams"]["cdr"]["last_seq"] == 300
    assert status["connections"] >= 2


async def test_a_batch_leaves_the_outbox_on_the_clouds_receipt_not_on_the_brokers_puback(
        make_uplinked_edge, cloud):
    """The broker acknowledges every batch, yet without the cloud's receipt the records stay and go
    again when the receipt is overdue; the first receipt empties the outbox."""
    cloud.receipts = False
    async with make_uplinked_edge(receipt_timeout=0.3) as edge:
        await eventually(lambda: edge.uplink.connection is not None, what="connected")
        ids = await make_cdrs(edge, 30)
        await eventually(lambda: len(cloud.up_messages("cdr")) >= 60, what="a resend after the receipt wait")
        assert (await edge.uplink.outbox.backlog())["cdr"] == 30
        status = await edge.uplink.status()
        assert status["streams"]["cdr"]["delivered"] == 0
        # The resends back off: one batch at a time, each wait twice the one before.
        assert edge.uplink.windows["cdr"].probing and edge.uplink.windows["cdr"].wait >= 0.6
        cloud.receipts = True
        await drained(edge)
        status = await edge.uplink.status()
    assert status["streams"]["cdr"]["delivered"] == 30 and status["streams"]["cdr"]["unconfirmed"] == 0
    assert status["receipts"] >= 1 and not edge.uplink.windows["cdr"].probing
    assert_in_order_once(cloud.up_messages("cdr"), ids)


async def test_a_message_the_cloud_refuses_is_set_aside_and_the_rest_of_its_stream_passes(
        make_uplinked_edge, cloud, live_broker, tmp_path, capsys):
    cloud.refuse = lambda m: m["body"].get("poison") is True
    async with make_uplinked_edge() as edge:
        await eventually(lambda: edge.uplink.connection is not None, what="connected")
        ids = [await edge.uplink.outbox.add("session", "session.test", {"n": n, "poison": n == 7})
               for n in range(20)]
        poison = ids[7]
        # The refused batch goes again one message at a time: all but the one at fault are stored.
        await eventually(lambda: set(cloud.stored) >= set(ids) - {poison}, what="the rest of the stream")
        await eventually(lambda: any(m["type"] == "alert.outbox_held" for m in cloud.up_messages("alert")),
                         what="the report of the message set aside")
        [report] = [m for m in cloud.up_messages("alert") if m["type"] == "alert.outbox_held"]
        assert report["body"]["id"] == poison and report["body"]["stream"] == "session"
        assert "refuses" in report["body"]["error"]
        for _ in range(200):        # until the edge has taken the last receipts
            status = await api_call(edge, "GET", "/uplink")
            if status["streams"]["session"]["backlog"] == 1:
                break
            await asyncio.sleep(0.05)
        assert status["streams"]["session"]["held"] == 1 and status["streams"]["session"]["backlog"] == 1
        assert [(h["id"], h["seq"]) for h in status["held"]] == [(poison, 8)]
        assert poison not in cloud.stored
        # The cloud is fixed; the installer (or the hourly retry) sends it again.
        cloud.refuse = None
        (tmp_path / "site.toml").write_text(
            site_toml(tmp_path, extra=uplink_toml(live_broker)).replace("[api]\nport = 0",
                                                                       f"[api]\nport = {edge.api.bound_port}"))
        assert await asyncio.to_thread(main, ["uplink", "release", "--stream", "session", "--config",
                                              str(tmp_path / "site.toml"), "--state-dir", str(tmp_path)]) == 0
        assert "1 message(s) set aside go again" in capsys.readouterr().out
        await drained(edge)
    assert poison in cloud.stored
    assert_in_order_once([m for m in cloud.up_messages("session") if m["id"] in set(cloud.stored)], ids)


async def test_a_lost_puback_means_the_batch_goes_again(make_uplinked_edge, cloud, live_broker):
    proxy = await Proxy(live_broker.port).start()
    try:
        async with make_uplinked_edge(port=proxy.port) as edge:
            await eventually(lambda: edge.uplink.connection is not None, what="connected")
            proxy.swallow_answers = True
            ids = await make_cdrs(edge, 40)
            # The broker has them (the cloud sees them) but the edge never heard it.
            await eventually(lambda: len(cloud.up_messages("cdr")) >= 40, what="records at the cloud")
            await asyncio.sleep(0.3)
            assert (await edge.uplink.outbox.backlog())["cdr"] == 40
            proxy.swallow_answers = False
            proxy.cut()
            await eventually(lambda: len(cloud.up_messages("cdr")) >= 80, what="the redelivery")
            await drained(edge)
    finally:
        await proxy.stop()
    messages = cloud.up_messages("cdr")
    assert len(messages) == 80                     # each twice: the cloud drops the second by id
    assert_in_order_once(messages, ids)


async def test_broker_killed_mid_flight_loses_nothing(make_uplinked_edge, cloud, live_broker):
    async with make_uplinked_edge() as edge:
        await eventually(lambda: edge.uplink.connection is not None, what="connected")
        live_broker.freeze()                         # nothing is read or acknowledged any more
        ids = await make_cdrs(edge, 50)
        await asyncio.sleep(0.5)
        assert (await edge.uplink.outbox.backlog())["cdr"] == 50
        live_broker.kill()
        live_broker.start()
        await eventually(lambda: len({m["id"] for m in cloud.up_messages("cdr")}) >= 50, timeout=20,
                         what="every record after the restart")
        await drained(edge)
    assert_in_order_once(cloud.up_messages("cdr"), ids)


async def test_records_made_while_the_uplink_was_off_follow_when_it_is_on(make_edge, make_uplinked_edge, cloud):
    async with make_edge() as edge:
        ids = await make_cdrs(edge, 5)
        async with charger(edge) as cp:    # session events while off are not kept for the cloud
            await cp.call(call.StartTransaction(connector_id=1, id_tag="TAG-OK", meter_start=0,
                                                timestamp="2026-01-01T10:00:00Z"))
        assert await edge.journal.read(Store.outbox_backlog) == {}
    async with make_uplinked_edge() as edge:
        ids += await make_cdrs(edge, 2, first=5)
        await eventually(lambda: len(cloud.up_messages("cdr")) >= 7, what="old and new records")
        await drained(edge)
    assert_in_order_once(cloud.up_messages("cdr"), ids)
    assert cloud.up_messages("session") == []


async def test_an_edge_restarted_mid_flight_sends_the_same_messages_again(make_uplinked_edge, cloud, live_broker):
    proxy = await Proxy(live_broker.port).start()
    async with make_uplinked_edge(port=proxy.port) as edge:
        await eventually(lambda: edge.uplink.connection is not None, what="connected")
        proxy.swallow_answers = True
        ids = await make_cdrs(edge, 20)
        await eventually(lambda: len(cloud.up_messages("cdr")) == 20, what="the first copies")
        await proxy.stop()              # the link is gone, and no new one gets through
    first = cloud.up_messages("cdr")
    async with make_uplinked_edge() as edge:    # restarted, straight to the broker
        await eventually(lambda: len(cloud.up_messages("cdr")) == 40, what="the second copies")
        await drained(edge)
    again = cloud.up_messages("cdr")[20:]
    assert again == first                           # same ids, same seqs, same content
    assert_in_order_once(cloud.up_messages("cdr"), ids)
