"""A charge point that behaves like real firmware towards a central system
it has not booted with: until its BootNotification is Accepted, it refuses
every request (CALLERROR SecurityError) or, in `silent` mode, never answers.
It keeps the configuration keys, local list and charging profiles it is
given, and can hold back its answer to chosen actions (a charger busy
initialising) until the test releases them."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from typing import Any, AsyncIterator

import websockets
from ocpp.exceptions import InternalError, SecurityError
from ocpp.messages import MessageType, unpack
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from websockets.asyncio.client import connect

from tests.edge.conftest import basic, ocpp_url


class BootFirstCharger(ChargePoint):
    def __init__(self, charger_id: str, ws: Any, *, before_boot: str = "refuse", booted: bool = False):
        super().__init__(charger_id, ws, response_timeout=5)
        self.before_boot = before_boot      # refuse | silent
        self.booted = booted                # True: it booted with an earlier central system run
        # (action, payload, whether it arrived after the boot was accepted), in arrival order
        self.received: list[tuple[str, dict, bool]] = []
        self.frames_sent = 0                # Calls this charger sent itself
        self.config = {"LocalAuthListEnabled": "false", "LocalAuthorizeOffline": "false",
                       "AuthorizationCacheEnabled": "true", "StopTransactionOnInvalidId": "false",
                       "ChargingScheduleAllowedChargingRateUnit": "Current", "ChargeProfileMaxStackLevel": "10"}
        self.local_list: dict[str, str] = {}
        self.list_version = 0
        self.profiles: list[dict] = []      # SetChargingProfile payloads it accepted
        self.fail_once: set[tuple[str, str]] = set()   # (action, key): answered InternalError the first time
        self.hold: set[str] = set()          # actions whose answer waits for release()
        self.held: list[Any] = []
        self.composite: dict | None = None
        self._boot_id: str | None = None
        self._ids = itertools.count(1)
        self.arrived = asyncio.Event()       # replaced after each request that arrives

    # -- the firmware's rule: nothing before the boot is accepted ------------------------------

    async def route_message(self, raw_msg: str) -> None:
        msg = unpack(raw_msg)
        if msg.message_type_id == MessageType.Call:
            self.received.append((msg.action, msg.payload, self.booted))
            fired, self.arrived = self.arrived, asyncio.Event()
            fired.set()
            if not self.booted:
                if self.before_boot == "refuse":
                    await self._send(msg.create_call_error(
                        SecurityError(description="not accepted by a central system yet")).to_json())
                return
            if msg.action in self.hold:
                self.held.append(msg)
                return
        elif msg.unique_id == self._boot_id and msg.message_type_id == MessageType.CallResult:
            # The firmware takes the answer in when it reads it, before anything after it.
            self.booted = msg.payload.get("status") == "Accepted"
        await super().route_message(raw_msg)

    async def boot(self) -> str:
        self._boot_id = f"boot-{next(self._ids)}"
        result = await self.call(call.BootNotification(charge_point_vendor="Real", charge_point_model="R1"),
                                 unique_id=self._boot_id)
        return result.status

    async def send_call(self, payload: Any) -> Any:
        self.frames_sent += 1
        return await self.call(payload)

    async def release(self, action: str) -> None:
        """Answer the held requests of `action` as the handler would have."""
        for msg in [m for m in self.held if m.action == action]:
            self.held.remove(msg)
            self.hold.discard(action)
            await self.route_message(msg.to_json())

    async def hang_up(self) -> None:
        await self._connection.close()

    def calls(self, action: str) -> list[dict]:
        return [payload for name, payload, _ in self.received if name == action]

    async def wait_for_call(self, action: str, count: int = 1, timeout: float = 10) -> dict:
        async def until() -> dict:
            while len(self.calls(action)) < count:
                await self.arrived.wait()
            return self.calls(action)[count - 1]
        return await asyncio.wait_for(until(), timeout)

    def _maybe_fail(self, action: str, key: str) -> None:
        if (action, key) in self.fail_once:
            self.fail_once.discard((action, key))
            raise InternalError(description=f"{action} {key}: busy, try again")

    # -- what it does once booted ---------------------------------------------------------

    @on("GetConfiguration")
    def on_get_configuration(self, key: list | None = None, **kwargs):
        keys = key or list(self.config)
        return call_result.GetConfiguration(
            configuration_key=[{"key": k, "readonly": False, "value": self.config[k]} for k in keys
                               if k in self.config],
            unknown_key=[k for k in keys if k not in self.config] or None)

    @on("ChangeConfiguration")
    def on_change_configuration(self, key: str, value: str, **kwargs):
        self._maybe_fail("ChangeConfiguration", key)
        self.config[key] = value
        return call_result.ChangeConfiguration(status="Accepted")

    @on("GetLocalListVersion")
    def on_get_local_list_version(self, **kwargs):
        return call_result.GetLocalListVersion(list_version=self.list_version)

    @on("SendLocalList")
    def on_send_local_list(self, list_version: int, update_type: str, local_authorization_list=None, **kwargs):
        if update_type == "Full":
            self.local_list = {}
        for item in local_authorization_list or []:
            self.local_list[item["id_tag"]] = (item.get("id_tag_info") or {}).get("status", "removed")
        self.list_version = list_version
        return call_result.SendLocalList(status="Accepted")

    @on("ClearCache")
    def on_clear_cache(self, **kwargs):
        return call_result.ClearCache(status="Accepted")

    @on("ChangeAvailability")
    def on_change_availability(self, **kwargs):
        return call_result.ChangeAvailability(status="Accepted")

    @on("SetChargingProfile")
    def on_set_charging_profile(self, connector_id: int, cs_charging_profiles: dict, **kwargs):
        self._maybe_fail("SetChargingProfile", cs_charging_profiles["charging_profile_purpose"])
        self.profiles.append(cs_charging_profiles)
        return call_result.SetChargingProfile(status="Accepted")

    @on("GetCompositeSchedule")
    def on_get_composite_schedule(self, connector_id: int, **kwargs):
        return call_result.GetCompositeSchedule(status="Accepted", connector_id=connector_id,
                                                schedule_start="2026-12-06T10:00:00Z",
                                                charging_schedule=self.composite)

    @on("Reset")
    def on_reset(self, **kwargs):
        return call_result.Reset(status="Accepted")

    @on("UnlockConnector")
    def on_unlock(self, **kwargs):
        return call_result.UnlockConnector(status="Unlocked")


@contextlib.asynccontextmanager
async def boot_first(edge: Any, charger_id: str, password: str | None = None,
                     **kwargs: Any) -> AsyncIterator[BootFirstCharger]:
    """Connected, its reading loop running, not booted (the test boots it)."""
    headers = basic(charger_id, password) if password else None
    async with connect(ocpp_url(edge, charger_id), subprotocols=["ocpp1.6"], additional_headers=headers) as ws:
        cp = BootFirstCharger(charger_id, ws, **kwargs)
        task = asyncio.create_task(cp.start())
        try:
            yield cp
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                await task
