"""A real edge under the broker's shipped config (config/mosquitto/mosquitto.conf with the accounts
config/mosquitto/site-user writes): it connects, sends its records, gets and answers the downlink;
a wrong password gets nowhere."""

from __future__ import annotations

import pytest

from cloud.mqtt import subscriptions
from contract.v1 import CLOUD_FILTERS, Down
from tests.edge.uplink.conftest import SITE, Cloud, drained, eventually
from tests.edge.uplink.helpers import make_cdrs
from tests.mqtt_broker import MosquittoBroker

SITES = {SITE: "site-password", "other-site": "other-password"}
CLOUDS = {"cloud": "cloud-password"}


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory):
    with MosquittoBroker(tmp_path_factory.mktemp("shipped-broker"), shipped=True, users=SITES,
                         clouds=CLOUDS) as b:
        yield b


@pytest.fixture
def cloud(live_broker: MosquittoBroker):
    # As the cloud service subscribes (shared up and ack, plain state), on the cloud's listener.
    c = Cloud(live_broker, client_id="cloud-1", username="cloud", password=CLOUDS["cloud"],
              port=live_broker.cloud_port, filters=tuple(subscriptions("cloud"))).start()
    yield c
    c.stop()


async def test_an_edge_works_under_the_shipped_config_and_a_wrong_password_gets_nowhere(make_uplinked_edge, cloud):
    assert len(subscriptions("cloud")) == len(CLOUD_FILTERS)
    async with make_uplinked_edge(password=SITES[SITE]) as edge:
        await eventually(lambda: edge.uplink.connection is not None, what="connected under the shipped config")
        ids = await make_cdrs(edge, 3)
        await eventually(lambda: len(cloud.up_messages("cdr")) == 3, what="its records")
        await drained(edge)
        message = Down(site=SITE, kind="command", id="reset-1",
                       document={"charger_id": "CP-2", "action": "Reset", "params": {"type": "Soft"}})
        cloud.send(message)
        await eventually(lambda: [a for a in cloud.acks() if a["id"] == "reset-1"], what="the ack")
        assert edge.uplink.connections == 1
    assert [m["id"] for m in cloud.up_messages("cdr")] == ids
    assert any(not state["online"] for state, _ in cloud.states())
    async with make_uplinked_edge(password="wrong") as edge:
        await eventually(lambda: edge.uplink.last_error, what="the refusal")
        assert "refused" in edge.uplink.last_error and edge.uplink.connection is None
