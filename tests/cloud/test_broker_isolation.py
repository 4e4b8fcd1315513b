"""One site cannot steal another's traffic, nor the cloud's, nor kick anyone off: the real Mosquitto
started with the shipped config (config/mosquitto/mosquitto.conf; only ports, paths and TLS adapted) and
the accounts config/mosquitto/site-user writes (cloud/broker_accounts.py), the real cloud service,
and a site that tries every attack while another site goes about its business."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from pathlib import Path

import aiohttp
import paho.mqtt.client as paho
from hypothesis import given, settings, strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from cloud import broker_accounts
from cloud.config import MqttSettings, Settings
from cloud.service import CloudService
from contract.v1 import Ack, ack_topic, encode, up_topic
from tests.cloud.conftest import Cloud, wait_started
from tests.cloud.fakes import FakeSite, batch, message
from tests.mqtt_broker import MosquittoBroker

SITES = {"site-a": "a-password", "site-b": "b-password"}
CLOUDS = {"cloud": "cloud-password"}
NOT_AUTHORIZED = 0x87
ATTACK_FILTERS = ("$share/cloud/sc/v1/sites/+/up/+", "$share/cloud/sc/v1/sites/+/ack", "$share/cloud/#",
                  "$share/x/sc/v1/sites/site-b/down/+", "sc/v1/sites/site-b/down/+", "sc/v1/sites/site-b/up/+",
                  "sc/v1/sites/+/up/+", "sc/v1/sites/+/state", "sc/v1/sites/+/ack", "sc/v1/#", "#", "$SYS/#",
                  "$CONTROL/dynamic-security/#")


def start_broker(tmp_path: Path) -> MosquittoBroker:
    return MosquittoBroker(tmp_path, shipped=True, users=SITES, clouds=CLOUDS).start()


class Client:
    """A bare MQTT client with a site's (or anyone's) credentials, for what an edge never does."""

    def __init__(self, port: int, username: str, password: str, client_id: str):
        self.connack = threading.Event()
        self.reason: str | None = None
        self.dropped = threading.Event()
        self.suback: dict[int, list[int]] = {}
        self.puback: dict[int, int] = {}
        self.messages: list[str] = []
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
        self.client.username_pw_set(username, password)
        self.client.on_connect = self._connected
        self.client.on_disconnect = lambda *a: self.dropped.set()
        self.client.on_subscribe = lambda c, u, mid, codes, p: self.suback.__setitem__(mid, [r.value for r in codes])
        self.client.on_publish = lambda c, u, mid, code, p: self.puback.__setitem__(mid, code.value)
        self.client.on_message = lambda c, u, m: self.messages.append(m.topic)
        self.client.reconnect_delay_set(3600, 3600)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.connack.wait(5), "no CONNACK"

    def _connected(self, client, userdata, flags, reason, properties) -> None:
        self.reason = str(reason)
        self.connack.set()

    @staticmethod
    def _wait(table: dict, mid: int) -> object:
        deadline = time.monotonic() + 5
        while mid not in table:
            assert time.monotonic() < deadline, "no answer from the broker"
            time.sleep(0.01)
        return table[mid]

    def subscribe(self, topic_filter: str) -> int:
        _, mid = self.client.subscribe(topic_filter, qos=1)
        return self._wait(self.suback, mid)[0]

    def publish(self, topic: str, payload: bytes) -> int:
        return self._wait(self.puback, self.client.publish(topic, payload, qos=1).mid)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def test_a_site_cannot_steal_traffic_or_sessions_and_the_victims_keep_theirs(tmp_path, database_url):
    broker = start_broker(tmp_path)
    settings = Settings(database_url=database_url, http_port=0, mqtt=MqttSettings(
        host=broker.host, port=broker.cloud_port, client_id="cloud-1", username="cloud", password=CLOUDS["cloud"]))
    service = CloudService(settings)
    task = asyncio.create_task(service.run())
    victim = FakeSite(broker.host, broker.port, "site-b", password=SITES["site-b"], client_id="site-b")
    attackers: list[Client] = []
    try:
        await wait_started(service, task)
        async with aiohttp.ClientSession() as http:
            cloud = Cloud(service, http)
            token = await cloud.add_operator("acme", "site-a", "site-b")
            await victim.subscribe_down()
            attacker = Client(broker.port, "site-a", SITES["site-a"], "site-a")
            attackers.append(attacker)
            assert attacker.reason == "Success"

            # Subscriptions beyond its own down/+ are refused, $share ones included; its own is granted.
            refused = {f: attacker.subscribe(f) for f in ATTACK_FILTERS}
            assert refused == {f: NOT_AUTHORIZED for f in ATTACK_FILTERS}
            assert attacker.subscribe("sc/v1/sites/site-a/down/+") == 1
            # Publishing into another site's subtree (even with that site's id in the payload), or downlink:
            # refused, and the broker (2.0.11 with the plugin) drops the connection after a refused publish.
            forged = batch("site-b", "cdr", [message(1, "cdr", {"id": "forged"})])
            for topic in (up_topic("site-b", "cdr"), "sc/v1/sites/site-b/state", ack_topic("site-b"),
                          "sc/v1/sites/site-b/down/command", "sc/v1/sites/site-a/down/auth"):
                forger = Client(broker.port, "site-a", SITES["site-a"], "site-a")
                attackers.append(forger)
                assert forger.publish(topic, forged) == NOT_AUTHORIZED, topic

            # Taking over sessions: another site's client id and the cloud's, on the sites' listener
            # (the broker makes the client id the username: the attacker only replaces its own session)...
            for client_id in ("site-b", "cloud-1"):
                thief = Client(broker.port, "site-a", SITES["site-a"], client_id)
                attackers.append(thief)
                assert thief.subscribe("sc/v1/sites/site-b/down/+") == NOT_AUTHORIZED
            # ... and on the cloud's listener (a site's account is bound to its own client id there too).
            for client_id in ("site-b", "cloud-1", "cloud-2"):
                thief = Client(broker.cloud_port, "site-a", SITES["site-a"], client_id)
                attackers.append(thief)
                assert thief.reason == "Not authorized", client_id

            # The victims keep their sessions and all their traffic: 40 batches, 10 acks, a push.
            await asyncio.sleep(0.2)
            assert victim.client.is_connected() and service.link.connections == 1
            for seq in range(1, 41):
                await victim.up("cdr", [message(seq, "cdr", {"id": f"cdr-{seq}", "start_time": "2026-03-01T10:00:00Z"})])
            for n in range(10):
                await victim.publish(ack_topic("site-b"), encode(Ack(site="site-b", kind="command", id=f"c{n}",
                                                                     status="done")))
            await cloud.ingest.wait_until(lambda i: i.counts["stored"] >= 40 and i.counts["unknown_acks"] >= 10)
            assert (cloud.ingest.counts["stored"], cloud.ingest.counts["unknown_acks"]) == (40, 10)
            rows = await cloud.db.read(lambda c: c.all("SELECT site, id FROM cdrs ORDER BY id"))
            assert {r["site"] for r in rows} == {"site-b"} and len(rows) == 40
            status, push = await cloud.post("/api/v1/sites/site-b/config/limits", token, {"document": {"caps": []}})
            assert status == 202
            receipts, acked = 0, 0
            while (got := await victim.next_down())[0].topic.endswith(("/receipt", "/acked")):
                receipts += got[0].topic.endswith("/receipt")    # the cloud's receipts for its 40 batches
                acked += got[0].topic.endswith("/acked")         # and for its 10 acks
            assert got[1]["id"] == push["id"] and (receipts, acked) == (40, 10)
            assert all(not a.messages for a in attackers)          # the attacker received nothing of site-b's
            assert victim.client.is_connected() and service.link.connections == 1
    finally:
        for attacker in attackers:
            attacker.close()
        victim.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        broker.stop()


def test_the_tests_run_the_shipped_config(tmp_path):
    """Only ports, paths and TLS differ from config/mosquitto/mosquitto.conf."""
    broker = MosquittoBroker(tmp_path, shipped=True, users=SITES, clouds=CLOUDS)
    shipped = {line.strip() for line in (Path(__file__).parents[2] / "config/mosquitto/mosquitto.conf").read_text()
               .splitlines() if line.strip() and not line.startswith("#")}
    adapted = set(broker.config_text().splitlines())
    changed = {line.split()[0] for line in shipped - adapted}
    assert changed <= {"listener", "plugin", "plugin_opt_config_file", "persistence_location", "autosave_interval",
                       "log_dest", "cafile", "certfile", "keyfile", "tls_version", "require_certificate"}
    assert "use_username_as_clientid true" in adapted and "allow_anonymous false" in adapted


@given(st.lists(st.from_regex(r"[a-bA-B0-9][a-z0-9._-]{0,8}", fullmatch=True).filter(
    lambda s: s not in (".", "..") and not s.casefold().startswith("cloud")), unique=True, max_size=12))
@settings(max_examples=60, deadline=None)
def test_a_whole_accounts_file_is_what_adding_each_site_makes(site_ids):
    """accounts() builds the file in one pass (linear in the sites): the same entries, in the same
    order, as adding each site through with_site, which an operator's single-site command uses."""
    def shape(config):
        strip = ("password", "salt")
        return ([{k: v for k, v in c.items() if k not in strip} for c in config["clients"]], config["roles"])

    whole = broker_accounts.accounts({s: "pw" for s in site_ids}, {"cloud": "pw"})
    folded = broker_accounts.empty()
    for s in site_ids:
        folded = broker_accounts.with_site(folded, s, "pw")
    folded = broker_accounts.with_cloud(folded, "cloud", "pw")
    assert shape(whole) == shape(folded)
