"""A push is delivered when the SITE has acknowledged it, not when the broker has: the real cloud,
a real Mosquitto killed before its autosave, and a real edge coming online afterwards."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from edge.config import parse_config
from edge.journal import Store
from tests.edge.conftest import running_edge, site_toml
from tests.mqtt_broker import MosquittoBroker

SITE = "test-site"
AUTH = {"default_policy": "all-known", "user_groups": [{"id": "residents"}], "charge_groups": [],
        "tokens": [{"id_tag": "FROM-THE-CLOUD", "user_group": "residents"}]}


@pytest.fixture
def broker(tmp_path: Path):
    # Saves only when stopped cleanly: a SIGKILL loses everything it acknowledged (as a production broker
    # loses what arrived since its last autosave).
    with MosquittoBroker(tmp_path, autosave_interval=3600) as running:
        yield running


@contextlib.asynccontextmanager
async def edge_on(broker: MosquittoBroker, state_dir: Path) -> AsyncIterator[Any]:
    uplink = (f'[uplink]\nenabled = true\nhost = "{broker.host}"\nport = {broker.port}\nkeepalive = 5\n'
              "reconnect_min_delay = 0.1\nreconnect_max_delay = 0.5\n")
    config = parse_config(site_toml(state_dir, extra=uplink), "test.toml", state_dir=str(state_dir))
    async with running_edge(config) as edge:
        yield edge


async def wait_until(predicate: Any, what: str, timeout: float = 20.0) -> Any:
    async def poll() -> Any:
        while not (value := await predicate()):
            await asyncio.sleep(0.1)
        return value
    try:
        return await asyncio.wait_for(poll(), timeout)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def test_pushes_made_while_the_site_is_offline_survive_a_broker_crash(make_cloud, broker, tmp_path):
    async with make_cloud() as cloud:
        token = await cloud.add_operator("acme", SITE)
        state = tmp_path / "edge"
        state.mkdir()
        async with edge_on(broker, state) as edge:       # the site has a persistent session at the broker
            await wait_until(lambda: _value(edge.uplink.connection), "the site's link")
        _, doc = await cloud.post(f"/api/v1/sites/{SITE}/config/auth", token, {"document": AUTH})
        _, command = await cloud.post(f"/api/v1/sites/{SITE}/commands", token, {
            "document": {"charger_id": "CP-1", "action": "Reset", "params": {"type": "Soft"}}, "expires_in_s": 600})
        for push in (doc, command):       # the broker took them (PUBACK): that is not delivery
            assert (push["status"], push["delivery"]) == ("published", "published"), push

        broker.kill()                     # before its autosave: the retained document and queued command are gone
        broker.start()

        async def answered(push: dict) -> dict | None:
            _, now = await cloud.get(f"/api/v1/sites/{SITE}/pushes/{push['id']}", token)
            return now if now["acked_at"] else None

        async with edge_on(broker, state) as edge:
            acked_doc = await wait_until(lambda: answered(doc), "the site's ack of the document")
            acked_command = await wait_until(lambda: answered(command), "the site's ack of the command")
            assert edge.authorizer.model.find("FROM-THE-CLOUD") is not None
            assert (acked_doc["status"], acked_doc["delivery"], acked_doc["applied_version"]) == ("applied", "acked", 1)
            # CP-1 is not connected: the site ran the command and says how it went.
            assert (acked_command["status"], acked_command["delivery"]) == ("failed", "acked")
            assert acked_command["result"]["outcome"] == "not-connected"
            ran = await edge.journal.read(Store.downlink_command, command["id"])
            assert ran is not None and ran["charger_id"] == "CP-1"     # sent more than once, run once (by id)


async def _value(value: Any) -> Any:
    return value
