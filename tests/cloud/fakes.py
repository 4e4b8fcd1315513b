"""A fake site for the cloud's tests: a plain paho-mqtt client that publishes
what an edge would (birth, last will, up-batches, acks) and records what the
cloud sends down. The real edge (edge/uplink) is tested on its own side."""

from __future__ import annotations

import asyncio
import itertools
import json
import queue
import uuid
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.subscribeoptions import SubscribeOptions

from contract.v1 import Ack, Message, SiteState, UpBatch, ack_topic, down_filter, encode, state_topic, up_topic

AT = "2026-03-01T10:00:00.000Z"


def batch(site: str, stream: str, messages: list[dict[str, Any]]) -> bytes:
    return encode(UpBatch(site=site, stream=stream, messages=[Message(**m) for m in messages]))


def message(seq: int, type: str = "x", body: dict | None = None, at: str = AT, id: str | None = None) -> dict:
    return {"id": id or uuid.uuid4().hex, "seq": seq, "at": at, "type": type, "body": body or {}}


def cdr_body(n: int, *, site: str = "site-a", charger: str = "CP-1", start: str | None = None,
             status: str = "Successful") -> dict[str, Any]:
    """A record shaped as edge/cdr/record.py's Cdr.as_dict()."""
    start = start or f"2026-03-01T{n // 60:02d}:{n % 60:02d}:00Z"
    return {"id": f"cdr-{n:04d}", "site_id": site, "timezone": "Europe/Berlin", "transaction_id": n,
            "charger_id": charger, "connector_id": 1, "id_tag": "TAG-OK", "user": "residents", "user_group": "g",
            "authorization": "token", "start_time": start, "stop_time": start.replace("Z", "") + "Z",
            "start_received_at": start, "stop_received_at": start, "meter_start_wh": 1000, "meter_stop_wh": 2000 + n,
            "energy_kwh": f"{(1000 + n) / 1000:.3f}", "duration_s": 3600.0, "charging_s": 3000.0, "idle_s": 600.0,
            "max_power_kw": "11.000", "average_power_kw": "1.200", "stop_reason": "Local", "stopped_by_edge": None,
            "tariff_group": None, "tariff": "flat", "tariff_type": "flat", "currency": "EUR", "vat_percent": "19",
            "price_net": "1.00", "vat": "0.19", "price_gross": "1.19", "price_components": [], "status": status,
            "status_reasons": [], "flags": [], "created_at": start}


class FakeSite:
    _ids = itertools.count(1)

    def __init__(self, host: str, port: int, site: str = "site-a", *, will: bool | bytes = True,
                 password: str | None = None, client_id: str | None = None):
        """`will`: True for a plain offline state as the last will, bytes for that payload instead, False for none."""
        self.site = site
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id or f"{site}-{next(self._ids)}",
                                  protocol=paho.MQTTv5)
        if password is not None:
            self.client.username_pw_set(site, password)       # a site's MQTT username is its site id
        self.down: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self.client.on_message = lambda c, u, m: self.down.put(m)
        if will:
            payload = will if isinstance(will, bytes) else encode(SiteState(site=site, online=False, at=AT))
            self.client.will_set(state_topic(site), payload, qos=1, retain=True)
        self.client.connect(host, port)
        self.client.loop_start()
        self.seq = itertools.count(1)

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        await asyncio.to_thread(info.wait_for_publish, 5)
        assert info.is_published(), f"no PUBACK for {topic}"

    async def up(self, stream: str, messages: list[dict[str, Any]]) -> None:
        await self.publish(up_topic(self.site, stream), batch(self.site, stream, messages))

    async def birth(self, software_version: str = "1.2.3", backlog: dict[str, int] | None = None) -> None:
        await self.publish(state_topic(self.site), encode(SiteState(
            site=self.site, online=True, at=AT, software_version=software_version, backlog=backlog or {})),
            retain=True)

    async def ack(self, **fields: Any) -> None:
        await self.publish(ack_topic(self.site), encode(Ack(site=self.site, **fields)))

    async def subscribe_down(self) -> None:
        done = asyncio.get_running_loop().create_future()
        loop = asyncio.get_running_loop()
        self.client.on_subscribe = lambda *a: loop.call_soon_threadsafe(
            lambda: done.done() or done.set_result(True))
        self.client.subscribe([(down_filter(self.site), SubscribeOptions(qos=1))])
        await asyncio.wait_for(done, 5)

    async def next_down(self, timeout: float = 5.0) -> tuple[paho.MQTTMessage, dict[str, Any]]:
        received = await asyncio.to_thread(self.down.get, True, timeout)
        return received, json.loads(received.payload)

    def vanish(self) -> None:
        """The link dies without a DISCONNECT (power cut, modem gone): the broker sends the last will."""
        self.client.loop_stop()
        sock = self.client.socket()
        if sock is not None:
            sock.close()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
