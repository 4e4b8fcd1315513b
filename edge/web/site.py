"""What the HTTP side sees of the site: the narrow interface the Edge hands over.

Routes call into the domain through this Protocol, never the reverse: no module of the
domain imports edge.web, and nothing here imports edge.app (the Edge satisfies it by shape).
A route that needs a new part of the site adds it here first, so the list of what the HTTP
side can reach stays one short, reviewable page.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from edge.auth.authorizer import Authorizer
    from edge.auth.sync import LocalListSync
    from edge.cdr.service import ChargeRecords
    from edge.chargers import ChargerDirectory
    from edge.clock import Clock
    from edge.config import SiteConfig
    from edge.dlm.manager import LoadManager
    from edge.events import EventBus
    from edge.journal import Journal
    from edge.meters import MeterPoller
    from edge.metrics import MetricsRecorder
    from edge.ocpp.commands import Commands
    from edge.ocpp.communication_log import CommunicationLog
    from edge.ocpp.presence import PresenceMonitor
    from edge.ocpp.server import OcppServer
    from edge.sessions import Sessions
    from edge.stations.control import StationControl
    from edge.supervision import Supervisor
    from edge.uplink.service import Uplink


class SiteView(Protocol):
    config: "SiteConfig"
    clock: "Clock"
    bus: "EventBus"
    journal: "Journal"
    supervisor: "Supervisor"
    directory: "ChargerDirectory"
    authorizer: "Authorizer"
    sessions: "Sessions"
    presence: "PresenceMonitor"
    communication_log: "CommunicationLog"
    ocpp: "OcppServer"
    commands: "Commands"    # any 1.6 message by name: the operator's and the cloud's raw commands
    control: "StationControl"
    local_lists: "LocalListSync"
    load_manager: "LoadManager | None"
    meters: "dict[str, MeterPoller]"
    charge_records: "ChargeRecords"
    uplink: "Uplink | None"
    metrics: "MetricsRecorder"

    def healthy(self) -> bool: ...

    def config_status(self) -> dict[str, Any]: ...
