"""MQTT 3.1.1 works as 5 does (minus what only 5 can say); telemetry comes from the
load manager, downsampled; and with no subscriber at all (MQTT 5) nothing is lost."""

from __future__ import annotations

import asyncio

from contract.v1 import Down
from tests.edge.uplink.conftest import SITE, Cloud, drained, eventually
from tests.edge.uplink.helpers import make_cdrs
from tests.mqtt_broker import MosquittoBroker

CIRCUITS = """
[[circuits]]
id = "grid"
limit = 40

[[circuits]]
id = "garage"
parent = "grid"
limit = 25
"""


async def test_mqtt_311_delivers_and_takes_commands(make_uplinked_edge, cloud, live_broker):
    async with make_uplinked_edge(protocol="3.1.1") as edge:
        await eventually(lambda: edge.uplink.connection is not None, what="connected with 3.1.1")
        ids = await make_cdrs(edge, 5)
        await eventually(lambda: len(cloud.up_messages("cdr")) == 5, what="records")
        cloud.send(Down(site=SITE, kind="auth", id="a1", version=1, document={"user_groups": [], "tokens": []}))
        await eventually(lambda: [a for a in cloud.acks() if a["id"] == "a1"], what="the ack")
        live_broker.restart()                             # killed: the persistent 3.1.1 session comes back
        more = await make_cdrs(edge, 3, first=5)
        await eventually(lambda: len(cloud.up_messages("cdr")) >= 8, timeout=15, what="records after the restart")
        await drained(edge)
    assert [m["id"] for m in cloud.up_messages("cdr")][:8] == ids + more
    assert cloud.acks()[0]["status"] == "applied"


async def test_with_no_subscriber_at_all_the_edge_keeps_its_messages(make_uplinked_edge, tmp_path):
    # A broker of its own: on the module's, the test cloud's persistent session still subscribes.
    with MosquittoBroker(tmp_path / "empty-broker") as fresh:
        async with make_uplinked_edge(port=fresh.port) as edge:
            await eventually(lambda: edge.uplink.connection is not None, what="connected")
            ids = await make_cdrs(edge, 4)
            await eventually(lambda: edge.uplink.refused.get("cdr"), what="the broker saying nobody listens")
            assert "No matching subscribers" in edge.uplink.refused["cdr"]
            assert (await edge.uplink.outbox.backlog())["cdr"] == 4
            late = Cloud(fresh, client_id="late-cloud").start()   # the cloud service arrives
            try:
                await eventually(lambda: len(late.up_messages("cdr")) == 4, timeout=15, what="the kept records")
                await drained(edge)
            finally:
                late.stop()
    assert [m["id"] for m in late.up_messages("cdr")] == ids


async def test_telemetry_per_circuit_and_phase(make_uplinked_edge, cloud):
    async with make_uplinked_edge(extra=CIRCUITS, telemetry_interval=1) as edge:
        edge.uplink.telemetry.sample_every = 0.1
        await eventually(lambda: len(cloud.up_messages("telemetry")) >= 2, timeout=10, what="telemetry")
        await asyncio.sleep(0)
    first = cloud.up_messages("telemetry")[0]
    assert first["type"] == "telemetry" and first["body"]["interval_s"] == 1
    circuits = {c["id"]: c for c in first["body"]["circuits"]}
    assert set(circuits) == {"grid", "garage"}
    assert circuits["garage"]["limit_a"] == [25, 25, 25]
    assert circuits["grid"]["allocated_a"] == [0, 0, 0]
    assert circuits["grid"]["current_max_a"] is None          # no meter on the circuit
    assert [m["seq"] for m in cloud.up_messages("telemetry")][:2] == [1, 2]


async def test_a_broker_taking_few_messages_in_flight_gets_no_more(make_uplinked_edge, tmp_path):
    with MosquittoBroker(tmp_path / "narrow-broker", extra="max_inflight_messages 3") as narrow:
        cloud = Cloud(narrow, client_id="narrow-cloud").start()
        try:
            async with make_uplinked_edge(port=narrow.port) as edge:
                await asyncio.gather(*(edge.uplink.outbox.add(stream, "x", {"n": n})
                                       for n in range(200) for stream in ("status", "alert", "telemetry")))
                ids = await make_cdrs(edge, 10)
                await drained(edge, timeout=20)
                assert edge.uplink._receive_maximum == 3
        finally:
            cloud.stop()
    assert [m["id"] for m in cloud.up_messages("cdr")] == ids
