"""An instance killed for good (issue 18, observation 1): two cloud processes share the fleet on the
shipped Mosquitto config and PostgreSQL; one is SIGKILLed mid-traffic and never started again. The
other carries every site within seconds: every message stored once, every receipt, every push acked
(the acks the dead one had been handed come again, until the cloud confirms them)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from cloud.db import Database
from cloud.store import admin
from cloud.tokens import new_token, token_hash, token_prefix
from simulator.light_site import LightSite
from tests.mqtt_broker import MosquittoBroker, free_port

REPO = Path(__file__).resolve().parents[2]
SITES = {f"site-{n}": f"pw-{n}" for n in range(6)}
CLOUDS = {"cloud": "cloud-secret"}
NOW = "2026-12-06T12:00:00.000Z"


def start_cloud(name: str, database_url: str, broker: MosquittoBroker, tmp_path: Path,
                **settings: str) -> tuple[subprocess.Popen, int]:
    """`cloud serve` as a process; `settings`: more environment variables (CLOUD_MQTT_BROKERS, ...)."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "CLOUD_MQTT_HOST": broker.host,
           "CLOUD_MQTT_PORT": str(broker.cloud_port), "CLOUD_MQTT_USERNAME": "cloud",
           "CLOUD_MQTT_PASSWORD": CLOUDS["cloud"], "CLOUD_MQTT_CLIENT_ID": name, "CLOUD_HTTP_PORT": str(port),
           "CLOUD_MQTT_KEEPALIVE": "5", "PYTHONUNBUFFERED": "1", **settings}
    log = open(tmp_path / f"{name}.log", "wb")
    process = subprocess.Popen([sys.executable, "-m", "cloud", "serve"], cwd=REPO, env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    return process, port


async def operator_with(database_url: str, sites) -> str:
    """The schema, and an operator "ops" with `sites` for the pushes; -> its API token."""
    token = new_token()
    async with Database(database_url) as db:
        def setup(conn) -> None:
            admin.add_operator(conn, "ops", NOW)
            admin.add_token(conn, "ops", token_hash(token), token_prefix(token), "test", NOW)
            for site in sites:
                admin.assign_site(conn, site, "ops", NOW)
        await db.write(setup)
    return token


async def start_clouds(processes: list[subprocess.Popen], database_url: str, broker: MosquittoBroker,
                       tmp_path: Path, **settings: str) -> list[int]:
    """cloud-1 and cloud-2 (added to `processes` at once, for the caller's cleanup), until both are
    healthy; -> their HTTP ports."""
    ports = []
    for name in ("cloud-1", "cloud-2"):
        process, port = start_cloud(name, database_url, broker, tmp_path, **settings)
        processes.append(process)
        ports.append(port)
    for port in ports:
        await until(lambda p=port: healthy(p), 30, "both instances healthy")
    return ports


async def healthy(port: int) -> bool:
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as http:
            async with http.get(f"http://127.0.0.1:{port}/api/v1/health") as response:
                return response.status == 200
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return False


async def until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.1)


# Several instances share PostgreSQL (docs/cloud.md): SQLite is one process's database.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_the_fleet_survives_an_instance_killed_for_good(database_url, tmp_path):
    broker = MosquittoBroker(tmp_path, shipped=True, users=SITES, clouds=CLOUDS).start()
    processes: list[subprocess.Popen] = []
    sites = [LightSite(broker.host, broker.port, site, password, receipt_timeout=2.0, ack_resend=1.0)
             for site, password in SITES.items()]
    try:
        token = await operator_with(database_url, SITES)
        ports = await start_clouds(processes, database_url, broker, tmp_path)
        for site in sites:
            site.start()
        await until(lambda: all(s.connected.is_set() for s in sites), 10, "the sites connected")

        async def traffic(rounds: int) -> None:
            for _ in range(rounds):
                for site in sites:
                    site.send_batch(count=5)
                    site.resend_due()
                await asyncio.sleep(0.01)

        async def push_commands(port: int) -> list[str]:
            ids = []
            async with aiohttp.ClientSession() as http:
                for site in SITES:
                    async with http.post(f"http://127.0.0.1:{port}/api/v1/sites/{site}/commands",
                                         headers={"Authorization": f"Bearer {token}"},
                                         json={"document": {"charger_id": "CP-1", "action": "Reset",
                                                            "params": {"type": "Soft"}},
                                               "expires_in_s": 600}) as response:
                        assert response.status == 202
                        ids.append((await response.json())["id"])
            return ids

        await traffic(20)
        pushed = await push_commands(ports[0])
        await traffic(10)
        processes[0].kill()                          # SIGKILL, never started again
        processes[0].wait()
        killed_at = time.monotonic()
        await traffic(20)
        pushed += await push_commands(ports[1])

        async def settled() -> bool:
            for site in sites:
                site.resend_due()
            return all(s.settled for s in sites)
        await until(settled, 30, "every batch's receipt and every ack confirmed through the live instance")
        carried_in = time.monotonic() - killed_at

        async with Database(database_url) as db:
            stored = await db.read(lambda conn: conn.all("SELECT site, message_id AS id FROM telemetry_raw"))
            streams = await db.read(lambda conn: conn.all("SELECT site, last_seq, received FROM streams"))
            others = await db.read(lambda conn: conn.one("SELECT count(*) AS n FROM messages"))
            statuses = await db.read(lambda conn: conn.all("SELECT id, status, published_at FROM pushes"))
        sent = {(s.site, i) for s in sites for i in s.sent_ids}
        assert {(r["site"], r["id"]) for r in stored} == sent and len(stored) == len(sent)      # none lost, none twice
        assert others["n"] == 0                         # telemetry is stored once, in its own table
        assert all(r["last_seq"] == r["received"] for r in streams) and len(streams) == len(sites)   # no gap
        assert sorted(r["id"] for r in statuses) == sorted(pushed)
        assert {r["status"] for r in statuses} == {"done"} and all(r["published_at"] for r in statuses)
        assert await healthy(ports[1])
        assert carried_in < 30          # the figure is in docs/performance.md; bounded by the wait above
    finally:
        for site in sites:
            site.stop()
        for process in processes:
            if process.poll() is None:
                process.terminate()
                process.wait(15)
        broker.stop()
