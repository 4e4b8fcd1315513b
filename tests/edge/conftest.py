"""Fixtures for the edge: a real edge on loopback ports, real SQLite in tmp."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import pytest
import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from websockets.asyncio.client import connect

from edge.app import Edge
from edge.config import parse_config
from edge.supervision import waiting_at
from edge.ocpp.security import hash_password

PASSWORD = "s3cret-charger-pass"
PASSWORD_HASH = hash_password(PASSWORD, salt=b"fixed-test-salt!")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def site_toml(state_dir: Path, *, unknown: str = "reject", extra: str = "", chargers: str | None = None,
              push_local_lists: bool = False, ocpp_port: int = 0, timezone: str = "UTC",
              response_timeout: float = 5) -> str:
    """A test site. Local list pushing is off unless asked for: the other tests'
    chargers would otherwise see the edge's sync requests among theirs. `response_timeout`: how long the
    edge waits for a charger's answer (a test that waits one out shortens it)."""
    if chargers is None:
        chargers = f"""
[[chargers]]
id = "CP-1"
password_hash = "{PASSWORD_HASH}"
connectors = 2

[[chargers]]
id = "CP-2"
"""
    return f"""
[site]
id = "test-site"
timezone = "{timezone}"
[ocpp]
host = "127.0.0.1"
port = {ocpp_port}
unknown_chargers = "{unknown}"
response_timeout = {response_timeout:g}
data_transfer_vendors = ["com.example"]
[api]
port = 0
[authorization]
push_local_lists = {str(push_local_lists).lower()}
{extra}
{chargers}
[[user_groups]]
id = "residents"
charge_groups = []
[[tokens]]
id_tag = "TAG-OK"
user_group = "residents"
[[tokens]]
id_tag = "TAG-2"
user_group = "residents"
[[tokens]]
id_tag = "TAG-BLOCKED"
user_group = "residents"
status = "Blocked"
"""


@contextlib.asynccontextmanager
async def running_edge(config: Any, clock: Any = None) -> AsyncIterator[Edge]:
    """An edge running on the test's event loop from start-up to a clean stop."""
    edge = Edge(config, clock)
    task = await edge.start(timeout=20)
    try:
        yield edge
    finally:
        edge.stop()
        if not (await asyncio.wait([task], timeout=20))[0]:
            running = [f"{t.get_name()} ({waiting_at(t)})" for t in asyncio.all_tasks()
                       if not t.done() and t is not asyncio.current_task()]
            task.cancel()
            await asyncio.wait([task], timeout=5)
            raise AssertionError(f"the edge did not stop within 20 s; still running: {'; '.join(running)}")
        task.result()


@pytest.fixture
def make_edge(tmp_path: Path) -> Callable[..., Any]:
    @contextlib.asynccontextmanager
    async def _make(clock: Any = None, **kwargs: Any) -> AsyncIterator[Edge]:
        config = parse_config(site_toml(tmp_path, **kwargs), "test.toml", state_dir=str(tmp_path))
        async with running_edge(config, clock) as edge:
            yield edge
    return _make


@pytest.fixture
def commit_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The journal commits each write at once, as on a quiet site. For a test that plays hours of one
    charger's messages back to back in compressed time: the journal would take it for a busy site and
    wait its 10 ms group-commit window (edge/journal/journal.py COMMIT_WINDOW_S) before each write."""
    from edge.journal import journal

    monkeypatch.setattr(journal, "COMMIT_WINDOW_S", 0.0)


@pytest.fixture
async def edge(make_edge) -> AsyncIterator[Edge]:
    async with make_edge() as e:
        yield e


def ocpp_url(edge: Edge, charger_id: str, prefix: str = "/ocpp/") -> str:
    return f"ws://127.0.0.1:{edge.ocpp.bound_port}{prefix}{charger_id}"


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


class Charger(ChargePoint):
    """A minimal charge point on the ocpp library: what the tests send is
    explicit in each test; it answers central system calls plainly."""

    def __init__(self, charger_id: str, ws: Any):
        super().__init__(charger_id, ws, response_timeout=5)
        self.received: list[tuple[str, dict]] = []

    @on("Reset")
    def on_reset(self, **kwargs):
        self.received.append(("Reset", kwargs))
        return call_result.Reset(status="Accepted")

    @on("TriggerMessage")
    def on_trigger(self, **kwargs):
        self.received.append(("TriggerMessage", kwargs))
        return call_result.TriggerMessage(status="Accepted")

    @on("GetConfiguration")
    def on_get_configuration(self, **kwargs):
        self.received.append(("GetConfiguration", kwargs))
        return call_result.GetConfiguration(configuration_key=[
            {"key": "HeartbeatInterval", "readonly": False, "value": "300"}])

    @on("ChangeConfiguration")
    def on_change_configuration(self, key: str, value: str, **kwargs):
        self.received.append(("ChangeConfiguration", {"key": key, "value": value}))
        return call_result.ChangeConfiguration(status="Rejected" if key == "ReadOnlyKey" else "Accepted")

    @on("RemoteStartTransaction")
    def on_remote_start(self, id_tag: str, **kwargs):
        self.received.append(("RemoteStartTransaction", {"id_tag": id_tag, **kwargs}))
        return call_result.RemoteStartTransaction(status="Accepted")

    @on("UnlockConnector")
    async def on_unlock(self, connector_id: int, **kwargs):
        await asyncio.sleep(30)  # a charger that never answers: the edge must time out
        return call_result.UnlockConnector(status="Unlocked")


@contextlib.asynccontextmanager
async def charger(edge: Edge, charger_id: str = "CP-1", password: str | None = PASSWORD,
                  boot: bool = True) -> AsyncIterator[Charger]:
    headers = basic(charger_id, password) if password else None
    async with connect(ocpp_url(edge, charger_id), subprotocols=["ocpp1.6"], additional_headers=headers) as ws:
        cp = Charger(charger_id, ws)
        task = asyncio.create_task(cp.start())
        try:
            if boot:
                result = await cp.call(call.BootNotification(charge_point_vendor="Test", charge_point_model="T1"))
                assert result.status == "Accepted", result
            yield cp
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                await task


async def wait_for(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
    """Poll a cheap in-memory predicate on the event loop's own ticks."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def eventually(read: Callable[[], Awaitable[Any]], what: str, timeout: float = 10.0) -> Any:
    """What `read` (a coroutine function, e.g. a journal read) returns once it is truthy, polled every
    10 ms. A journal read may complete without yielding to the loop (an idle journal reads on the loop
    itself), so a poll must sleep between reads for the work it waits on to run."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await read()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def api_call(edge: Edge, method: str, path: str, *, body: Any = None, token: str | None = None,
                   expect: int | None = 200) -> Any:
    """A request to the edge's local API; returns the JSON body."""
    import aiohttp

    token = edge.api._token if token is None else token
    async with aiohttp.ClientSession() as http:
        async with http.request(method, f"http://127.0.0.1:{edge.api.bound_port}/api/v1{path}", json=body,
                                headers={"Authorization": f"Bearer {token}", "X-Actor": "tester"}) as resp:
            data = await resp.json()
            if expect is not None:
                assert resp.status == expect, (resp.status, data)
            return data


@contextlib.asynccontextmanager
async def simulated(edge: Edge, port: int | None = None, **kwargs: Any) -> AsyncIterator[Any]:
    """The simulator as CP-1 (2 connectors, with its password), running and accepted."""
    from simulator.charge_point import SimulatedChargePoint

    port = port or edge.ocpp.bound_port
    sim = SimulatedChargePoint("CP-1", f"ws://127.0.0.1:{port}/ocpp", password=PASSWORD, connectors=2,
                               reconnect_delay=0.1, **kwargs)
    task = asyncio.create_task(sim.run())
    try:
        await sim.wait_accepted()
        yield sim
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
