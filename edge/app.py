"""The one place where the edge's parts are built and wired together.

Each long-running part has a `run()`; they all run under one TaskGroup. A
part that raises is started again by the supervisor (edge/supervision.py)
while the others go on; only the journal's failure stops the edge (systemd
restarts it). SIGTERM
stops it in order: chargers first (nothing new arrives), then the logs are
flushed, then the journal closes. A start that cannot proceed (a port taken, a
file unreadable) ends with one StartupError naming it; see edge/lifecycle.py
for that, the last good config and how signals are honoured at any moment.
"""

from __future__ import annotations

import asyncio
import errno
import importlib.metadata
import logging
import os
import secrets
import sqlite3
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import ocpp.messages

from edge.heap import freeze_when_ready
from edge.web.charger_files import ChargerFilesHttps
from edge.web.server import LocalApi
from edge.auth.authorizer import Authorizer, document_hash
from edge.auth.enforcement import AccessEnforcement
from edge.auth.sync import LocalListSync
from edge.cdr.config import tariff_book
from edge.cdr.service import ChargeRecords
from edge.cdr.watch import SessionWatch, Timeouts
from edge.chargers import ChargerDirectory
from edge.clock import Clock
from edge.config import SiteConfig, config_warnings
from edge.dlm import optimiser
from edge.dlm.config import build_topology
from edge.dlm.history import TokenHistory
from edge.dlm.manager import LoadManager
from edge.meters import MeterPoller, ModbusLinks
from edge.events import EventBus
from edge.journal import Journal, Store
from edge.lifecycle import ConfigFallback, SignalStop, StartupError, last_good_path, save_last_good
from edge.ocpp.commands import Commands
from edge.ocpp.control import ControlByProtocol
from edge.ocpp.v16 import SUBPROTOCOL as OCPP16
from edge.ocpp.v16.control import V16Control
from edge.ocpp.v201 import SUBPROTOCOL as OCPP201, services as v201_services
from edge.ocpp.v201.control import V201Control
from edge.ocpp.communication_log import CommunicationLog
from edge.ocpp.presence import PresenceMonitor, Thresholds
from edge.ocpp import security_messages, tls as ocpp_tls
from edge.ocpp.server import OcppServer
from edge.ocpp.site import Site
from edge.metrics import MetricsRecorder
from edge.recovery import AutoRecovery, Health, health_of
from edge.sessions import Sessions
from edge.supervision import Supervisor, run_bounded
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


# How often the log repeats that the edge runs on the last good config, not the site config.
CONFIG_REMINDER_S = 3600.0


class Edge:
    def __init__(self, config: SiteConfig, clock: Clock | None = None, *, config_text: str | None = None,
                 config_fallback: ConfigFallback | None = None, config_source: str = ""):
        """config_text: the site config's text, kept as the last good config once started;
        config_fallback: why the edge runs on the last good config instead (shown everywhere)."""
        self.config = config
        self.clock = clock or Clock()
        self.bus = EventBus()
        self.supervisor = Supervisor(self.bus, self.clock)
        self.journal_path = config.state_path(config.journal.path)
        self.journal = Journal(str(self.journal_path))
        self.config_text = config_text
        self.config_fallback = config_fallback
        self.config_source = config_source
        self.last_good_saved: str | None = None
        self._stop = asyncio.Event()
        self.started = asyncio.Event()

    def config_status(self) -> dict[str, Any]:
        """What the edge runs on, for the API and `edgectl config status`."""
        fallback = self.config_fallback
        return {"site": self.config.site.id, "ok": fallback is None,
                "running_on": "last good config" if fallback else "site config",
                "file": fallback.file if fallback else self.config_source,
                "problems": fallback.as_dict()["problems"] if fallback else [],
                "last_good": fallback.last_good if fallback else self.last_good_saved,
                "last_good_saved_at": fallback.saved_at if fallback else None,
                "warnings": config_warnings(self.config)}

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
            response_timeout=cfg.ocpp.response_timeout, **ocpp_tls.from_config(cfg.ocpp.tls, cfg.state_path))
        self.commands = Commands(self.ocpp.sessions, self.journal, self.clock, self.bus,
                                 guard=self.ocpp.credentials.refusal)
        site.commands = self.commands
        # What the core asks of stations, in domain words (edge/stations/control.py); the adapter of the
        # protocol each station is connected with words it.
        self.control = site.control = ControlByProtocol(self.ocpp.sessions, {
            OCPP16: V16Control(self.commands),
            OCPP201: V201Control(self.commands, self.clock, station_transaction=self._station_tx_id)})
        site.security = security_messages.build(site, self.ocpp, cfg.state_path, cfg.ocpp.tls and cfg.ocpp.tls.ca,
                                                csr_signing=cfg.ocpp.tls.csr_signing if cfg.ocpp.tls else "site")
        self.local_lists = LocalListSync(
            self.journal, self.control, self.authorizer, self.bus, self.clock, cfg.authorization.charger_settings,
            is_known=self.directory.is_known, connected=lambda: list(self.ocpp.sessions),
            enabled=cfg.authorization.push_local_lists)
        await self.local_lists.load()
        self.access = AccessEnforcement(
            self.authorizer, self.control, self.bus, self.clock, ZoneInfo(cfg.site.timezone),
            cfg.authorization.free_vend_id_tag,
            running_on=lambda charger, connector: any(
                place[:2] == (charger, connector) for place in self.sessions.running().values()),
            connected=lambda: list(self.ocpp.sessions))
        # Sessions' needs not declared: learned from each token's past sessions (edge.dlm.history).
        self.token_history = TokenHistory(self.journal, self.bus, self.clock, ZoneInfo(cfg.site.timezone))
        await self.token_history.load()
        self.load_manager = self._load_manager()
        site.load_manager = self.load_manager   # a 2.0.1 car's needs (edge/ocpp/v201/services.py)
        # 2.0.1 stations' external limits from the journal, held to before any station connects (and what they
        # reported of their smart charging, for the operator).
        await v201_services.restore_smart_charging(site)
        if self.load_manager is not None and cfg.load_management.strategy == "scheduled":
            # The planner's solver (scipy, about 40 MB) is imported in a thread now rather than on the event
            # loop at the first plan; sites on the other strategies never load it.
            asyncio.get_running_loop().run_in_executor(None, optimiser.load)
        self.charge_records = ChargeRecords(
            self.journal, self.bus, self.clock, site_id=cfg.site.id,
            book=tariff_book(cfg.tariffs, cfg.tariff_groups),
            pricing=cfg.charge_records.pricing(ZoneInfo(cfg.site.timezone)),
            evse_max_power_w=lambda charger, connector: cfg.charge_records.evse_max_power_w(
                cfg.charger(charger), connector),
            model=lambda: self.authorizer.model, free_vend_id_tag=cfg.authorization.free_vend_id_tag)
        self.session_watch = SessionWatch(self.sessions, self.charge_records, self.control, self.bus, self.clock,
                                          self.journal, Timeouts.of(cfg.session_timeouts))
        self.api = LocalApi(self, host=cfg.api.host, port=cfg.api.port, token=self._api_token())
        # Chargers' uploads and firmware downloads over HTTPS with the wss:// certificate (docs/security.md).
        self.charger_files = site.security.https = ChargerFilesHttps(
            self, self.ocpp.tls, host=cfg.ocpp.host, port=cfg.ocpp.tls.https_port) if self.ocpp.tls else None
        self.watchdog = systemd.Watchdog(healthy=self.healthy)
        self.recovery = self._recovery()
        self.metrics = MetricsRecorder(self.bus)
        site.on_call = self.metrics.call_answered
        # The link to the cloud; off: the outbox triggers stop writing (records stay in their tables).
        self.uplink = self._uplink() if cfg.uplink.enabled else None
        if self.uplink is not None:
            await self.uplink.downlink.load()
        else:
            await self.journal.write(Store.uplink_recording, False)

    async def _station_tx_id(self, charger_id: str, transaction_id: int) -> str:
        """A 2.0.1 station's own transactionId for the site's transaction (RequestStopTransaction, a
        TxProfile name it). Read in the journal's write queue, after every write queued before it: the
        2.0.1 TransactionEvent handling writes the mapping right after the session's start is published
        (transaction.started), and the load manager's first TxProfile for it may already be on its way."""
        known = await self.journal.write(Store.station_tx_id, charger_id, transaction_id)
        return known if known is not None else str(transaction_id)

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
                              control=self.control, journal=self.journal,
                              meters={c.id: self.meters[c.meter] for c in topology.circuits if c.meter},
                              prioritised=self.authorizer.prioritised, is_known=self.directory.is_known,
                              needs_of=lambda tag: self.token_history.needs_of(tag, self.authorizer.needs_of(tag)),
                              drew_of=self.token_history.drew_of)
        return manager

    def _recovery(self) -> AutoRecovery:
        cfg = self.config

        def enabled_for(charger_id: str) -> bool:
            charger = cfg.charger(charger_id)
            setting = charger.recovery if charger is not None else None
            return cfg.recovery.enabled if setting is None else setting

        async def health(charger_id: str) -> Health:
            connectors = await self.journal.read(Store.connectors, charger_id)
            return health_of(charger_id, connected=charger_id in self.ocpp.sessions,
                             faulted=any(c["status"] == "Faulted" for c in connectors),
                             last_seen=self.presence.last_seen(charger_id), clock=self.clock)

        return AutoRecovery(cfg.recovery, chargers=self.directory.ids, enabled_for=enabled_for, health=health,
                            control=self.control, bus=self.bus, clock=self.clock)

    def _uplink(self) -> Uplink:
        cfg, up = self.config, self.config.uplink
        outbox = Outbox(self.journal, self.clock, site_id=cfg.site.id, budget_bytes=up.disk_budget_bytes)
        certificates = self.ocpp.site.security.certificates      # CSRs signed in the cloud go up and come back
        certificates.attach_uplink(outbox.wake)
        downlink = Downlink(
            self.journal, self.clock, site_id=cfg.site.id, authorizer=self.authorizer,
            charge_records=self.charge_records, load_manager=self.load_manager, commands=self.commands,
            is_known=self.directory.is_known, chargers=self.directory.ids,
            # What a cloud document replaces, as the config has it: an edit of these tables wins.
            config_hashes={"tariffs": document_hash({"tariffs": [t.model_dump(mode="json") for t in cfg.tariffs],
                                                     "groups": [g.model_dump(mode="json") for g in cfg.tariff_groups]}),
                           "limits": document_hash([c.model_dump(mode="json") for c in cfg.circuits])},
            certificates=certificates.received)
        telemetry = (TelemetrySampler(self.load_manager, outbox, interval=up.telemetry_interval)
                     if self.load_manager else None)
        return Uplink(up, site_id=cfg.site.id, software_version=software_version(), journal=self.journal,
                      bus=self.bus, clock=self.clock, outbox=outbox, downlink=downlink, telemetry=telemetry,
                      resolve_path=cfg.state_path)

    def _api_token(self) -> str:
        path = self.config.state_path(self.config.api.token_file)
        try:
            return load_api_token(path)
        except OSError as exc:
            raise StartupError(f"cannot read or create the API token file {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise StartupError(f"the API token file {path} is not text") from None

    async def _open_journal(self) -> None:
        path = self.journal_path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StartupError(f"cannot create the state directory {path.parent}: {exc.strerror or exc}") from None
        for directory in {path.parent, Path(self.config.state_dir)}:
            # SQLite would open an existing journal there and fail at the first write, mid-start.
            if directory.is_dir() and not os.access(directory, os.W_OK | os.X_OK):
                raise StartupError(f"the state directory {directory} is not writable for this user")
        try:
            await self.journal.open()
        except (OSError, sqlite3.Error) as exc:
            raise StartupError(f"cannot open the journal {path}: {exc}") from None

    @staticmethod
    async def _listen(what: str, part: Any, host: str, port: int) -> None:
        """Run a listening part; a bind that fails is a StartupError naming the address."""
        try:
            await part.run()
        except OSError as exc:
            if part.ready.is_set():
                raise
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise StartupError(f"cannot listen for {what} on {host}:{port}: {reason}"
                               + (" (is another edge running?)" if exc.errno == errno.EADDRINUSE else "")) from None

    async def _started(self) -> None:
        """Once ready: keep the config as the last good one, or say loudly that it is not the site config."""
        if self.config_text is not None:
            try:
                saved = await asyncio.to_thread(save_last_good, self.config.state_dir, self.config_text)
                self.last_good_saved = str(saved or last_good_path(self.config.state_dir))
            except OSError as exc:
                log.error("cannot keep the site config as the last good one in %s: %s (an invalid config at a "
                          "later start will then stop the edge)", self.config.state_dir, exc)
        fallback = self.config_fallback
        if fallback is None:
            return
        systemd.status("RUNNING ON THE LAST GOOD CONFIG: " + fallback.summary())
        if self.uplink is not None:
            try:
                await self.uplink.outbox.add("alert", "alert.config_invalid", fallback.as_dict())
            except Exception:  # noqa: BLE001 - the journal failing is reported by its own health; charging goes on
                log.exception("could not queue the config_invalid alert for the cloud")

    def _say_config_problem(self) -> None:
        fallback = self.config_fallback
        assert fallback is not None
        log.error("%s; fix it and restart (`edgectl config check %s`)", fallback.summary(), fallback.file)
        for problem in fallback.problems:
            log.error("config problem: %s", problem)

    async def _remind(self) -> None:
        while True:
            await asyncio.sleep(CONFIG_REMINDER_S)
            self._say_config_problem()

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
        if self.config_fallback is not None:
            self._say_config_problem()     # first thing in the log of this start
        try:
            await self._open_journal()
            await self._run()
        except BaseExceptionGroup as group:
            # A part that could not start (a port taken) ended the task group: say that, not a traceback.
            startup, rest = group.split(StartupError)
            if startup is not None and rest is None:
                raise _first(startup) from None
            raise
        finally:
            await self.journal.close()
            log.info("edge stopped")

    async def _run(self) -> None:
        cfg = self.config
        async with asyncio.TaskGroup() as tg:
            journal_task = tg.create_task(self.journal.run(), name="journal")
            await self._build()
            listeners = {"ocpp": self._listen("chargers (OCPP)", self.ocpp, cfg.ocpp.host, cfg.ocpp.port),
                         "api": self._listen("the local API", self.api, cfg.api.host, cfg.api.port)}
            if self.charger_files is not None:
                listeners["charger-files"] = self._listen("chargers' uploads and downloads (HTTPS)", self.charger_files,
                                                          self.charger_files.host, self.charger_files.port)
            # Stopped within a bound too: an OCPP listener waits for each charger's close handshake.
            services = [tg.create_task(run_bounded(name, listener), name=name) for name, listener in listeners.items()]
            services.append(tg.create_task(self.watchdog.run(), name="watchdog"))
            # Every other part is its own failure domain: one that raises is reported and started again,
            # and the OCPP server, the load manager and the rest never notice (edge/supervision.py).
            services += [tg.create_task(self.supervisor.run_part(name, part.run), name=name) for name, part in (
                ("presence", self.presence),
                ("local-lists", self.local_lists), ("access", self.access),
                ("communication-log", self.communication_log),
                ("charge-records", self.charge_records), ("session-watch", self.session_watch),
                ("metrics", self.metrics), ("security", self.ocpp.site.security),
                *((("recovery", self.recovery),) if self.config.recovery.enabled or any(
                    c.recovery for c in self.config.chargers) else ()),
                *((("load-management", self.load_manager), ("token-history", self.token_history))
                  if self.load_manager else ()),
                *((("uplink", self.uplink),) if self.uplink else ()),
                *((f"meter {meter_id}", poller) for meter_id, poller in self.meters.items()))]
            if self.config_fallback is not None:
                services.append(tg.create_task(self._remind(), name="config-reminder"))
            await self.ocpp.ready.wait()
            await self.api.ready.wait()
            if self.charger_files is not None:
                await self.charger_files.ready.wait()
            systemd.ready()
            self.started.set()
            log.info("edge ready site=%s ocpp_port=%s api_port=%s chargers=%d", self.config.site.id,
                     self.ocpp.bound_port, self.api.bound_port, len(self.directory.ids()))
            await self._started()
            await self._stop.wait()
            systemd.stopping()
            log.info("edge stopping")
            for task in services:
                task.cancel()
            await asyncio.gather(*services, return_exceptions=True)
            await self.communication_log.flush()
            await self.presence.flush()
            journal_task.cancel()


def _first(group: BaseExceptionGroup) -> BaseException:
    while isinstance(group, BaseExceptionGroup):
        group = group.exceptions[0]
    return group


async def run_edge(config: SiteConfig, *, config_text: str | None = None,
                   config_fallback: ConfigFallback | None = None, config_source: str = "") -> None:
    """Run until SIGTERM/SIGINT, which are honoured from the first line on (edge.lifecycle.SignalStop):
    before the edge is ready a signal cancels the start, after it the edge stops in order."""
    main = asyncio.current_task()
    edge: Edge | None = None

    def request_stop() -> None:
        if edge is not None and edge.started.is_set():
            edge.stop()
        elif main is not None:
            main.cancel()
    stop = SignalStop(request_stop)
    stop.install(asyncio.get_running_loop())
    try:
        for warning in config_warnings(config):
            log.warning("config: %s", warning)
        edge = Edge(config, config_text=config_text, config_fallback=config_fallback, config_source=config_source)
        freezing = asyncio.create_task(freeze_when_ready(edge.started), name="freeze-startup-heap")
        try:
            await edge.run()
        finally:
            freezing.cancel()
    except asyncio.CancelledError:
        if not stop.signals:
            raise
        if main is not None:
            main.uncancel()
        log.info("edge start cancelled by a signal")
    finally:
        stop.uninstall()
