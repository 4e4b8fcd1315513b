"""The one place where the edge's parts are built and wired together.

Each long-running part has a `run()`; they all run under one TaskGroup. A
crash in any part stops the edge with an error (systemd restarts it); SIGTERM
stops it in order: chargers first (nothing new arrives), then the logs are
flushed, then the journal closes.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import os
import secrets
import signal
from pathlib import Path
from zoneinfo import ZoneInfo

import ocpp.messages

from edge.api import LocalApi
from edge.auth.authorizer import Authorizer, document_hash
from edge.auth.enforcement import AccessEnforcement
from edge.auth.sync import LocalListSync
from edge.cdr.config import tariff_book
from edge.cdr.service import ChargeRecords
from edge.cdr.watch import SessionWatch, Timeouts
from edge.chargers import ChargerDirectory
from edge.clock import Clock
from edge.config import SiteConfig
from edge.dlm.config import build_topology
from edge.dlm.manager import LoadManager
from edge.meters import MeterPoller, ModbusLinks
from edge.events import EventBus
from edge.journal import Journal, Store
from edge.ocpp.commands import Commands
from edge.ocpp.communication_log import CommunicationLog
from edge.ocpp.presence import PresenceMonitor, Thresholds
from edge.ocpp.server import OcppServer, Site
from edge.sessions import Sessions
from edge import systemd
from edge.uplink.downlink import Downlink
from edge.uplink.outbox import Outbox
from edge.uplink.service import Uplink
from edge.uplink.telemetry import TelemetrySampler

log = logging.getLogger(__name__)

# The library validates every payload on a worker thread by default; the
# schema check takes microseconds, the thread hop costs more than that.
ocpp.messages.ASYNC_VALIDATION = False


def software_version() -> str:
    try:
        return importlib.metadata.version("sitecontroller")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def load_api_token(path: Path) -> str:
    """The local API's bearer token; made on first start, readable by the
    edge's user only (edgectl run as that user or root reads it too)."""
    try:
        token = path.read_text().strip()
        if token:
            return token
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


class Edge:
    def __init__(self, config: SiteConfig, clock: Clock | None = None):
        self.config = config
        self.clock = clock or Clock()
        self.bus = EventBus()
        journal_path = config.state_path(config.journal.path)
        journal_path.parent.mkdir(parents=True, exist_ok=True)
        self.journal = Journal(str(journal_path))
        self._stop = asyncio.Event()
        self.started = asyncio.Event()

    async def _build(self) -> None:
        cfg = self.config
        # Ids start at the seconds since 2024 on a fresh journal: a site cannot
        # start more than one session a second, so a replaced journal never
        # hands out an id it handed out before; fits OCPP's int32 until 2092.
        await self.journal.write(Store.seed_transaction_ids,
                                 max(1, int(self.clock.now().timestamp()) - 1_704_067_200))
        adopted = await self.journal.read(Store.adopted_chargers)
        self.directory = ChargerDirectory(cfg, adopted)
        self.authorizer = Authorizer(self.journal, self.clock, ZoneInfo(cfg.site.timezone), self.directory.ids)
        await self.authorizer.load(cfg.auth_document())
        self.sessions = Sessions(self.journal, self.bus, self.clock, self.authorizer,
                                 unauthorized_start=cfg.authorization.late_start_of_blocked,
                                 free_vend_id_tag=cfg.authorization.free_vend_id_tag)
        await self.sessions.load()
        self.presence = PresenceMonitor(
            Thresholds(cfg.connection.temporarily_unavailable_after, cfg.connection.long_term_unavailable_after),
            self.journal, self.bus, self.clock)
        self.communication_log = CommunicationLog(
            self.journal, self.clock, keep_per_charger=cfg.journal.communication_log_frames_per_charger,
            max_frame_chars=cfg.journal.communication_log_frame_chars)
        site = Site(journal=self.journal, bus=self.bus, clock=self.clock, directory=self.directory,
                    sessions=self.sessions, heartbeat_interval=cfg.ocpp.heartbeat_interval,
                    data_transfer_vendors=frozenset(cfg.ocpp.data_transfer_vendors))
        self.ocpp = OcppServer(
            site, host=cfg.ocpp.host, port=cfg.ocpp.port, communication_log=self.communication_log,
            presence=self.presence, max_frame_bytes=cfg.ocpp.max_frame_bytes,
            max_messages_per_second=cfg.ocpp.max_messages_per_second, message_burst=cfg.ocpp.message_burst,
            response_timeout=cfg.ocpp.response_timeout)
        self.commands = Commands(self.ocpp.sessions, self.journal, self.clock, self.bus)
        site.commands = self.commands
        self.local_lists = LocalListSync(
            self.journal, self.commands, self.authorizer, self.bus, self.clock, cfg.authorization.charger_settings,
            is_known=self.directory.is_known, connected=lambda: list(self.ocpp.sessions),
            enabled=cfg.authorization.push_local_lists)
        await self.local_lists.load()
        self.access = AccessEnforcement(
            self.authorizer, self.commands, self.bus, self.clock, ZoneInfo(cfg.site.timezone),
            cfg.authorization.free_vend_id_tag,
            running_on=lambda charger, connector: any(
                place[:2] == (charger, connector) for place in self.sessions.active().values()),
            connected=lambda: list(self.ocpp.sessions))
        self.load_manager = self._load_manager()
        self.charge_records = ChargeRecords(
            self.journal, self.bus, self.clock, site_id=cfg.site.id,
            book=tariff_book(cfg.tariffs, cfg.tariff_groups),
            pricing=cfg.charge_records.pricing(ZoneInfo(cfg.site.timezone)),
            evse_max_power_w=lambda charger, connector: cfg.charge_records.evse_max_power_w(
                cfg.charger(charger), connector),
            model=lambda: self.authorizer.model, free_vend_id_tag=cfg.authorization.free_vend_id_tag)
        self.session_watch = SessionWatch(self.sessions, self.charge_records, self.commands, self.bus, self.clock,
                                          self.journal, Timeouts.of(cfg.session_timeouts))
        self.api = LocalApi(self, host=cfg.api.host, port=cfg.api.port,
                            token=load_api_token(cfg.state_path(cfg.api.token_file)))
        self.watchdog = systemd.Watchdog(healthy=self.healthy)
        # The link to the cloud; off: the outbox triggers stop writing (records stay in their tables).
        self.uplink = self._uplink() if cfg.uplink.enabled else None
        if self.uplink is not None:
            await self.uplink.downlink.load()
        else:
            await self.journal.write(Store.uplink_recording, False)

    def _load_manager(self) -> LoadManager | None:
        topology = build_topology(self.config)
        links = ModbusLinks()   # meters on one RS-485 bus or gateway share one client
        manager: LoadManager | None = None

        def reading(value) -> None:
            if manager is not None:
                manager.meter_reading(value)
        self.meters = {m.id: MeterPoller(m, self.clock, on_reading=reading, links=links) for m in self.config.meters}
        if topology is None:
            return None
        manager = LoadManager(topology, self.config.load_management, bus=self.bus, clock=self.clock,
                              commands=self.commands, journal=self.journal,
                              meters={c.id: self.meters[c.meter] for c in topology.circuits if c.meter},
                              prioritised=self.authorizer.prioritised, is_known=self.directory.is_known)
        return manager

    def _uplink(self) -> Uplink:
        cfg, up = self.config, self.config.uplink
        outbox = Outbox(self.journal, self.clock, site_id=cfg.site.id, budget_bytes=up.disk_budget_bytes)
        downlink = Downlink(
            self.journal, self.clock, site_id=cfg.site.id, authorizer=self.authorizer,
            charge_records=self.charge_records, load_manager=self.load_manager, commands=self.commands,
            is_known=self.directory.is_known, chargers=self.directory.ids,
            # What a cloud document replaces, as the config has it: an edit of these tables wins.
            config_hashes={"tariffs": document_hash({"tariffs": [t.model_dump(mode="json") for t in cfg.tariffs],
                                                     "groups": [g.model_dump(mode="json") for g in cfg.tariff_groups]}),
                           "limits": document_hash([c.model_dump(mode="json") for c in cfg.circuits])})
        telemetry = (TelemetrySampler(self.load_manager, outbox, interval=up.telemetry_interval)
                     if self.load_manager else None)
        return Uplink(up, site_id=cfg.site.id, software_version=software_version(), journal=self.journal,
                      bus=self.bus, clock=self.clock, outbox=outbox, downlink=downlink, telemetry=telemetry,
                      resolve_path=cfg.state_path)

    def healthy(self) -> bool:
        return self.journal.healthy()

    def stop(self) -> None:
        self._stop.set()

    async def start(self, timeout: float | None = 30.0) -> asyncio.Task:
        """Run the edge in a task on this event loop (the demo, benchmarks, tests); returns the task
        once the edge is ready. Raises the start-up error, or RuntimeError when not ready in time."""
        task = asyncio.create_task(self.run(), name="edge")
        started = asyncio.create_task(self.started.wait())
        await asyncio.wait([task, started], return_when=asyncio.FIRST_COMPLETED, timeout=timeout)
        started.cancel()
        if task.done():
            task.result()
        if not self.started.is_set():
            raise RuntimeError(f"the edge did not start within {timeout} s")
        return task

    async def run(self) -> None:
        await self.journal.open()
        try:
            async with asyncio.TaskGroup() as tg:
                journal_task = tg.create_task(self.journal.run(), name="journal")
                await self._build()
                services = [tg.create_task(part.run(), name=name) for name, part in (
                    ("ocpp", self.ocpp), ("api", self.api), ("presence", self.presence),
                    ("local-lists", self.local_lists), ("access", self.access),
                    ("communication-log", self.communication_log), ("watchdog", self.watchdog),
                    ("charge-records", self.charge_records), ("session-watch", self.session_watch),
                    *((("load-management", self.load_manager),) if self.load_manager else ()),
                    *((("uplink", self.uplink),) if self.uplink else ()),
                    *((f"meter {meter_id}", poller) for meter_id, poller in self.meters.items()))]
                await self.ocpp.ready.wait()
                await self.api.ready.wait()
                systemd.ready()
                self.started.set()
                log.info("edge ready site=%s ocpp_port=%s api_port=%s chargers=%d", self.config.site.id,
                         self.ocpp.bound_port, self.api.bound_port, len(self.directory.ids()))
                await self._stop.wait()
                systemd.stopping()
                log.info("edge stopping")
                for task in services:
                    task.cancel()
                await asyncio.gather(*services, return_exceptions=True)
                await self.communication_log.flush()
                await self.presence.flush()
                journal_task.cancel()
        finally:
            await self.journal.close()
            log.info("edge stopped")


async def run_edge(config: SiteConfig) -> None:
    """Run until SIGTERM/SIGINT."""
    edge = Edge(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, edge.stop)
    await edge.run()
