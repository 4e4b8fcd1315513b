"""The simulated charge point: what a driver does at the wallbox, and what the wallbox reports.

The state (connectors, cars, meters, profiles) lives here and survives
reconnects; everything about one WebSocket connection lives in
`simulator.session`, and the answers to central-system requests in
`simulator.handlers`.
"""

from __future__ import annotations

import asyncio
import itertools
import ssl
import time
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any, Callable, Iterable
from urllib.parse import quote

from ocpp.exceptions import OCPPError
from ocpp.v16 import call

from simulator import electrics, ocmf, profiles, session
from simulator.car import Car
from simulator.configuration import Configuration, Key, default_keys
from simulator.connector import Connector, ConnectorState, Fault, Transaction
from simulator.local_auth import LocalAuthList
from simulator.metering import iso
from simulator.outbox import Entry, Outbox
from simulator.runtime import Runtime
from simulator.security import SecurityState
from simulator.session import NotConnected

__all__ = ["ConnectorState", "NotConnected", "SimulatedChargePoint", "utcnow"]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class SimulatedChargePoint(Runtime):
    """An OCPP 1.6J wallbox with cars that draw a realistic current.

    `url` is the central system's base URL (ws://host:port/ocpp); the charge
    point id is appended unless the URL already ends with it. Transaction
    messages are queued while offline and sent in order on reconnect.
    """

    def __init__(self, charge_point_id: str, url: str, *, password: str | None = None,
                 connectors: int = 1, max_current: float = 32.0, phases: int = 3,
                 voltage: float = 230.0, meter_interval: float = 10.0,
                 ramp_seconds: float = 3.0, vendor: str = "SimVendor", model: str = "SimBox",
                 clock: Callable[[], float] = time.monotonic, wall_clock: Callable[[], datetime] = utcnow,
                 on_event: Callable[[str, dict], None] | None = None, reconnect_delay: float = 1.0,
                 response_timeout: float = 30.0, max_events: int = 10_000,
                 tls: ssl.SSLContext | None = None, ocmf_key: Any = None, shows_meter_key: bool = True) -> None:
        if connectors < 1 or not 1 <= phases <= 3:
            raise ValueError("a charge point has at least one connector and 1 to 3 phases")
        super().__init__(on_event=on_event, max_events=max_events)
        self.id = charge_point_id
        suffix = "/" + quote(charge_point_id, safe="")
        self.url = url if url.endswith(suffix) else url.rstrip("/") + suffix
        self.password = password
        # wss:// (security profiles 2 and 3): trusts the site CA, presents a client certificate for 3.
        # simulator.tls.client_context makes one.
        self.tls = tls
        # The security whitepaper's messages (simulator.security): its CA store, a pending CSR's key.
        self.security = SecurityState()
        # An Eichrecht meter: an EC P-256 key signs each transaction's begin and end reading as OCMF
        # (simulator.ocmf), sent as SignedData sampled values next to the plain ones.
        self.ocmf_key = ocmf_key
        self.max_current, self.phases, self.voltage = max_current, phases, voltage
        self.ramp_seconds = ramp_seconds
        self.vendor, self.model, self.firmware_version = vendor, model, "1.0.0"
        self.clock, self.wall_clock = clock, wall_clock
        self.reconnect_delay, self.response_timeout = reconnect_delay, response_timeout
        self.config = Configuration(default_keys(connectors=connectors, heartbeat_interval=60.0,
                                                 meter_interval=meter_interval))
        if ocmf_key is not None and shows_meter_key:    # where chargers show their meter's key (read-only)
            self.config.add("MeterPublicKey", Key(ocmf.public_key_hex(ocmf_key), True))
        self.local_auth = LocalAuthList()
        self.charging_profiles: list[profiles.Installed] = []
        # Fault knob: accept charging profiles but offer the maximum anyway (a
        # firmware bug load management must notice).
        self.ignores_limits = False
        self.outbox = Outbox()
        self.connectors = {i: Connector(i) for i in range(connectors + 1)}
        self.diagnostics_status = self.firmware_status = "Idle"
        self._status_lock = asyncio.Lock()  # so one status change is not reported twice
        self._local_ids = itertools.count(-1, -1)

    # ---- lifecycle -------------------------------------------------------

    async def run(self) -> None:
        """Connect and keep connected until cancelled; bugs end it loudly, a lost connection never."""
        try:
            async with asyncio.TaskGroup() as group:
                self._task_group = group
                group.create_task(electrics.sample_forever(self))
                group.create_task(self._tick_loop())
                group.create_task(session.connect_forever(self))
        finally:
            self._task_group = None

    async def boot(self, send: Callable[[Any], Any]) -> Any:
        result = await send(call.BootNotification(
            charge_point_model=self.model, charge_point_vendor=self.vendor,
            charge_point_serial_number=self.id, firmware_version=self.firmware_version))
        if result.status == "Accepted":
            if result.interval > 0:
                self.config.set("HeartbeatInterval", str(result.interval))
                self.reconfigure()
            self._accepted.set()
        self.emit("boot", status=result.status, interval=result.interval)
        return result

    # ---- what a driver does ------------------------------------------------

    async def plug_in(self, connector_id: int = 1, *, car_max_current: float = 32.0, car_phases: int = 3,
                      soc: float = 20.0) -> None:
        """A car is plugged in: StatusNotification Preparing (or Charging, if a transaction waits for it)."""
        c = self._connector(connector_id)
        self.settle()
        c.car = Car(max_current=car_max_current, phases=car_phases)
        c.meter = replace(c.meter, soc=soc)
        c.finishing = False
        self.settle()
        self.emit("plug_in", connector_id=connector_id, car_max_current=car_max_current,
                  car_phases=car_phases, soc=soc)
        await self.sync_status()

    async def authorize(self, id_tag: str) -> str:
        """The idTagInfo status; offline, what the local list or cache says (OCPP 1.6 offline rules)."""
        known = self._known_status(id_tag)
        if self.config.flag("LocalPreAuthorize") and known == "Accepted":
            status, source = known, "local"
        else:
            try:
                result = await self.send(call.Authorize(id_tag=id_tag))
                status, source = result.id_tag_info["status"], "central system"
                self.local_auth.remember(id_tag, status)
            except (NotConnected, TimeoutError):  # no answer counts as offline, as on a real wallbox
                source = "offline"
                if known is not None and self.config.flag("LocalAuthorizeOffline"):
                    status = known
                else:
                    status = "Accepted" if self.config.flag("AllowOfflineTxForUnknownId") else "Invalid"
        self.emit("authorize", id_tag=id_tag, status=status, source=source)
        return status

    async def start_transaction(self, connector_id: int, id_tag: str) -> int:
        """The transaction id; negative (provisional) when started offline, see connector().transaction_id."""
        tx, entry = self.begin_transaction(self._connector(connector_id), id_tag)
        await self.delivered(entry)
        await self.sync_status()
        return tx.id

    async def stop_transaction(self, connector_id: int, reason: str = "Local", id_tag: str | None = None) -> None:
        """StopTransaction (awaited while online, queued while offline), then StatusNotification Finishing."""
        entry = self.end_transaction(self._connector(connector_id), reason, id_tag)
        await self.delivered(entry)
        await self.sync_status()

    async def unplug(self, connector_id: int = 1) -> None:
        """The car leaves: a running transaction stops (EVDisconnected), then StatusNotification Available."""
        c = self._connector(connector_id)
        if c.transaction is not None and self.config.flag("StopTransactionOnEVSideDisconnect"):
            await self.delivered(self.end_transaction(c, "EVDisconnected"))
        self.settle()
        c.car, c.finishing = None, False
        c.meter = replace(c.meter, soc=None)
        self.settle()
        self.emit("unplug", connector_id=connector_id)
        await self.sync_status()

    async def report_fault(self, connector_id: int, error_code: str, info: str = "",
                           vendor_error_code: str | None = None) -> None:
        """StatusNotification Faulted; error_code "NoError" clears the fault."""
        c = self.connectors[connector_id]
        self.settle()
        # StatusNotification carries info and vendorErrorCode as CiString50: longer would not validate.
        c.fault = None if error_code == "NoError" else Fault(error_code, info[:50],
                                                             vendor_error_code[:50] if vendor_error_code else None)
        self.settle()
        self.emit("fault", connector_id=connector_id, error_code=error_code, info=info)
        await self.sync_status()

    # ---- what can be read ----------------------------------------------------

    def offered_current(self, connector_id: int) -> float:
        """min(max_current, the charging profile limit in force now), in amps per phase."""
        return electrics.offered(self, self.connectors[connector_id])

    def connector(self, connector_id: int) -> ConnectorState:
        """A snapshot of the connector, its meter brought up to now."""
        c = self.connectors[connector_id]
        self.settle()
        return c.snapshot(electrics.offered(self, c), self.voltage)

    # ---- transactions ----------------------------------------------------------

    def begin_transaction(self, c: Connector, id_tag: str) -> tuple[Transaction, Entry]:
        """Start a transaction now and queue its StartTransaction (synchronous: safe inside handlers)."""
        if c.transaction is not None:
            raise ValueError(f"connector {c.connector_id} already has transaction {c.transaction.id}")
        if c.fault is not None or not c.operative:
            raise ValueError(f"connector {c.connector_id} is {c.status(0.0)}")
        if c.reservation is not None and id_tag not in (c.reservation.id_tag, c.reservation.parent_id_tag):
            raise ValueError(f"connector {c.connector_id} is reserved for another id tag")
        self.settle()
        now = self.wall_clock()
        tx = Transaction(c.connector_id, id_tag, meter_start=int(c.meter.energy_wh), started=now,
                         local_id=next(self._local_ids),
                         reservation_id=c.reservation.reservation_id if c.reservation else None)
        c.transaction, c.finishing, c.starting, c.reservation = tx, False, False, None
        self.settle()
        tx.begin = self._signed(electrics.sample(self, c, "Transaction.Begin", self.config.items("StopTxnSampledData")),
                                tx, c, "B")
        entry = self.outbox.put(Entry(tx, "StartTransaction", build=lambda: call.StartTransaction(
            connector_id=tx.connector_id, id_tag=id_tag, meter_start=tx.meter_start, timestamp=iso(now),
            reservation_id=tx.reservation_id), on_result=lambda result: self._started(tx, result)))
        self.emit("start_transaction", connector_id=c.connector_id, id_tag=id_tag, local_id=tx.local_id,
                  meter_start=tx.meter_start)
        return tx, entry

    def _signed(self, value: dict, tx: Transaction, c: Connector, kind: str) -> dict:
        """The MeterValue with the meter's OCMF-signed energy reading added, when this charger has a signing meter."""
        if self.ocmf_key is None:
            return value
        signed = ocmf.sign(self.ocmf_key, meter_serial=f"{self.id}-M{c.connector_id}", transaction_id=str(tx.local_id),
                           id_tag=tx.id_tag, energy_wh=c.meter.energy_wh, at=self.wall_clock(), kind=kind)
        context = "Transaction.Begin" if kind == "B" else "Transaction.End"
        return {**value, "sampled_value": [*value["sampled_value"], {
            "value": signed, "context": context, "format": "SignedData", "measurand": "Energy.Active.Import.Register",
            "unit": "Wh"}]}

    def _started(self, tx: Transaction, result: Any) -> None:
        tx.transaction_id = result.transaction_id
        status = result.id_tag_info["status"]
        self.local_auth.remember(tx.id_tag, status)
        self.emit("transaction_id", connector_id=tx.connector_id, local_id=tx.local_id,
                  transaction_id=tx.transaction_id, status=status)
        c = self.connectors[tx.connector_id]
        if status != "Accepted" and c.transaction is tx and self.config.flag("StopTransactionOnInvalidId"):
            self.spawn(lambda: self.stop_if_running(tx, "DeAuthorized"))

    async def stop_if_running(self, tx: Transaction, reason: str) -> None:
        """For follow-ups: the driver may have stopped `tx` in the meantime."""
        if self.connectors[tx.connector_id].transaction is tx:
            await self.stop_transaction(tx.connector_id, reason)

    def end_transaction(self, c: Connector, reason: str, id_tag: str | None = None) -> Entry:
        """Stop the transaction now and queue its StopTransaction (synchronous: safe inside handlers)."""
        tx = c.transaction
        if tx is None:
            raise ValueError(f"connector {c.connector_id} has no transaction")
        self.settle()
        now = self.wall_clock()
        end = self._signed(electrics.sample(self, c, "Transaction.End", self.config.items("StopTxnSampledData")),
                           tx, c, "E")
        data = [sample for sample in (tx.begin, tx.last, end) if sample]
        meter_stop = int(c.meter.energy_wh)
        c.transaction, c.finishing = None, c.car is not None
        self.charging_profiles = [i for i in self.charging_profiles
                                  if not (i.connector_id == c.connector_id and i.profile.purpose == profiles.TX)]
        if c.scheduled_operative is not None:
            c.operative, c.scheduled_operative = c.scheduled_operative, None
        self.settle()

        def build() -> Any:
            if tx.transaction_id is None:
                return None
            return call.StopTransaction(meter_stop=meter_stop, timestamp=iso(now), transaction_id=tx.transaction_id,
                                        reason=reason, id_tag=id_tag, transaction_data=data)
        self.emit("stop_transaction", connector_id=c.connector_id, transaction_id=tx.id, reason=reason,
                  meter_stop=meter_stop, energy_wh=meter_stop - tx.meter_start)
        return self.outbox.put(Entry(tx, "StopTransaction", build))

    async def reset(self, kind: str, link: session.Link | None = None) -> None:
        """A Reset, after it was answered over `link`: stop the transactions, then reboot (reconnect, boot)."""
        link = link or self.link
        reason = "HardReset" if kind == "Hard" else "SoftReset"
        entries = [self.end_transaction(c, reason) for c in self.connectors.values() if c.transaction]
        for entry in entries:
            await self.delivered(entry)
        await self.sync_status()
        self._accepted.clear()
        self.emit("reset", type=kind)
        if link is not None:
            await link.close()

    async def power_cycle(self) -> None:
        """The charger loses its power and gets it back: what a real power cycle does, whether run() is running
        (its connection drops; it reconnects) or was cancelled (call run() again). Its transactions stop (reason
        PowerLoss, queued, sent after the boot), the registration is forgotten, and the next connection boots
        (BootNotification, then every connector's StatusNotification). What a charger keeps on its own storage
        stays: its configuration, the queue, its local list, certificates and charging profiles (a TxProfile
        ends with its transaction). The cars stay plugged in.

        A plain `task.cancel(); run()` is a network blip, not this: the charger resumes as it was."""
        for c in self.connectors.values():
            if c.transaction is not None:
                self.end_transaction(c, "PowerLoss")
        self._accepted.clear()
        self.emit("power_cycle")
        link = self.link
        if link is not None:
            await link.close()

    async def delivered(self, entry: Entry) -> None:
        """While online, until the central system answered `entry`; offline it stays queued."""
        link = self.link
        if link is not None:
            await self._wait(lambda: entry.delivered or self.link is not link, None)

    # ---- status ------------------------------------------------------------------

    async def sync_status(self, force: Iterable[int] = (), via: session.Link | None = None) -> None:
        """Report every connector whose status changed since the central system last heard it.

        `via` sends over a link that is not online yet (during boot and resync).
        """
        forced = set(force)
        async with self._status_lock:
            link = via or self.link
            self.settle()
            for c in self.connectors.values():
                status = c.status(electrics.offered(self, c))
                error = c.fault or Fault("NoError")
                if (status, error) != c.shown:
                    c.shown = (status, error)
                    self.emit("status", connector_id=c.connector_id, status=status, error_code=error.error_code)
                if link is None or ((status, error) == c.reported and c.connector_id not in forced):
                    continue
                try:
                    await link.send(call.StatusNotification(
                        connector_id=c.connector_id, error_code=error.error_code, status=status,
                        timestamp=iso(self.wall_clock()), info=error.info or None,
                        vendor_error_code=error.vendor_error_code))
                except NotConnected:
                    return
                except OCPPError as exc:  # refused: the next change or resync tries again
                    self.emit("call_error", action="StatusNotification", error=repr(exc))
                    continue
                except TimeoutError as exc:  # no answer: do not wait that long for every connector
                    self.emit("call_error", action="StatusNotification", error=repr(exc))
                    return
                c.reported = (status, error)

    # ---- helpers and periodic work ---------------------------------------------------

    def _connector(self, connector_id: int) -> Connector:
        if connector_id == 0 or connector_id not in self.connectors:
            raise ValueError(f"{self.id} has no connector {connector_id}")
        return self.connectors[connector_id]

    def _known_status(self, id_tag: str) -> str | None:
        return self.local_auth.lookup(id_tag, use_list=self.config.flag("LocalAuthListEnabled"),
                                      use_cache=self.config.flag("AuthorizationCacheEnabled"))

    def settle(self) -> None:
        electrics.settle(self)

    async def _tick_loop(self) -> None:
        # Schedules move on with time and cars fill up: statuses follow within a second.
        while True:
            await asyncio.sleep(min(1.0, max(0.05, self.config.number("MeterValueSampleInterval") or 1.0)))
            now = self.wall_clock()
            for c in self.connectors.values():
                if c.reservation is not None and now >= c.reservation.expiry:
                    c.reservation = None
                    self.emit("reservation_expired", connector_id=c.connector_id)
            await self.sync_status()
