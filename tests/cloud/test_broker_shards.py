"""Sites sharded over two Mosquitto processes (issue 18, "beyond one broker"): two cloud processes
connect to both brokers; the site-to-broker map sends each push through its site's broker whichever
instance the operator's POST reached; receipts and acks come back on the right broker; a broker
killed stops only its own sites, and what was pushed to them meanwhile arrives when it is back."""

from __future__ import annotations

import asyncio
import subprocess

import aiohttp
import pytest

from cloud.brokers import broker_of
from cloud.cli import main
from cloud.config import MqttSettings, settings_from
from cloud.db import Database
from simulator.light_site import LightSite
from tests.cloud.test_failover import CLOUDS, operator_with, start_clouds, until
from tests.mqtt_broker import MosquittoBroker

NORTH = {"north-1": "pw-n1", "north-2": "pw-n2"}     # on broker a
SOUTH = {"south-1": "pw-s1", "south-2": "pw-s2"}     # on broker b
SITE_MAP = "north-*=a,south-*=b"


def test_the_map_first_then_a_stable_hash():
    settings = settings_from({"CLOUD_MQTT_BROKERS": "a=10.0.0.1:1883,b=10.0.0.2:1883",
                              "CLOUD_MQTT_SITE_BROKERS": SITE_MAP}).mqtt
    assert [broker_of(s, settings) for s in ("north-1", "south-9")] == ["a", "b"]
    unmapped = [broker_of(f"site-{n}", settings) for n in range(200)]
    assert set(unmapped) == {"a", "b"}                       # spread over both
    assert unmapped == [broker_of(f"site-{n}", settings) for n in range(200)]       # and the same every time
    assert broker_of("anything", MqttSettings()) == "main"   # one broker: everything on it


def test_the_operator_asks_which_broker_a_site_is_on(monkeypatch, capsys):
    monkeypatch.setenv("CLOUD_MQTT_BROKERS", "a=10.0.0.1:1883,b=10.0.0.2:1884")
    monkeypatch.setenv("CLOUD_MQTT_SITE_BROKERS", SITE_MAP)
    assert main(["brokers", "which", "north-7", "south-7"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["north-7", "a", "10.0.0.1:1883"] and lines[2].split() == ["south-7", "b", "10.0.0.2:1884"]
    assert main(["brokers", "which", "no/such"]) == 2
    assert "'no/such': not a site id" in capsys.readouterr().err
    monkeypatch.setenv("CLOUD_MQTT_SITE_BROKERS", "north-*=c")
    assert main(["brokers"]) == 2
    assert "CLOUD_MQTT_SITE_BROKERS names broker c, which CLOUD_MQTT_BROKERS does not define" in capsys.readouterr().err


async def push(http: aiohttp.ClientSession, port: int, token: str, site: str, command: bool) -> str:
    path, body = (("commands", {"document": {"charger_id": "CP-1", "action": "Reset", "params": {"type": "Soft"}},
                                "expires_in_s": 600}) if command else
                  ("config/limits", {"document": {"caps": [{"max_current": 20}]}}))
    async with http.post(f"http://127.0.0.1:{port}/api/v1/sites/{site}/{path}",
                         headers={"Authorization": f"Bearer {token}"}, json=body) as response:
        assert response.status == 202, await response.text()
        return (await response.json())["id"]


async def health(http: aiohttp.ClientSession, port: int) -> dict:
    async with http.get(f"http://127.0.0.1:{port}/api/v1/health") as response:
        return await response.json()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_two_brokers_each_sites_traffic_and_pushes_on_its_own(database_url, tmp_path):
    brokers = {"a": MosquittoBroker(tmp_path, shipped=True, users=NORTH, clouds=CLOUDS).start(),
               "b": MosquittoBroker(tmp_path, shipped=True, users=SOUTH, clouds=CLOUDS).start()}
    shards = ",".join(f"{name}={b.host}:{b.cloud_port}" for name, b in brokers.items())
    sites = {name: LightSite(brokers["a" if name.startswith("north") else "b"].host,
                             brokers["a" if name.startswith("north") else "b"].port, name, password,
                             receipt_timeout=2.0, ack_resend=1.0)
             for name, password in {**NORTH, **SOUTH}.items()}
    processes: list[subprocess.Popen] = []
    try:
        token = await operator_with(database_url, sites)
        ports = await start_clouds(processes, database_url, brokers["a"], tmp_path, CLOUD_MQTT_BROKERS=shards,
                                   CLOUD_MQTT_SITE_BROKERS=SITE_MAP, CLOUD_REPUBLISH_AFTER="2")
        for site in sites.values():
            site.start()
        await until(lambda: all(s.connected.is_set() for s in sites.values()), 10, "the sites connected")

        async def traffic(rounds: int, names) -> None:
            for _ in range(rounds):
                for name in names:
                    sites[name].send_batch("alert", count=3)     # a stream kept in `messages` for ever
                    sites[name].resend_due()
                await asyncio.sleep(0.01)

        async def settled(names) -> bool:
            for name in names:
                sites[name].resend_due()
            return all(sites[name].settled for name in names)

        async def statuses() -> dict[str, str]:
            async with Database(database_url) as db:
                rows = await db.read(lambda conn: conn.all("SELECT id, status FROM pushes"))
            return {r["id"]: r["status"] for r in rows}

        async def statuses_are(ids: list[str], status: str) -> bool:
            now = await statuses()
            return all(now[i] == status for i in ids)

        async with aiohttp.ClientSession() as http:
            await traffic(15, sites)
            # Each site gets a command through one instance and a document through the other: whichever
            # instance the POST reached, the push leaves through the site's broker.
            pushed = {name: [await push(http, ports[n % 2], token, name, True),
                             await push(http, ports[(n + 1) % 2], token, name, False)]
                      for n, name in enumerate(sites)}
            await until(lambda: settled(sites), 30, "every receipt and every ack confirmed on both brokers")
            done = await statuses()
            assert {done[i] for ids in pushed.values() for i in ids} == {"done", "applied"}
            for name, ids in pushed.items():       # each site got exactly its own two pushes
                assert sorted(d["id"] for d in sites[name].downs) == sorted(ids)

            brokers["b"].kill()              # the south sites' broker dies; the north's goes on
            south_pushes = [await push(http, ports[0], token, "south-1", True)]
            await traffic(15, NORTH)
            north_push = await push(http, ports[1], token, "north-2", False)
            await until(lambda: settled(NORTH), 30, "the north sites served while broker b is down")
            now = await statuses()
            assert now[north_push] == "applied" and now[south_pushes[0]] in ("pending", "published")
            for port in ports:
                report = await health(http, port)
                assert report["status"] == "ok"
                assert report["brokers"]["a"]["connected"] and not report["brokers"]["b"]["connected"]

            brokers["b"].start()             # back (it lost what it had not saved): the push arrives
            await traffic(5, SOUTH)
            await until(lambda: settled(sites), 60, "the south sites settled after their broker came back")
            # Sent at the cloud's reconnection to b, or (POSTed under 2 s before, CLOUD_REPUBLISH_AFTER: its
            # request might still be sending it) once 2 s old.
            await until(lambda: statuses_are(south_pushes, "done"), 30, "the push made while b was down")

        async with Database(database_url) as db:
            stored = await db.read(lambda conn: conn.all("SELECT site, id FROM messages"))
            streams = await db.read(lambda conn: conn.all("SELECT site, last_seq, received FROM streams"))
        sent = {(s.site, i) for s in sites.values() for i in s.sent_ids}
        assert {(r["site"], r["id"]) for r in stored} == sent and len(stored) == len(sent)   # once, from both
        assert all(r["last_seq"] == r["received"] for r in streams) and len(streams) == len(sites)
        logs = "".join((tmp_path / f"{name}.log").read_text() for name in ("cloud-1", "cloud-2"))
        assert "the site-to-broker map puts it on" not in logs       # every site was where the map says
    finally:
        for site in sites.values():
            site.stop()
        for process in processes:
            if process.poll() is None:
                process.terminate()
                process.wait(15)
        for broker in brokers.values():
            broker.stop()
