"""Commissioning against the running edge: gather the facts, run the checks, step chargers.

The rotation detection changes what cars draw, so it runs only when asked
(`edgectl commission --detect-rotation`, the installer's consent) and only on
connectors with a running session. For one charger at a time it installs a
TxProfile one stack level above the load manager's (so it wins) at 0 A, reads
the meter, then at the step current, reads again, and removes its profile (the
load manager's own takes over again). The step is at most what the circuit had
free with the car at 0 A (never over a fuse the meter can see), and each profile
ends by itself after STEP_PROFILE_S, should the edge stop mid-way. Each reading is taken the load
manager's follow_time, three meter periods and SETTLE_MARGIN_S after the step (tests with instant
simulated cars shorten the margin).

A run shows how far it got while it runs (`stage`, `progress`, `checks`, `rotation`
grow as it goes): the web page polls them, as the detection takes tens of seconds.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Iterable

from edge.commission.checks import Check, charger_checks, clock_offset, failed, meter_checks
from edge.commission.rotation import Step, config_lines, decide
from edge.config import config_warnings
from edge.dlm.phases import ROTATIONS, NAMES
from edge.journal import Store
from edge.stations.model import ChargingLimit, LimitPurpose

if TYPE_CHECKING:
    from edge.web.site import SiteView

log = logging.getLogger(__name__)

ACTOR = "edge:commission"
PROFILE_ID_BASE = 900
STEP_PROFILE_S = 120
MIN_STEP = 6.0          # IEC 61851: below this a car does not charge
# Beyond follow_time and three meter periods: for a car slower than the load manager was told, or a late reading.
SETTLE_MARGIN_S = 1.0


class Commissioning:
    def __init__(self, site: "SiteView", *, settle_s: float | None = None, why: str = ""):
        self.site = site
        manager = site.load_manager
        periods = [m.config.period for m in site.meters.values()] or [1.0]
        follow = manager.settings.follow_time if manager is not None else 5.0
        # The car follows a new limit within follow_time; then two fresh meter readings.
        self.settle_s = settle_s if settle_s is not None else follow + 3 * max(periods) + SETTLE_MARGIN_S
        # Every command it sends says so in the actions log, with who asked why when known.
        self.reason = f"commissioning ({why})" if why else "commissioning"
        # How far the run got, for whoever watches it (the web page polls these).
        self.stage = "not started"
        self.progress: list[dict[str, Any]] = []
        self.checks: list[Check] = []
        self.rotation: list[dict[str, Any]] = []

    def _at(self, stage: str) -> None:
        self.stage = stage
        self.progress.append({"at": self.site.clock.now_iso(), "text": stage})

    def _found(self, checks: Iterable[Check]) -> None:
        self.checks.extend(checks)

    async def run(self, *, detect_rotation: bool = False) -> dict[str, Any]:
        self._at("checking the config")
        self._found(self._config())
        self._at("checking the meters' latest readings")
        self._found(self._meters())
        await self._chargers()
        if detect_rotation:
            await self._rotation()
            self._found(Check(f"charger {r['charger_id']}/{r['connector_id']}: rotation",
                              {"ok": "pass", "mismatch": "fail", "undetermined": "warn"}.get(r["verdict"], "warn"),
                              r["detail"], "\n".join(r["config_lines"])) for r in self.rotation)
        self._at("checking the uplink")
        self._found(self._uplink())
        self._at("done")
        return {"ok": not failed(self.checks), "checks": [c.as_dict() for c in self.checks],
                "rotation": self.rotation}

    def _config(self) -> list[Check]:
        status = self.site.config_status()
        out = [Check("config", "pass" if status["ok"] else "fail",
                     f"running on the {status['running_on']} {status['file']}",
                     "" if status["ok"] else "; ".join(status["problems"]))]
        return out + [Check("config: warning", "warn", w) for w in config_warnings(self.site.config)]

    def _meters(self) -> list[Check]:
        out = []
        now = self.site.clock.monotonic()
        for meter_id, poller in self.site.meters.items():
            reading = poller.latest
            fresh = reading is not None and poller.healthy(now, 3 * poller.config.period + poller.config.timeout)
            out += meter_checks(meter_id, reachable=fresh,
                                problem=None if fresh else f"{poller.failures} failed poll(s) in a row",
                                voltage=reading.voltage if fresh else None,
                                current=reading.current if fresh else None, power=reading.power if fresh else None,
                                frequency=reading.frequency if fresh else None,
                                reads_frequency=poller.map.row("frequency") is not None, phases=poller.map.phases)
        return out

    async def _chargers(self) -> None:
        site = self.site
        rows = {r["id"]: r for r in await site.journal.read(Store.chargers)}
        stack_level = site.config.load_management.stack_level + 1
        cards = len(site.config.tokens) if site.config.authorization.push_local_lists else None
        for charger in site.config.chargers:
            connected = site.control.is_connected(charger.id)
            configuration = offset = None
            if connected:
                self._at(f"asking charger {charger.id} for its configuration")
                answer = await site.control.read_configuration(charger.id, actor=ACTOR, reason=self.reason)
                configuration = answer.value
                status = await site.journal.read(Store.connectors, charger.id)
                latest = max(status, key=lambda r: r["updated_at"], default=None)
                offset = clock_offset(latest["charger_time"], latest["updated_at"]) if latest else None
            self._found(charger_checks(
                charger.id, connected=connected, registration=rows.get(charger.id, {}).get("registration"),
                clock_offset_s=offset, configuration=configuration,
                smart_charging_needed=site.load_manager is not None and charger.smart_charging,
                stack_level_needed=stack_level, local_list_needed=cards))

    def _uplink(self) -> list[Check]:
        uplink = self.site.uplink
        if uplink is None:
            return [Check("uplink", "skip", "[uplink] enabled = false: no cloud")]
        up = uplink.connection is not None
        return [Check("uplink", "pass" if up else "fail",
                      f"connected to {uplink.settings.host}:{uplink.settings.port} since {uplink.connected_since}"
                      if up else f"not connected to {uplink.settings.host}:{uplink.settings.port}",
                      "" if up else "check the broker address, the site's MQTT password file and the firewall")]

    # -- the rotation detection ---------------------------------------------------------------------

    async def _rotation(self) -> None:
        manager = self.site.load_manager
        if manager is None:
            self.rotation.append({"charger_id": "-", "connector_id": 0, "verdict": "undetermined",
                                  "config_lines": [],
                                  "detail": "no [[circuits]]: load management is off, no meter to see the phases on"})
            return
        for evse in manager.topology.evses:
            track = manager.tracks[evse.key]
            if track.transaction_id is None or not evse.smart_charging:
                continue
            self.rotation.append(await self._step(manager, evse, track.transaction_id))
        if not self.rotation:
            self.rotation.append({"charger_id": "-", "connector_id": 0, "verdict": "undetermined",
                                  "config_lines": [], "detail": "no car is charging: start a session on each "
                                                                "charger to check, then run again"})

    def _meter_for(self, manager, evse):
        for circuit_id in manager.topology.paths[evse.circuit]:
            if circuit_id in manager.meters:
                return manager.topology.by_id[circuit_id], manager.meters[circuit_id]
        return None, None

    async def _read_after(self, meter, since: float):
        """The first good reading taken `settle_s` after `since`."""
        await asyncio.sleep(self.settle_s)
        for _ in range(50):
            reading = meter.latest
            if reading is not None and reading.at >= since + self.settle_s:
                return reading
            await asyncio.sleep(meter.config.period / 2)
        return None

    async def _profile(self, evse, transaction_id: int, limit: float, stack_level: int) -> str:
        profile = ChargingLimit(PROFILE_ID_BASE + evse.connector_id, LimitPurpose.TX, limit, stack_level,
                                evse=evse.connector_id, transaction_id=transaction_id, start=self.site.clock.now(),
                                duration_s=STEP_PROFILE_S)
        self._at(f"charger {evse.charger_id}/{evse.connector_id}: step to {limit:g} A, then {self.settle_s:g} s "
                 "for the car to follow and the meter to read")
        result = await self.site.control.set_charging_limit(evse.charger_id, profile, actor=ACTOR,
                                                            reason=f"{self.reason}: phase-rotation step to {limit:g} A")
        return result.outcome

    async def _step(self, manager, evse, transaction_id: int) -> dict[str, Any]:
        charger = self.site.config.charger(evse.charger_id)
        phases = len(evse.phase_map)
        configured = ("".join("RST"[i] for i in evse.phase_map) if phases == 3 else NAMES[evse.phase_map[0]])
        row: dict[str, Any] = {"charger_id": evse.charger_id, "connector_id": evse.connector_id,
                               "configured": configured, "config_lines": []}
        circuit, meter = self._meter_for(manager, evse)
        if meter is None:
            return row | {"verdict": "undetermined", "detail": "no meter above this charger's circuit"}
        stack_level = manager.settings.stack_level + 1
        try:
            if await self._profile(evse, transaction_id, 0, stack_level) != "ok":
                return row | {"verdict": "unclear", "detail": "the charger refused the 0 A profile"}
            before = await self._read_after(meter, self.site.clock.monotonic())
            if before is None:
                return row | {"verdict": "unclear", "detail": "no meter reading at 0 A"}
            free = circuit.limit - manager.topology.margin - max(before.current)
            step = min(evse.max_current, free)
            if step < MIN_STEP:
                return row | {"verdict": "unclear",
                              "detail": f"only {free:.1f} A free on {circuit.id}: not enough to step; try when the "
                                        "building draws less"}
            if await self._profile(evse, transaction_id, step, stack_level) != "ok":
                return row | {"verdict": "unclear", "detail": "the charger refused the step profile"}
            during = await self._read_after(meter, self.site.clock.monotonic())
        finally:
            await self.site.control.clear_charging_limit(evse.charger_id, PROFILE_ID_BASE + evse.connector_id,
                                                         actor=ACTOR,
                                                         reason=f"{self.reason}: step done, load management takes over")
        if during is None:
            return row | {"verdict": "unclear", "detail": "no meter reading during the step"}
        finding = decide(Step(step, before.current, during.current, before.power, during.power),
                         charger_phases=phases, configured=configured)
        moved = ", ".join(NAMES[i] for i in finding.moved) or "none"
        detail = f"stepped to {step:g} A: grid phases moved: {moved} (rises " + \
            ", ".join(f"{NAMES[i]} {r:+.1f} A" for i, r in enumerate(finding.rises)) + ")"
        if finding.verdict == "mismatch" and finding.suggested:
            detail += f"; configured {configured}, the meter shows {finding.suggested}"
            if finding.alternatives:
                detail += f" (or {', '.join(finding.alternatives)})"
        if finding.note:
            detail += f"; {finding.note}"
        if finding.inverted_ct:
            detail += "; INVERTED CT on grid " + ", ".join(NAMES[i] for i in finding.inverted_ct) + \
                " (power fell while current rose): turn the current transformer round"
        lines = config_lines(evse.charger_id, phases, finding) if charger is not None else []
        verdict = "mismatch" if finding.inverted_ct else finding.verdict
        return row | {"verdict": verdict, "detected": finding.suggested or (configured if finding.verdict == "ok"
                                                                              else None),
                      "candidates": list(finding.candidates) if finding.candidates != ROTATIONS else [],
                      "moved": [NAMES[i] for i in finding.moved], "detail": detail, "config_lines": lines}
