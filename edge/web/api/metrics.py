"""GET /metrics (Prometheus text format) and GET /healthz (liveness, no token).

/metrics needs the API's bearer token like every route, unless [api]
metrics_without_token = true: then a scraper on the network reads it without
one (it shows currents, charger ids and counts, no tokens or card ids; keep
the port behind a firewall). docs/metrics.md lists the series.

Each scrape reads the live state (`snapshot`): the load manager's own
`status()` (so a scrape shows the very numbers `GET /api/v1/dlm` shows), the
meters, the chargers' connections, the journal's size, the outbox backlog, and
the counters of edge.metrics.MetricsRecorder; `SnapshotCollector` turns that
into series in a fresh registry, so nothing is process-global.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Iterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from edge.metrics import MetricsRecorder
from edge.web.common import json_response, public
from edge.web.site import SiteView

PREFIX = "sitecontroller"
CONNECTION = ("Available", "TemporarilyUnavailable", "LongTermUnavailable")


class MetricsRoutes:
    def __init__(self, site: SiteView):
        self.site = site

    def routes(self) -> list[web.AbstractRouteDef]:
        async def metrics(request: web.Request) -> web.Response:
            return await self.metrics(request)

        async def healthz(request: web.Request) -> web.Response:
            return await self.healthz(request)
        # Marked on plain functions: a bound method takes no attributes.
        if self.site.config.api.metrics_without_token:
            public(metrics)
        return [web.get("/metrics", metrics), web.get("/healthz", public(healthz))]

    async def metrics(self, request: web.Request) -> web.Response:
        body = await render(self.site, self.site.metrics)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(self, request: web.Request) -> web.Response:
        """200 while the journal commits (what systemd's watchdog asks too), else 503."""
        healthy = self.site.healthy()
        return json_response({"healthy": healthy}, status=200 if healthy else 503)


@dataclass
class Snapshot:
    dlm: dict[str, Any] | None
    meters: list[dict[str, Any]]
    chargers: list[dict[str, Any]]
    sessions_active: int
    journal_bytes: int
    backlog: dict[str, int] | None
    healthy: bool
    recorder: MetricsRecorder | None
    failed_parts: list[str] = field(default_factory=list)


async def snapshot(site: SiteView, recorder: MetricsRecorder | None) -> Snapshot:
    manager = site.load_manager
    now = site.clock.monotonic()
    meters = []
    for meter_id, poller in site.meters.items():
        reading = poller.latest
        meters.append({"meter": meter_id, "polls": poller.polls, "failures": poller.failures,
                       "errors": dict(poller.errors), "poll_seconds": poller.poll_seconds,
                       "age_s": (now - reading.at) if reading else None,
                       "voltage": reading.voltage if reading else None, "power": reading.power if reading else None,
                       "frequency": reading.frequency if reading else None})
    presence = site.presence
    ids = sorted(set(site.directory.ids()) | set(site.ocpp.sessions))
    chargers = [{"charger": i, "connected": i in site.ocpp.sessions, "presence": presence.status(i)} for i in ids]
    backlog = await site.uplink.outbox.backlog() if site.uplink is not None else None
    return Snapshot(dlm=manager.status() if manager is not None else None, meters=meters, chargers=chargers,
                    sessions_active=len(site.sessions.active()), journal_bytes=_journal_bytes(site),
                    backlog=backlog, healthy=site.healthy(), recorder=recorder,
                    failed_parts=[p["part"] for p in site.supervisor.report()])


def _journal_bytes(site: SiteView) -> int:
    path = site.config.state_path(site.config.journal.path)
    total = 0
    for suffix in ("", "-wal"):
        try:
            total += os.path.getsize(f"{path}{suffix}")
        except OSError:
            pass
    return total


def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=labels)


class SnapshotCollector:
    def __init__(self, snap: Snapshot):
        self.snap = snap

    def collect(self) -> Iterator[Metric]:
        s = self.snap
        yield GaugeMetricFamily(f"{PREFIX}_healthy", "1 while the journal commits", value=int(s.healthy))
        yield GaugeMetricFamily(f"{PREFIX}_sessions_active", "sessions (transactions) running", value=s.sessions_active)
        yield GaugeMetricFamily(f"{PREFIX}_journal_bytes", "size of the journal file and its WAL",
                                value=s.journal_bytes)
        parts = _gauge("part_failed", "1 for a part that failed since the start and was started again", ["part"])
        for part in s.failed_parts:
            parts.add_metric([part], 1)
        yield parts
        yield from self._dlm()
        yield from self._meters()
        connected = _gauge("charger_connected", "1 while the charger's WebSocket is open", ["charger"])
        state = _gauge("charger_connection_state", "1 for the charger's connection status (presence)",
                       ["charger", "state"])
        for c in s.chargers:
            connected.add_metric([c["charger"]], int(c["connected"]))
            for name in CONNECTION:
                state.add_metric([c["charger"], name], int(c["presence"] == name))
        yield connected
        yield state
        if s.backlog is not None:
            backlog = _gauge("outbox_backlog_messages", "messages waiting for the cloud's receipt", ["stream"])
            for stream, count in sorted(s.backlog.items()):
                backlog.add_metric([stream], count)
            yield backlog
        yield from self._counters()

    def _dlm(self) -> Iterator[Metric]:
        dlm = self.snap.dlm
        if dlm is None:
            return
        labels = ["circuit", "phase"]
        metered = _gauge("circuit_phase_current_amperes", "metered current per circuit phase", labels)
        limit = _gauge("circuit_phase_limit_amperes", "the fuse's limit per phase (a cloud cap lowers it)", labels)
        allocated = _gauge("circuit_phase_allocated_amperes", "current allocated to managed chargers", labels)
        unmanaged = _gauge("circuit_phase_unmanaged_amperes", "the building's load, as estimated", labels)
        failsafe = _gauge("circuit_failsafe", "1 while the circuit runs on its failsafe assumption", ["circuit"])
        for c in dlm["circuits"]:
            failsafe.add_metric([c["id"]], int(c["failsafe"]))
            for p in c["phases"]:
                key = [c["id"], p["phase"]]
                limit.add_metric(key, c["limit"])
                allocated.add_metric(key, p["allocated"])
                if p["metered"] is not None:
                    metered.add_metric(key, p["metered"])
                if p["unmanaged"] is not None:
                    unmanaged.add_metric(key, p["unmanaged"])
        yield from (metered, limit, allocated, unmanaged, failsafe)
        conn_limit = _gauge("connector_limit_amperes", "the limit allocated to the connector, per phase",
                            ["charger", "connector"])
        measured = _gauge("connector_measured_amperes", "the car's draw the charger reports, per charger phase",
                          ["charger", "connector", "phase"])
        for c in dlm["connectors"]:
            key = [c["charger_id"], str(c["connector_id"])]
            if c["limit"] is not None:
                conn_limit.add_metric(key, c["limit"])
            for n, amps in enumerate(c["measured"] or ()):
                if amps is not None:
                    measured.add_metric(key + [f"L{n + 1}"], amps)
        yield conn_limit
        yield measured

    def _meters(self) -> Iterator[Metric]:
        polls = CounterMetricFamily(f"{PREFIX}_meter_polls", "polls of the meter started", labels=["meter"])
        failing = _gauge("meter_failed_polls", "consecutive polls without a good reading", ["meter"])
        age = _gauge("meter_reading_age_seconds", "age of the last good reading", ["meter"])
        voltage = _gauge("meter_voltage_volts", "line-to-neutral voltage", ["meter", "phase"])
        power = _gauge("meter_power_watts", "active power, + import", ["meter", "phase"])
        for m in self.snap.meters:
            if m["polls"] is not None:
                polls.add_metric([m["meter"]], m["polls"])
            failing.add_metric([m["meter"]], m["failures"])
            if m["age_s"] is not None:
                age.add_metric([m["meter"]], m["age_s"])
            for n in range(3):
                if m["voltage"] is not None:
                    voltage.add_metric([m["meter"], f"L{n + 1}"], m["voltage"][n])
                    power.add_metric([m["meter"], f"L{n + 1}"], m["power"][n])
        errors = CounterMetricFamily(f"{PREFIX}_meter_poll_errors", "polls without a good reading: no_answer "
                                     "(timeout, refused connection, Modbus error) or refused (failed the checks)",
                                     labels=["meter", "kind"])
        latency = HistogramMetricFamily(f"{PREFIX}_meter_poll_seconds", "answered polls, from the first request "
                                        "to the last answer", labels=["meter"])
        frequency = _gauge("meter_frequency_hertz", "the grid's frequency (maps that read it)", ["meter"])
        for m in self.snap.meters:
            for kind in ("no_answer", "refused"):
                errors.add_metric([m["meter"], kind], m["errors"].get(kind, 0))
            times = m["poll_seconds"]
            latency.add_metric([m["meter"]], [(floatToGoString(bound), n) for bound, n in times.cumulative()], times.sum)
            if m["frequency"] is not None:
                frequency.add_metric([m["meter"]], m["frequency"])
        yield from (polls, failing, age, voltage, power, errors, latency, frequency)

    def _counters(self) -> Iterator[Metric]:
        r = self.snap.recorder
        if r is None:
            return
        commands = CounterMetricFamily(f"{PREFIX}_ocpp_commands", "calls the edge sent to chargers, by outcome",
                                       labels=["action", "outcome"])
        for (action, outcome), n in sorted(r.commands.items()):
            commands.add_metric([action, outcome], n)
        events = CounterMetricFamily(f"{PREFIX}_events", "what the chargers reported, by event kind",
                                     labels=["kind"])
        for kind, n in sorted(r.events.items()):
            events.add_metric([kind], n)
        energy = CounterMetricFamily(f"{PREFIX}_energy_delivered_wh", "energy of sessions finished since the start",
                                     labels=["charger"])
        for charger, wh in sorted(r.energy_wh.items()):
            energy.add_metric([charger], wh)
        recovery = CounterMetricFamily(f"{PREFIX}_recovery_steps", "auto-recovery steps and give-ups",
                                       labels=["charger", "step"])
        for (charger, step), n in sorted(r.recovery.items()):
            recovery.add_metric([charger, step], n)
        calls = CounterMetricFamily(f"{PREFIX}_ocpp_calls_received", "Calls the chargers sent, by action and "
                                    "answer (accepted, or the CallError code)", labels=["charger", "action", "result"])
        for (charger, action, result), n in sorted(r.calls.items()):
            calls.add_metric([charger, action, result], n)
        yield from (commands, events, energy, recovery, calls)


def exposition(snap: Snapshot) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snap))
    return generate_latest(registry)


async def render(site: SiteView, recorder: MetricsRecorder | None) -> bytes:
    # Formatted on the loop: the recorder's counters change on it, a thread would race them
    # (a few hundred series take about a millisecond).
    return exposition(await snapshot(site, recorder))
