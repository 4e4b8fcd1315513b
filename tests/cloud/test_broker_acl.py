"""The cloud against the shipped broker config (config/mosquitto/mosquitto.conf, accounts from
cloud/broker_accounts.py): its account subscribes (shared) and publishes downlink; a site cannot
speak for another."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import aiohttp

from cloud.config import MqttSettings, Settings
from cloud.service import CloudService
from contract.v1 import down_topic, receipt_topic, up_topic
from tests.cloud.conftest import Cloud, wait_started
from tests.cloud.fakes import AT, FakeSite, batch, message
from tests.mqtt_broker import MosquittoBroker


async def test_a_site_cannot_publish_as_another_and_the_cloud_account_works(tmp_path: Path, database_url: str):
    with MosquittoBroker(tmp_path, shipped=True, users={"site-a": "a-pw", "site-b": "b-pw"},
                         clouds={"cloud": "cloud-pw"}) as broker:
        settings = Settings(database_url=database_url, http_port=0, mqtt=MqttSettings(
            host=broker.host, port=broker.cloud_port, client_id="cloud-1", username="cloud", password="cloud-pw"))
        service = CloudService(settings)
        task = asyncio.create_task(service.run())
        forger = FakeSite(broker.host, broker.port, "site-a", password="a-pw", client_id="site-a", will=False)
        site_a = None
        try:
            await wait_started(service, task)
            async with aiohttp.ClientSession() as http:
                cloud = Cloud(service, http)
                token = await cloud.add_operator("acme", "site-a", "site-b")
                # site-a writes into site-b's subtree, even with site-b's id in the payload: the broker drops it
                # (and the connection that tried)
                await forger.publish(up_topic("site-b", "cdr"), batch("site-b", "cdr", [
                    message(1, "cdr", {"id": "forged", "start_time": AT})]))
                forger.close()
                site_a = FakeSite(broker.host, broker.port, "site-a", password="a-pw", client_id="site-a")
                # Subscribed first: the batch's receipt (down/receipt) reaches it, and is not taken for the push.
                await site_a.subscribe_down()
                await site_a.up("cdr", [message(1, "cdr", {"id": "real", "start_time": AT})])
                await cloud.wait_handled(1)
                assert cloud.ingest.handled == 1
                rows = await cloud.db.read(lambda c: c.all("SELECT site, id FROM cdrs"))
                assert rows == [{"site": "site-a", "id": "real"}]
                got, receipt = await site_a.next_down()
                assert got.topic == receipt_topic("site-a") and (receipt["stream"], receipt["last_seq"]) == ("cdr", 1)

                status, push = await cloud.post("/api/v1/sites/site-a/config/limits", token, {"document": {"caps": []}})
                assert status == 202 and push["status"] == "published"
                got, down = await site_a.next_down()
                assert got.topic == down_topic("site-a", "limits") and down["id"] == push["id"]
        finally:
            forger.close()
            if site_a is not None:
                site_a.close()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
