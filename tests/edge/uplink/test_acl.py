"""The broker's ACL (config/mosquitto/acl) on a real Mosquitto with passwords: a site
publishes and reads only in its own subtree, the cloud sees all; an edge works under it."""

from __future__ import annotations

import time

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from contract.v1 import Down
from tests.edge.uplink.conftest import SITE, Cloud, drained, eventually
from tests.edge.uplink.helpers import make_cdrs
from tests.mqtt_broker import ACL_FILE, MosquittoBroker

USERS = {SITE: "site-password", "other-site": "other-password", "cloud": "cloud-password"}


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory):
    with MosquittoBroker(tmp_path_factory.mktemp("acl-broker"), users=USERS, acl_file=ACL_FILE) as b:
        yield b


@pytest.fixture
def cloud(live_broker: MosquittoBroker):
    c = Cloud(live_broker, client_id="acl-cloud", username="cloud", password=USERS["cloud"]).start()
    yield c
    c.stop()


class Site:
    """A bare MQTT client logged in as a site, for what an edge would never do by itself."""

    def __init__(self, broker: MosquittoBroker, user: str):
        self.acks: dict[int, int] = {}
        self.messages: list[str] = []
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{user}-bare", protocol=paho.MQTTv5)
        self.client.username_pw_set(user, USERS[user])
        self.client.on_publish = lambda c, u, mid, rc, p: self.acks.__setitem__(mid, rc.value)
        self.client.on_message = lambda c, u, m: self.messages.append(m.topic)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def publish(self, topic: str) -> int:
        mid = self.client.publish(topic, b'{"v":1}', qos=1).mid
        deadline = time.monotonic() + 5
        while mid not in self.acks and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.acks[mid]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def test_a_site_cannot_publish_or_read_outside_its_subtree(cloud, live_broker):
    site = Site(live_broker, "other-site")
    try:
        for topic in (f"sc/v1/sites/{SITE}/up/cdr", f"sc/v1/sites/{SITE}/state", f"sc/v1/sites/{SITE}/ack",
                      f"sc/v1/sites/{SITE}/down/auth", "sc/v1/sites/other-site/down/auth", "elsewhere"):
            assert site.publish(topic) == 0x87, topic            # Not authorized
        assert site.publish("sc/v1/sites/other-site/up/cdr") == 0x00
        site.client.subscribe(f"sc/v1/sites/{SITE}/#", qos=1)
        site.client.subscribe("sc/v1/sites/other-site/down/+", qos=1)
        cloud.send(Down(site=SITE, kind="command", id="for-the-other", document={}), retain=False)
        cloud.send(Down(site="other-site", kind="command", id="mine", document={}), retain=False)
        await eventually(lambda: site.messages, what="its own downlink")
        time.sleep(0.3)
        assert site.messages == ["sc/v1/sites/other-site/down/command"]
        # The cloud got the one legitimate publish and none of the others.
        await eventually(lambda: cloud.received("other-site/up/cdr"), what="the allowed publish")
        assert not cloud.received(f"sites/{SITE}/up/cdr") and not cloud.received("elsewhere")
    finally:
        site.close()


async def test_an_edge_works_under_the_acl_and_a_wrong_password_gets_nowhere(make_uplinked_edge, cloud):
    async with make_uplinked_edge(password=USERS[SITE]) as edge:
        await eventually(lambda: edge.uplink.connection is not None, what="connected under the ACL")
        ids = await make_cdrs(edge, 3)
        await eventually(lambda: len(cloud.up_messages("cdr")) == 3, what="its records")
        await drained(edge)
        message = Down(site=SITE, kind="command", id="reset-1",
                       document={"charger_id": "CP-2", "action": "Reset", "params": {"type": "Soft"}})
        cloud.send(message)
        await eventually(lambda: [a for a in cloud.acks() if a["id"] == "reset-1"], what="the ack")
    assert [m["id"] for m in cloud.up_messages("cdr")] == ids
    assert any(not state["online"] for state, _ in cloud.states())
    async with make_uplinked_edge(password="wrong") as edge:
        await eventually(lambda: edge.uplink.last_error, what="the refusal")
        assert "refused" in edge.uplink.last_error and edge.uplink.connection is None
