"""How the bridge answers the edge: one `EdgeLink` (the ocpp library's charge point) per connection.

Each @on handler decides and answers at once, without awaiting a call: the
library awaits handlers inline, so a call from one would wait for an answer
its own receive loop cannot read. What has to happen after the answer (a
StartTransaction after a RemoteStartTransaction, a reboot after a Reset) is
kept under the call's unique id and run by the matching @after hook, once
the answer is on the wire. Tasks it starts run in the connection's task
group, which keeps their references and ends them with the connection.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Coroutine

from ocpp.exceptions import OCPPError
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action

from edge.clock import iso
from firmware_bridge.controller import Controller
from simulator import profiles

log = logging.getLogger(__name__)

TRIGGERABLE = ("BootNotification", "Heartbeat", "MeterValues", "StatusNotification")
# A Reset waits this long for the transaction's StopTransaction to reach the edge.
RESET_FLUSH_TIMEOUT = 10.0


class EdgeLink(ChargePoint):
    def __init__(self, charge_point_id: str, connection: Any, controller: Controller, *,
                 response_timeout: float, boot: Callable[["EdgeLink"], Coroutine[Any, Any, Any]],
                 report: Callable[["EdgeLink"], Coroutine[Any, Any, Any]]) -> None:
        super().__init__(charge_point_id, connection, response_timeout=response_timeout)
        self.controller = controller
        self._boot, self._report = boot, report
        self.tasks: asyncio.TaskGroup | None = None  # set by the connection that serves this link
        self._then: dict[str, Callable[[], None]] = {}

    def _after(self, call_unique_id: str, action: Callable[[], None]) -> None:
        self._then[call_unique_id] = action

    def _run_after(self, call_unique_id: str) -> None:
        action = self._then.pop(call_unique_id, None)
        if action is not None:
            action()

    async def send(self, payload: Any) -> Any:
        """The ocpp library's call(), raising on a CALLERROR, run as a task of its own.

        On Python 3.11 the library's wait for the answer (asyncio.wait_for) can
        swallow a cancellation that arrives together with the answer; awaited
        from here with asyncio.wait, the caller is cancelled all the same (a
        bridge that stops or a connection that ends does not hang on it).
        """
        answer = asyncio.ensure_future(self.call(payload, suppress=False))
        try:
            await asyncio.wait({answer})
        finally:
            answer.cancel()
        return answer.result()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        assert self.tasks is not None, "the link is not being served"

        async def guarded() -> None:
            try:
                await coro
            except OCPPError as exc:  # the edge refused a follow-up; the connection itself is fine
                log.warning("edge refused a follow-up message: %r", exc)
        self.tasks.create_task(guarded())

    # ---- Core ------------------------------------------------------------------------

    @on(Action.remote_start_transaction)
    def on_remote_start(self, id_tag: str, call_unique_id: str, connector_id: int | None = None,
                        charging_profile: dict | None = None, **_: Any) -> call_result.RemoteStartTransaction:
        ok = connector_id in (None, 1) and self.controller.can_start()
        if ok and charging_profile is not None:  # only a TxProfile may come with a remote start
            try:
                profile = profiles.parse_profile(charging_profile, received=self.controller.clock.now())
            except ValueError:
                ok = False
            else:
                ok = profile.purpose == profiles.TX
        if ok:
            self._after(call_unique_id, lambda: self.controller.authorize(id_tag, charging_profile))
        log.info("RemoteStartTransaction for %s: %s", id_tag, "Accepted" if ok else "Rejected")
        return call_result.RemoteStartTransaction(status="Accepted" if ok else "Rejected")

    @after(Action.remote_start_transaction)
    def after_remote_start(self, call_unique_id: str, **_: Any) -> None:
        self._run_after(call_unique_id)

    @on(Action.remote_stop_transaction)
    def on_remote_stop(self, transaction_id: int, call_unique_id: str,
                       **_: Any) -> call_result.RemoteStopTransaction:
        ok = self.controller.is_running(transaction_id)
        if ok:
            self._after(call_unique_id, lambda: self.controller.request_stop("Remote"))
        return call_result.RemoteStopTransaction(status="Accepted" if ok else "Rejected")

    @after(Action.remote_stop_transaction)
    def after_remote_stop(self, call_unique_id: str, **_: Any) -> None:
        self._run_after(call_unique_id)

    @on(Action.reset)
    def on_reset(self, type: str, call_unique_id: str, **_: Any) -> call_result.Reset:
        self._after(call_unique_id, lambda: self.spawn(self._reset(type)))
        return call_result.Reset(status="Accepted")

    @after(Action.reset)
    def after_reset(self, call_unique_id: str, **_: Any) -> None:
        self._run_after(call_unique_id)

    async def _reset(self, kind: str) -> None:
        """Stop the transaction, let its StopTransaction reach the edge, then reboot: boot again."""
        controller = self.controller
        log.warning("%s reset requested by the edge", kind)
        controller.request_stop("HardReset" if kind == "Hard" else "SoftReset")
        try:
            await controller.wait_for(lambda: controller.transaction is None and not controller.store.queued(),
                                      RESET_FLUSH_TIMEOUT)
        except TimeoutError:
            log.warning("reset: the transaction did not end in %.0f s; rebooting anyway", RESET_FLUSH_TIMEOUT)
        if kind == "Hard":
            controller.restart_wallbox = True
        controller.boot_pending = True
        controller.poke()
        await self._connection.close()

    @on(Action.change_availability)
    def on_change_availability(self, connector_id: int, type: str, call_unique_id: str,
                               **_: Any) -> call_result.ChangeAvailability:
        status = self.controller.change_availability(connector_id, type == "Operative")
        self._after(call_unique_id, self.controller.poke)
        return call_result.ChangeAvailability(status=status)

    @after(Action.change_availability)
    def after_change_availability(self, call_unique_id: str, **_: Any) -> None:
        self._run_after(call_unique_id)

    @on(Action.get_configuration)
    def on_get_configuration(self, key: list[str] | None = None, **_: Any) -> call_result.GetConfiguration:
        known, unknown = self.controller.keys.get(key)
        return call_result.GetConfiguration(configuration_key=known, unknown_key=unknown or None)

    @on(Action.change_configuration)
    def on_change_configuration(self, key: str, value: str, call_unique_id: str,
                                **_: Any) -> call_result.ChangeConfiguration:
        status = self.controller.keys.change(key, value)
        self._after(call_unique_id, self.controller.poke)  # a new interval applies now
        return call_result.ChangeConfiguration(status=status)

    @after(Action.change_configuration)
    def after_change_configuration(self, call_unique_id: str, **_: Any) -> None:
        self._run_after(call_unique_id)

    @on(Action.unlock_connector)
    def on_unlock_connector(self, **_: Any) -> call_result.UnlockConnector:
        return call_result.UnlockConnector(status="NotSupported")  # the wallbox has no lock the bridge drives

    # ---- Local authorization list ---------------------------------------------------------
    # The wallbox has no card reader and the bridge keeps no list: every session starts from the
    # edge (RemoteStartTransaction), which decides itself. So the bridge says what OCPP has words for:
    # no list (-1), SendLocalList NotSupported, and an empty cache cleared. The edge then marks it
    # "unsupported" (edge/auth/sync.py) and sends it no list, instead of meeting a CALLERROR.

    @on(Action.get_local_list_version)
    def on_get_local_list_version(self, **_: Any) -> call_result.GetLocalListVersion:
        return call_result.GetLocalListVersion(list_version=-1)

    @on(Action.send_local_list)
    def on_send_local_list(self, **_: Any) -> call_result.SendLocalList:
        return call_result.SendLocalList(status="NotSupported")

    @on(Action.clear_cache)
    def on_clear_cache(self, **_: Any) -> call_result.ClearCache:
        return call_result.ClearCache(status="Accepted")   # it caches no authorization: nothing to clear

    # ---- Smart charging ------------------------------------------------------------------

    @on(Action.set_charging_profile)
    def on_set_charging_profile(self, connector_id: int, cs_charging_profiles: dict, call_unique_id: str,
                                **_: Any) -> call_result.SetChargingProfile:
        status = self.controller.set_charging_profile(connector_id, cs_charging_profiles)
        log.info("SetChargingProfile on connector %d: %s", connector_id, status)
        self._after(call_unique_id, self.controller.poke)
        return call_result.SetChargingProfile(status=status)

    @after(Action.set_charging_profile)
    def after_set_charging_profile(self, call_unique_id: str, **_: Any) -> None:
        self._run_after(call_unique_id)

    @on(Action.clear_charging_profile)
    def on_clear_charging_profile(self, call_unique_id: str, id: int | None = None, connector_id: int | None = None,
                                  charging_profile_purpose: str | None = None, stack_level: int | None = None,
                                  **_: Any) -> call_result.ClearChargingProfile:
        removed = self.controller.profiles.clear(profile_id=id, connector_id=connector_id,
                                                 purpose=charging_profile_purpose, stack_level=stack_level)
        self._after(call_unique_id, self.controller.poke)
        return call_result.ClearChargingProfile(status="Accepted" if removed else "Unknown")

    @after(Action.clear_charging_profile)
    def after_clear_charging_profile(self, call_unique_id: str, **_: Any) -> None:
        self._run_after(call_unique_id)

    @on(Action.get_composite_schedule)
    def on_get_composite_schedule(self, connector_id: int, duration: int, charging_rate_unit: str | None = None,
                                  **_: Any) -> call_result.GetCompositeSchedule:
        controller, wallbox = self.controller, self.controller.config.wallbox
        unit = charging_rate_unit or "A"
        if connector_id not in (0, 1) or duration < 0:
            return call_result.GetCompositeSchedule(status="Rejected")
        start = controller.clock.now()
        periods = controller.profiles.composite(duration, unit, start, controller.tx_ref(),
                                                voltage=wallbox.nominal_voltage, phases=wallbox.phases,
                                                ceiling_amps=controller.max_current)
        return call_result.GetCompositeSchedule(status="Accepted", connector_id=connector_id, schedule_start=iso(start),
                                                charging_schedule={
            "duration": duration, "start_schedule": iso(start), "charging_rate_unit": unit,
            "charging_schedule_period": [{"start_period": p.start, "limit": p.limit} for p in periods]})

    # ---- Remote trigger ----------------------------------------------------------------------

    @on(Action.trigger_message)
    def on_trigger_message(self, requested_message: str, call_unique_id: str, connector_id: int | None = None,
                           **_: Any) -> call_result.TriggerMessage:
        if requested_message not in TRIGGERABLE:
            return call_result.TriggerMessage(status="NotImplemented")
        if connector_id not in (None, 0, 1):
            return call_result.TriggerMessage(status="Rejected")
        self._after(call_unique_id, lambda: self.spawn(self._triggered(requested_message)))
        return call_result.TriggerMessage(status="Accepted")

    @after(Action.trigger_message)
    def after_trigger_message(self, call_unique_id: str, **_: Any) -> None:
        self._run_after(call_unique_id)

    async def _triggered(self, message: str) -> None:
        controller = self.controller
        if message == "BootNotification":
            await self._boot(self)
        elif message == "Heartbeat":
            await self.send(call.Heartbeat())
        elif message == "StatusNotification":
            await self._report(self)
        elif message == "MeterValues" and controller.reading is not None:
            tx = controller.transaction
            await self.send(call.MeterValues(
                connector_id=1, meter_value=[controller.meter_value(controller.reading, "Trigger")],
                transaction_id=tx.transaction_id if tx else None))
