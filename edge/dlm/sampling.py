"""Asking each charger for the MeterValues the load manager estimates from.

A car's interval [least, most] (edge.dlm.estimate) narrows with every sample:
the shorter the sample interval, the sooner a car that followed a
lower limit, ramped up, or draws on one phase only is told apart from the
building. Per-phase Current.Import is what says which phases a car uses; an
un-phased current or power bounds only the sum. So when a charger is ready
the edge sets its interval (`[load_management] meter_values_interval`) and
adds the measurands it needs to the ones it samples, keeping what is there
(the energy register and SoC feed other parts), in domain words
(StationControl settings): 1.6 MeterValueSampleInterval and
MeterValuesSampledData (within MeterValuesSampledDataMaxLength), 2.0.1
SampledDataCtrlr.TxUpdatedInterval and TxUpdatedMeasurands (the TransactionEvent
Updated meter values). A charger that refuses is fine: the estimator assumes
the long interval. No answer or a CALLERROR is retried (edge.retries).
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from edge.retries import RETRY_DELAYS, Later, next_delay
from edge.stations.control import StationControl, worth_retrying
from edge.stations.model import Setting

log = logging.getLogger(__name__)

ACTOR = "load-management"
# What the estimator reads, first; Current.Offered shows the limit the charger applies.
MEASURANDS = ("Current.Import", "Current.Offered", "Power.Active.Import", "Energy.Active.Import.Register")


def sampled_data(present: list[str], max_length: int | None) -> str:
    """The measurands to sample: ours first, then what the charger sends
    already, within its maximum length (1.6 MeterValuesSampledDataMaxLength)."""
    wanted = list(MEASURANDS)
    for item in present:
        if item and item.lower() not in {w.lower() for w in wanted}:
            wanted.append(item)
    if max_length is not None and max_length > 0:
        wanted = wanted[:max_length]
    return ",".join(wanted)


def interval_text(seconds: float) -> str:
    # OCPP says integer seconds; a fraction is only for tests against the 1.6 simulator.
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


class MeterValuesSetup:
    def __init__(self, control: StationControl, interval: float, spawn: Callable[[Any, str], None]):
        self._control = control
        self.interval = interval            # 0: leave the charger's settings alone
        self._spawn = spawn
        self._retries = Later("dlm-meter-values-retry")
        self._attempts: dict[str, int] = {}
        self.retry_delays = RETRY_DELAYS
        self.configured: dict[str, bool] = {}   # charger -> accepted on this connection

    def ready(self, charger_id: str) -> None:
        """The charger listens (charger.ready): configure it from the start."""
        self._retries.cancel(charger_id)
        self._attempts[charger_id] = 0
        self.configured.pop(charger_id, None)
        if self.interval > 0:
            self._spawn(self.configure(charger_id), f"dlm-meter-values {charger_id}")

    def gone(self, charger_id: str) -> None:
        self._retries.cancel(charger_id)
        self.configured.pop(charger_id, None)

    def cancel_all(self) -> None:
        self._retries.cancel_all()

    async def configure(self, charger_id: str) -> None:
        answer = await self._control.read_settings(
            charger_id, [Setting.METER_VALUES_MEASURANDS, Setting.METER_VALUES_MAX_LENGTH],
            actor=ACTOR, reason="what the charger's MeterValues hold")
        if answer.outcome == "not-connected":
            return
        if worth_retrying(answer):
            self._again(charger_id, f"{answer.action} {answer.outcome}: {answer.response}")
            return
        values = (answer.value or {}) if answer.outcome == "ok" else {}
        try:
            max_length: int | None = int(values.get(Setting.METER_VALUES_MAX_LENGTH) or "")
        except ValueError:
            max_length = None
        present = [v.strip() for v in (values.get(Setting.METER_VALUES_MEASURANDS) or "").split(",")]
        results = {}
        for setting, value in ((Setting.METER_VALUES_INTERVAL, interval_text(self.interval)),
                               (Setting.METER_VALUES_MEASURANDS, sampled_data(present, max_length))):
            result = await self._control.change_setting(charger_id, setting, value, actor=ACTOR,
                                                        reason="short MeterValues for load management")
            if result.outcome == "not-connected":
                return
            if worth_retrying(result):
                self._again(charger_id, f"{result.action} {setting.value} {result.outcome}: {result.response}")
                return
            # ok: Accepted or RebootRequired (any other answer is a refusal: edge.ocpp.commands).
            results[setting.value] = result.outcome
        accepted = all(outcome == "ok" for outcome in results.values())
        self.configured[charger_id] = accepted
        if not accepted:
            # Fine: the estimator assumes long, averaged samples; only the intervals are wider.
            log.info("charger=%s keeps its own MeterValues settings (%s)", charger_id,
                     ", ".join(f"{k}: {v}" for k, v in results.items()))

    def _again(self, charger_id: str, why: str) -> None:
        attempts = self._attempts.get(charger_id, 0)
        delay = next_delay(attempts, self.retry_delays)
        if delay is None:
            log.warning("charger=%s: MeterValues settings still failing after %d retries (%s); "
                        "trying again when it next connects", charger_id, attempts, why)
            return
        self._attempts[charger_id] = attempts + 1
        log.info("charger=%s: MeterValues settings failed (%s); retry in %g s", charger_id, why, delay)
        self._retries.call(charger_id, delay, lambda: self._retry(charger_id))

    def _retry(self, charger_id: str) -> None:
        if self._control.is_ready(charger_id):
            self._spawn(self.configure(charger_id), f"dlm-meter-values {charger_id}")
