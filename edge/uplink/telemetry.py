"""Site telemetry for the cloud: per circuit and phase, the current against the
limit and the grid meter's power and energy, downsampled to one message per
interval (the highest and the mean current, so a short peak is not averaged
away). Sampled from the load manager once a second."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from edge.dlm.manager import LoadManager
from edge.dlm.model import Allocation
from edge.failures import Failing
from edge.uplink.outbox import Outbox

log = logging.getLogger(__name__)


def _r(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


@dataclass
class _Circuit:
    samples: int = 0
    metered: int = 0
    current_max: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    current_sum: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    power_sum: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    powered: int = 0
    failsafe: bool = False


class TelemetryWindow:
    """The samples of one interval. Pure: readings are passed in."""

    def __init__(self) -> None:
        self._circuits: dict[str, _Circuit] = {}
        self._last: Allocation | None = None
        self._energy: dict[str, tuple[float | None, float | None]] = {}
        self.samples = 0

    def add(self, allocation: Allocation, readings: dict[str, Any]) -> None:
        """readings: circuit id -> its meter's latest reading (with .power, .import_wh, .export_wh) or None."""
        self.samples += 1
        self._last = allocation
        for circuit_id, load in allocation.circuits.items():
            acc = self._circuits.setdefault(circuit_id, _Circuit())
            acc.samples += 1
            acc.failsafe = acc.failsafe or load.failsafe
            if all(p.metered is not None for p in load.phases):
                acc.metered += 1
                for i, phase in enumerate(load.phases):
                    acc.current_max[i] = max(acc.current_max[i], phase.metered)
                    acc.current_sum[i] += phase.metered
            reading = readings.get(circuit_id)
            if reading is not None:
                acc.powered += 1
                for i, watts in enumerate(reading.power):
                    acc.power_sum[i] += watts
                self._energy[circuit_id] = (reading.import_wh, reading.export_wh)

    def message(self, interval: float) -> dict[str, Any] | None:
        """The interval's telemetry body; None when nothing was sampled."""
        if self._last is None:
            return None
        circuits = []
        for circuit_id, load in self._last.circuits.items():
            acc = self._circuits.get(circuit_id, _Circuit())
            energy = self._energy.get(circuit_id, (None, None))
            circuits.append({
                "id": circuit_id, "failsafe": acc.failsafe,
                "limit_a": [_r(p.limit, 1) for p in load.phases],
                "current_max_a": [_r(v) for v in acc.current_max] if acc.metered else None,
                "current_mean_a": [_r(v / acc.metered) for v in acc.current_sum] if acc.metered else None,
                "allocated_a": [_r(p.allocated, 1) for p in load.phases],
                "power_mean_w": [_r(v / acc.powered, 0) for v in acc.power_sum] if acc.powered else None,
                "import_wh": _r(energy[0], 1), "export_wh": _r(energy[1], 1)})
        return {"interval_s": interval, "samples": self.samples, "circuits": circuits}


class TelemetrySampler:
    def __init__(self, load_manager: LoadManager, outbox: Outbox, *, interval: float, sample_every: float = 1.0):
        self._manager = load_manager
        self._outbox = outbox
        self.interval = interval
        self.sample_every = min(sample_every, interval)
        self.window = TelemetryWindow()
        self._failing = Failing(log)

    def sample(self) -> None:
        meters = self._manager.meters
        self.window.add(self._manager.allocation, {c: m.latest for c, m in meters.items()})

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + self.interval
        while True:
            await asyncio.sleep(self.sample_every)
            self._contained("sample", self.sample)
            if loop.time() >= due:
                due += self.interval
                body = self._contained("message", self.window.message, self.interval)
                self.window = TelemetryWindow()
                if body is not None:
                    try:
                        await self._outbox.add("telemetry", "telemetry", body)
                    except Exception as exc:  # noqa: BLE001 - this interval is lost, loudly; the next is not
                        self._failed("message", exc)

    def _contained(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        """One sample or one interval's message that fails is lost alone (logged), not the telemetry."""
        try:
            result = fn(*args)
        except Exception as exc:  # noqa: BLE001 - logged (once per error, it runs every second); sampling goes on
            self._failed(what, exc)
            return None
        self._failing.ok(what)
        return result

    def _failed(self, what: str, exc: Exception) -> None:
        self._failing.failed(what, exc, "telemetry: a %s failed; the sampling goes on", what)
