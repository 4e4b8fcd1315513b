"""Sessions the edge ends by itself (seed 004's stop-session limits and session
timeouts, seed 003's incomplete charge record):

- a tariff's **limits** (max time, max energy): the edge sends
  RemoteStopTransaction and the record says why;
- **fail starting**: an accepted Authorize or remote start that no
  StartTransaction follows in time (no car plugged in) is recorded as Failed;
- **finish after inactivity**: a session without MeterValues for long, on a
  charger that is connected, is closed by the edge from its last known values;
- **offline is not inactivity**: while its charger is disconnected a session
  is not inactive (the charger queues its messages); only a separate, much
  longer offline limit closes it. Silence counts again from the reconnection;
- a charger that **rebooted and forgot** a session (no StopTransaction, no
  sign of it after the boot) gets it closed from its last meter values;
- a start the charger was **refused** is watched for its closes only: no
  limit applies and no RemoteStop goes to a transaction the charger dropped;
  once the charger proves it runs it anyway (transaction.running), it is
  stopped remotely.

A charger's real StopTransaction after such a close corrects it (edge.sessions).

What is due is decided by `due`, a pure function of one session's facts and
the time; `SessionWatch` keeps those facts from the bus and acts.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from edge.cdr.energy import last_known
from edge.cdr.pins import pinned
from edge.cdr.pricing import auto_stop
from edge.cdr.record import ENERGY, readings
from edge.cdr.service import Attempt, ChargeRecords
from edge.cdr.tariffs import Tariff
from edge.clock import Clock, iso, parse_iso
from edge.events import Event, EventBus
from edge.failures import Failing
from edge.journal import Journal, Store
from edge.stations.control import StationControl
from edge.sessions import Sessions
from edge.sessions.connector import IN_TRANSACTION

log = logging.getLogger(__name__)

ACTOR = "edge:session-watch"
# A RemoteStopTransaction that did not end the session is sent again after this.
STOP_RETRY = timedelta(seconds=60)


@dataclass(frozen=True)
class Timeouts:
    fail_start_after: timedelta = timedelta(seconds=60)
    inactivity: timedelta = timedelta(minutes=120)
    reboot_grace: timedelta = timedelta(seconds=60)
    offline: timedelta = timedelta(days=7)

    @staticmethod
    def of(section: Any) -> "Timeouts":
        """From the [session_timeouts] config table."""
        return Timeouts(timedelta(seconds=section.fail_start_after), timedelta(minutes=section.finish_after_inactivity),
                        timedelta(seconds=section.reboot_grace), timedelta(minutes=section.finish_after_offline))


@dataclass(frozen=True)
class Running:
    transaction_id: int
    charger_id: str
    connector_id: int
    id_tag: str
    user_group: str | None
    started: datetime                 # charger start time, never later than its arrival
    meter_start: float
    last_values: datetime             # edge time of the latest MeterValues (or of the start)
    register_wh: float                # the highest energy register seen
    stop_asked: datetime | None = None
    runs: bool = True                 # the charger runs it (edge.sessions.connector)
    refused: bool = False             # the charger was answered not Accepted at the start


Action = tuple[Literal["stop", "close"], str]


def due(run: Running, tariff: Tariff, now: datetime, timeouts: Timeouts, booted: datetime | None,
        status_since_boot: str | None, offline_since: datetime | None = None,
        reconnected: datetime | None = None) -> Action | None:
    """What the edge must do about one open session now, if anything. `offline_since`:
    when its charger disconnected, None while it is connected; `reconnected`: when it
    came back last (its silence counts from then, not from before the outage)."""
    if offline_since is not None:
        # A disconnected charger queues its MeterValues and its StopTransaction: its
        # silence is the network's, not the session's. Nothing can be sent to it either.
        if now - offline_since >= timeouts.offline:
            return "close", (f"closed after the offline limit: the charger has been disconnected since "
                             f"{iso(offline_since)} ({timeouts.offline.total_seconds() / 60:g} min); closed from "
                             "the last meter values")
        return None
    if booted is not None and booted > run.last_values and now - booted >= timeouts.reboot_grace \
            and status_since_boot not in IN_TRANSACTION:
        return "close", (f"incomplete charge record: the charger rebooted at {iso(booted)} and forgot the "
                         "transaction; closed from the last meter values")
    if now - max(run.last_values, reconnected or run.last_values) >= timeouts.inactivity:
        return "close", (f"finished after inactivity: no MeterValues for "
                         f"{timeouts.inactivity.total_seconds() / 60:g} min; closed from the last meter values")
    if not run.runs:
        return None         # a refused start the charger dropped: nothing to stop
    if run.stop_asked is not None and now - run.stop_asked < STOP_RETRY:
        return None
    if run.refused:
        return "stop", "the charger runs a transaction whose token was refused at the start"
    # In minutes, not as a timedelta: a huge max_minutes must not overflow.
    if tariff.max_minutes is not None and (now - run.started) / timedelta(minutes=1) >= float(tariff.max_minutes):
        return "stop", f"session limit: max time {tariff.max_minutes} min reached (tariff {tariff.id})"
    if tariff.max_kwh is not None and (run.register_wh - run.meter_start) / 1000 >= tariff.max_kwh:
        return "stop", f"session limit: max energy {tariff.max_kwh} kWh reached (tariff {tariff.id})"
    return None


class SessionWatch:
    def __init__(self, sessions: Sessions, records: ChargeRecords, control: StationControl, bus: EventBus, clock: Clock,
                 journal: Journal, timeouts: Timeouts, check_every: float = 5.0):
        self._sessions, self._records, self._control = sessions, records, control
        self._bus, self._clock, self._journal = bus, clock, journal
        self.timeouts = timeouts
        self._check_every = check_every
        self.running: dict[int, Running] = {}
        self.attempts: dict[tuple[str, str], Attempt] = {}        # (charger, id tag upper-cased) -> attempt
        self._booted: dict[str, datetime] = {}
        self._status: dict[tuple[str, int], tuple[str, datetime]] = {}
        self._offline: dict[str, datetime] = {}                   # charger -> since when it is disconnected
        self._reconnected: dict[str, datetime] = {}               # charger -> when it came back last
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task] = set()
        self._failing = Failing(log)              # sessions whose check fails
        self._pinned: dict[int, Tariff | None] = {}  # transaction -> the tariff pinned at its start

    async def load(self) -> None:
        """The running sessions as the journal has them (at start, or after lost events).

        Their silence counts from now: while the edge was not listening, chargers
        queued their MeterValues, and they deliver them once they reconnect."""
        rows = await self._journal.read(Store.active_transactions)
        now = self._clock.now()
        running = {}
        for row in rows:
            try:
                run = self._running(row["id"], row["charger_id"], row["connector_id"], row["id_tag"],
                                    row["user_group"], row["start_time"], row["meter_start"], now)
                _, samples = await self._journal.read(Store.cdr_source, row["id"])
                _, register = last_known(run.started, run.meter_start, readings(samples, ENERGY))
            except Exception:  # noqa: BLE001 - one stored session must not stop the edge from starting
                log.exception("session watch: transaction=%s cannot be followed (limits and timeouts are not "
                              "applied to it); the others are", row["id"])
                continue
            session = self._sessions.connectors.get(row["id"])
            running[run.transaction_id] = replace(run, register_wh=register, runs=session.runs if session else True,
                                                  refused=session.refused if session else False)
        self.running = running

    async def run(self) -> None:
        events = self._bus.subscribe()
        ticker = asyncio.create_task(self._tick())
        try:
            await self.load()
            while True:
                event = await events.get()
                if events.dropped:
                    events.dropped = 0
                    await self.load()
                try:
                    moved = self.observe(event)
                except Exception:  # noqa: BLE001 - one odd event must not end the watch over all sessions
                    log.exception("session watch: %s of charger %s could not be taken in", event.kind,
                                  event.charger_id)
                    continue
                if moved is not None:
                    await self.check(only=moved)
        finally:
            ticker.cancel()
            self._bus.unsubscribe(events)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self._check_every)
            await self.check()

    # -- facts from the bus ---------------------------------------------------------

    def _running(self, tx: int, charger_id: str, connector_id: int, id_tag: str, user_group: str | None,
                 start_time: str, meter_start: float, last_values: datetime) -> Running:
        now = self._clock.now()
        started = min(parse_iso(start_time) or now, now)
        return Running(tx, charger_id, connector_id, id_tag, user_group, started, meter_start, last_values,
                       meter_start)

    def observe(self, event: Event) -> int | None:
        """Take in one event; the transaction whose limit it may have reached (checked at once), else None."""
        data, now, charger = event.data, self._clock.now(), event.charger_id
        if event.kind == "charger.disconnected":
            self._offline.setdefault(charger, now)
        elif charger in self._offline:
            # Back (any sign of it): its sessions' silence counts from now; it delivers what it queued.
            del self._offline[charger]
            self._reconnected[charger] = now
        if event.kind == "transaction.started":
            self.running[data["transaction_id"]] = replace(self._running(
                data["transaction_id"], charger, data["connector_id"], data["id_tag"], data.get("user_group"),
                data["timestamp"], data["meter_start"], now), runs=data.get("runs", True),
                refused=data.get("answered", "Accepted") != "Accepted")
            self.attempts.pop((charger, data["id_tag"].upper()), None)
        elif event.kind == "transaction.running" and data["transaction_id"] in self.running:
            self.running[data["transaction_id"]] = replace(self.running[data["transaction_id"]], runs=True)
            return data["transaction_id"]
        elif event.kind == "transaction.stopped":
            self.running.pop(data["transaction_id"], None)
            if data.get("id_tag"):      # a card tapped to stop is not a start that failed
                self.attempts.pop((charger, data["id_tag"].upper()), None)
        elif event.kind == "meter.values" and data.get("transaction_id") in self.running:
            run = self.running[data["transaction_id"]]
            registers = [s.value for s in data["samples"] if s.measurand == ENERGY and not s.phase
                         and s.unit in (None, "Wh")]
            self.running[run.transaction_id] = replace(run, last_values=now,
                                                       register_wh=max([run.register_wh, *registers]))
            return run.transaction_id if registers else None
        elif event.kind == "token.authorized" and data["status"] == "Accepted":
            self._attempt(charger, None, data["id_tag"], data.get("user_group"), "authorization")
        elif event.kind == "command.done" and data.get("start") and data["outcome"] == "ok":
            self._attempt(charger, data["start"]["connector_id"], data["start"]["id_tag"], None, "remote start")
        elif event.kind == "charger.booted":
            self._booted[charger] = now
        elif event.kind == "connector.status":
            self._status[(charger, data["connector_id"])] = (data["status"], now)
        return None

    def _attempt(self, charger_id: str, connector_id: int | None, id_tag: str, user_group: str | None,
                 how: str) -> None:
        key = (charger_id, id_tag.upper())
        # Its session may be running already (a fast charger), or it is a tap to stop one.
        if any((r.charger_id, r.id_tag.upper()) == key for r in self.running.values()):
            return
        self.attempts[key] = Attempt(charger_id, connector_id, id_tag,
                                     user_group or self._records.user_group_of(id_tag), self._clock.now(), how)

    # -- acting ----------------------------------------------------------------------

    async def check(self, only: int | None = None) -> None:
        """Every session and start attempt (the tick), or `only` the session a reading just moved: a
        reading moves its own session's energy and price, not the others' (with 500 sessions, checking
        all of them at each reading was a tenth of the edge's work: docs/performance.md)."""
        async with self._lock:
            now = self._clock.now()
            if only is not None:
                if only in self.running:
                    await self._check_one(self.running[only], now)
                return
            for key, attempt in list(self.attempts.items()):
                if now - attempt.at >= self.timeouts.fail_start_after:
                    del self.attempts[key]
                    await self._records.record_failed(attempt, (
                        f"no car plugged in within {self.timeouts.fail_start_after.total_seconds():g} s of the "
                        f"{attempt.how}; start discarded"))
            for run in list(self.running.values()):
                await self._check_one(run, now)
            self._failing.keep_only(self.running)
            for gone in self._pinned.keys() - self.running.keys():
                del self._pinned[gone]

    async def _check_one(self, run: Running, now: datetime) -> None:
        try:
            await self._check(run, now)
        except Exception as exc:  # noqa: BLE001 - one session's failure is its own; the others are watched
            # Loud once per error: it is checked again every few seconds.
            self._failing.failed(run.transaction_id, exc, "session watch: transaction=%s cannot be checked "
                                 "(limits and timeouts are not applied to it until this is fixed)",
                                 run.transaction_id)
        else:
            self._failing.ok(run.transaction_id)

    async def _tariff(self, run: Running) -> Tariff | None:
        """The tariff the session is billed under: the one pinned at its start, so its limits and its
        auto-stop amount are the ones the driver started under, not a tariff changed since."""
        if run.transaction_id in self._pinned:
            return self._pinned[run.transaction_id]
        pin = await pinned(self._journal, self._records, {
            "id": run.transaction_id, "charger_id": run.charger_id, "connector_id": run.connector_id,
            "id_tag": run.id_tag, "user_group": run.user_group})
        if pin.pinned_at is not None:       # not pinned yet (the pin follows the start event): ask again next time
            self._pinned[run.transaction_id] = pin.tariff
        return pin.tariff

    async def _check(self, run: Running, now: datetime) -> None:
        tariff = await self._tariff(run)
        booted = self._booted.get(run.charger_id)
        status, since = self._status.get((run.charger_id, run.connector_id), (None, None))
        action = due(run, tariff, now, self.timeouts, booted, status if booted and since and since >= booted else None,
                     self._offline.get(run.charger_id), self._reconnected.get(run.charger_id))
        if action is None and (run.stop_asked is None or now - run.stop_asked >= STOP_RETRY):
            pricing = self._records.pricing
            why = auto_stop(tariff, run.started, run.meter_start, run.register_wh, now, pricing.tz, pricing.currency,
                            pricing.vat_percent)
            action = ("stop", why) if why else None
        if action is not None:
            await self._act(run, *action)

    async def _act(self, run: Running, kind: str, why: str) -> None:
        if run.transaction_id not in self.running:      # it ended while an earlier one was acted on
            return
        if kind == "close":
            # From its last known values (edge.sessions); ended already (a stop came first): nothing.
            await self._sessions.close(run.transaction_id, why)
            self.running.pop(run.transaction_id, None)
            return
        self.running[run.transaction_id] = replace(self.running[run.transaction_id], stop_asked=self._clock.now())
        if run.stop_asked is None:
            await self._journal.write(Store.note_edge_stop, run.transaction_id, why)
        log.info("stopping transaction=%s charger=%s: %s", run.transaction_id, run.charger_id, why)
        # Not awaited here: a charger has up to its response timeout to answer, and
        # the other sessions must not wait for it.
        task = asyncio.create_task(self._control.remote_stop(run.charger_id, run.transaction_id, actor=ACTOR,
                                                             reason=why))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
