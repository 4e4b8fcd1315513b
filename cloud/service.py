"""The cloud service, wired in one place: database, MQTT link, ingest, downlink, REST API.

Each part is an object with `run()`; all run under one TaskGroup and stop
together (SIGTERM, or any part failing). On the way out the API stops taking
requests, the MQTT connection is closed (messages received but not yet
committed were never acknowledged, so the broker sends them again), and the
database closes last.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web

from cloud.api import make_app
from cloud.brokers import Brokers
from cloud.certificates import CaError, CsrSigner, load_operator_ca
from cloud.config import Settings
from cloud.db import Database
from cloud.downlink import Downlink
from cloud.ingest import Ingest
from cloud.retention import Retention
from edge import systemd
from edge.clock import Clock

log = logging.getLogger(__name__)


class StartupError(Exception):
    """Something the service needs is not there: one line says what and why (no traceback)."""


def _unreachable() -> tuple[type[BaseException], ...]:
    """The errors that mean "the database is not there or will not let us in", not a bug of ours."""
    errors: list[type[BaseException]] = [OSError, sqlite3.OperationalError]
    try:
        import psycopg
    except ImportError:      # SQLite only: psycopg is not needed
        pass
    else:
        errors.append(psycopg.OperationalError)
    return tuple(errors)


def shown_url(url: str) -> str:
    """The database URL without its password, for a log line."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


async def open_database(db: Database, url: str) -> None:
    """Connect and migrate; a database that cannot be reached is a StartupError naming it."""
    try:
        await db.open()
    except _unreachable() as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise StartupError(f"the database {shown_url(url)} cannot be reached: {reason}") from None


class CloudService:
    def __init__(self, settings: Settings, clock: Clock | None = None):
        self.settings = settings
        self.clock = clock or Clock()
        self.db = Database(settings.database_url)
        # One connection per broker (one unless CLOUD_MQTT_BROKERS names several), seen as one link.
        self.link = Brokers(settings.mqtt, self._deliver, self.db, self.clock)
        self.ingest = Ingest(self.db, self.link.ack, self.clock, send_receipt=self.link.send)
        self.downlink = Downlink(self.db, self.link, self.clock)
        self.downlink.republish_after_s = settings.republish_after_s
        self.ingest.on_birth = self.downlink.site_online
        # Chargers' CSRs from the sites, signed with the operator's CA (read from its files at start).
        self.signer = CsrSigner(self.db, self.downlink, None, self.clock)
        self.ingest.on_csr = self.signer.wake
        self.retention = Retention(self.db, self.clock, settings.telemetry_raw_days, settings.telemetry_aggregate_days)
        self.app = make_app(self.db, self.downlink, self.ingest, self.link)
        self.ready = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._parts: list[asyncio.Task] = []
        # Under systemd (cloud.service): READY=1 once the API listens, WATCHDOG=1 while every part runs.
        self.watchdog = systemd.Watchdog(healthy=self.healthy)

    def healthy(self) -> bool:
        return bool(self._parts) and not any(task.done() for task in self._parts)

    def _deliver(self, received) -> None:     # on the event loop, from paho's thread
        self.ingest.deliver(received)

    @property
    def http_port(self) -> int:
        assert self._runner is not None
        return self._runner.addresses[0][1]

    async def _serve_http(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.settings.http_host, self.settings.http_port).start()
        log.info("cloud API on http://%s:%d/api/v1 (OpenAPI: /api/openapi.json)", self.settings.http_host,
                 self.http_port)
        self.ready.set()
        try:
            await asyncio.Future()
        finally:
            await self._runner.cleanup()

    def _load_ca(self) -> None:
        s = self.settings
        if s.ca_certificate is None or s.ca_key is None:
            log.info("no operator CA (CLOUD_CA_CERTIFICATE): chargers' CSRs from the sites are refused, saying so")
            return
        try:
            self.signer.ca = load_operator_ca(s.ca_certificate, s.ca_key, s.certificate_days)
        except CaError as exc:
            raise StartupError(f"the operator CA cannot be used: {exc}") from None
        log.info("operator CA %s signs chargers' CSRs", s.ca_certificate)

    async def run(self) -> None:
        self._load_ca()
        await open_database(self.db, self.settings.database_url)
        log.info("database: %s", self.db.dialect)
        try:
            async with asyncio.TaskGroup() as tasks:
                self._parts = [tasks.create_task(part, name=name) for name, part in (
                    ("ingest", self.ingest.run()), ("mqtt", self.link.run()), ("downlink", self.downlink.run()),
                    ("retention", self.retention.run()), ("csr-signer", self.signer.run()),
                    ("http", self._serve_http()))]
                tasks.create_task(self.watchdog.run(), name="watchdog")
                await self.ready.wait()
                systemd.ready()
        except asyncio.CancelledError:
            systemd.stopping()
            log.info("cloud service stopping")
            raise
        finally:
            await self.db.close()
