"""Fixtures for the cloud: a real Mosquitto (tests/mqtt_broker.py), a real
database (SQLite in tmp, and PostgreSQL in a fresh schema per test: every
storage test runs on both), the real cloud service on loopback ports."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import aiohttp
import psycopg
import pytest

from cloud.config import MqttSettings, Settings
from cloud.db import Database
from cloud.service import CloudService
from cloud.store import admin
from cloud.tokens import new_token, token_hash, token_prefix
from edge.clock import Clock
from tests.cloud.fakes import FakeSite
from tests.mqtt_broker import MosquittoBroker

# scripts/test makes sure this server, role and database exist (scripts/bootstrap.sh ensure_postgres);
# CLOUD_TEST_POSTGRES_URL points the tests at another server. Each test gets its own schema.
POSTGRES_URL = os.environ.get("CLOUD_TEST_POSTGRES_URL") or \
    "postgresql://sitecontroller_test:sitecontroller_test@127.0.0.1:5432/sitecontroller_test"
NOW = "2026-03-01T12:00:00.000Z"


@pytest.fixture
def broker(tmp_path: Path):
    with MosquittoBroker(tmp_path) as running:
        yield running


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/cloud.db"
        return
    schema = f"cloudtest_{uuid.uuid4().hex[:16]}"
    try:
        admin_conn = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable ({exc}); scripts/test installs and starts it and makes the test "
                    "role and database (or set CLOUD_TEST_POSTGRES_URL)")
    with admin_conn:
        admin_conn.execute(f'CREATE SCHEMA "{schema}"')
        joiner = "&" if "?" in POSTGRES_URL else "?"
        yield f"{POSTGRES_URL}{joiner}options=-csearch_path%3D{schema}"
        admin_conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    async with Database(database_url) as database:
        yield database


class Cloud:
    """A running cloud service and an HTTP client for its API."""

    def __init__(self, service: CloudService, http: aiohttp.ClientSession):
        self.service = service
        self.http = http
        self.ingest = service.ingest
        self.db = service.db

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.service.http_port}"

    async def add_operator(self, name: str, *sites: str) -> str:
        """-> a fresh API token for the new operator, who gets `sites`."""
        token = new_token()

        def setup(conn: Any) -> None:
            admin.add_operator(conn, name, NOW)
            admin.add_token(conn, name, token_hash(token), token_prefix(token), "test", NOW)
            for site in sites:
                admin.assign_site(conn, site, name, NOW)
        await self.db.write(setup)
        return token

    async def get(self, path: str, token: str | None, **params: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.http.get(self.base + path, headers=headers, params=params) as response:
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, await response.text()

    async def post(self, path: str, token: str | None, body: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.http.post(self.base + path, headers=headers, json=body) as response:
            return response.status, await response.json()

    async def wait_handled(self, count: int, timeout: float = 10.0) -> None:
        """Until the ingest has handled (stored, refused, ...) `count` MQTT messages in total."""
        await self.ingest.wait_until(lambda ingest: ingest.handled >= count, timeout)


async def wait_started(service: CloudService, task: asyncio.Task) -> None:
    """Until the service listens, the broker confirmed its subscriptions and the sweep of retained
    states is over (a retained copy would otherwise arrive in the middle of a test); a service that
    failed to start raises its own error here instead of a time-out."""
    for event in (service.ready, service.link.subscribed, service.link.settled):
        waiter = asyncio.ensure_future(event.wait())
        done, _ = await asyncio.wait({waiter, task}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            waiter.cancel()
            task.result()
            raise RuntimeError("the cloud service stopped while starting")
        if waiter not in done:
            waiter.cancel()
            raise TimeoutError("the cloud service did not start within 10 s")


@pytest.fixture
def make_cloud(broker: MosquittoBroker, database_url: str) -> Callable[..., Any]:
    @contextlib.asynccontextmanager
    async def running(client_id: str = "cloud-1", clock: Clock | None = None, settings: dict[str, Any] | None = None,
                      **mqtt: Any) -> AsyncIterator[Cloud]:
        settings = Settings(database_url=database_url, http_port=0, **(settings or {}),
                            mqtt=MqttSettings(host=broker.host, port=broker.port, client_id=client_id, **mqtt))
        service = CloudService(settings, clock)
        task = asyncio.create_task(service.run(), name=f"cloud {client_id}")
        try:
            await wait_started(service, task)
            async with aiohttp.ClientSession() as http:
                yield Cloud(service, http)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return running


@pytest.fixture
async def cloud(make_cloud: Callable[..., Any]) -> AsyncIterator[Cloud]:
    async with make_cloud() as running:
        yield running


@pytest.fixture
def make_site(broker: MosquittoBroker):
    sites: list[FakeSite] = []

    def make(site: str = "site-a", **kwargs: Any) -> FakeSite:
        fake = FakeSite(broker.host, broker.port, site, **kwargs)
        sites.append(fake)
        return fake

    yield make
    for fake in sites:
        fake.close()
