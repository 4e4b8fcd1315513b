"""StationControl for OCPP 1.6 stations: each request in domain words becomes
the 1.6 message (camelCase parameters, as the actions log shows them), goes
out through `Commands` (validated against the 1.6 schema, recorded with who
asked and why), and its answer is read back into domain words (`value`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from edge.clock import iso
from edge.ocpp.commands import Commands
from edge.stations.control import CommandResult
from edge.stations.model import (Availability, ChargingLimit, IdToken, ListUpdateStatus, ResetKind, Setting,
                                 Trigger)

# The 1.6 configuration key of each setting the edge reads or sets (OCPP 1.6 section 9).
SETTING_KEYS: dict[Setting, str] = {
    Setting.LOCAL_AUTH_LIST_ENABLED: "LocalAuthListEnabled",
    Setting.LOCAL_AUTHORIZE_OFFLINE: "LocalAuthorizeOffline",
    Setting.AUTHORIZATION_CACHE_ENABLED: "AuthorizationCacheEnabled",
    Setting.STOP_TRANSACTION_ON_INVALID_ID: "StopTransactionOnInvalidId",
    Setting.SEND_LOCAL_LIST_MAX_LENGTH: "SendLocalListMaxLength",
    Setting.LOCAL_AUTH_LIST_MAX_LENGTH: "LocalAuthListMaxLength",
    Setting.CHARGING_RATE_UNITS: "ChargingScheduleAllowedChargingRateUnit",
    Setting.MAX_STACK_LEVEL: "ChargeProfileMaxStackLevel",
    Setting.SUPPORTED_FEATURES: "SupportedFeatureProfiles",
    Setting.METER_VALUES_INTERVAL: "MeterValueSampleInterval",
    Setting.METER_VALUES_MEASURANDS: "MeterValuesSampledData",
    Setting.METER_VALUES_MAX_LENGTH: "MeterValuesSampledDataMaxLength",
    # Vendor-specific in 1.6 (the OCA signed meter values note's name); signed_values.py asks a 1.6 charger
    # for METER_KEY_NAMES, this and the names some vendors use, in one GetConfiguration.
    Setting.METER_PUBLIC_KEY: "MeterPublicKey",
}
_SETTING_OF = {key: setting for setting, key in SETTING_KEYS.items()}
# A station that takes only watts gets the amps as watts at this voltage per phase.
NOMINAL_VOLTAGE = 230.0


def schedule_limit(limit: ChargingLimit) -> float:
    """The limit in the schedule's unit: amps per phase as given, or watts for all its phases (both versions)."""
    phases = limit.phases or 3
    return round(limit.limit * NOMINAL_VOLTAGE * phases if limit.unit == "W" else limit.limit, 1)


def charging_profile(limit: ChargingLimit) -> dict[str, Any]:
    """SetChargingProfile parameters for a limit: one period from the start, Absolute when it has a start
    time, Relative (from when it applies) when not."""
    period: dict[str, Any] = {"startPeriod": 0}
    if limit.phases is not None:
        period["numberPhases"] = limit.phases
    period["limit"] = schedule_limit(limit)
    # In the order the load manager has always sent them (a 1.6 charger's parser may care): periods first.
    schedule: dict[str, Any] = {"chargingRateUnit": limit.unit, "chargingSchedulePeriod": [period]}
    if limit.duration_s is not None:
        schedule["duration"] = limit.duration_s
    if limit.start is not None:
        schedule["startSchedule"] = iso(limit.start)
    profile: dict[str, Any] = {"chargingProfileId": limit.profile_id}
    if limit.transaction_id is not None:
        profile["transactionId"] = limit.transaction_id
    profile.update(stackLevel=limit.stack_level, chargingProfilePurpose=limit.purpose.value,
                   chargingProfileKind="Absolute" if limit.start is not None else "Relative",
                   chargingSchedule=schedule)
    return {"connectorId": limit.evse, "csChargingProfiles": profile}


def local_list_request(update: Any) -> dict[str, Any]:
    """SendLocalList parameters for an edge.auth.local_list.Update (its entries are 1.6 idTag/idTagInfo)."""
    return {"listVersion": update.version, "updateType": update.update_type,
            "localAuthorizationList": list(update.items)}


def list_update_status(result: CommandResult) -> ListUpdateStatus | None:
    """A SendLocalList answer's status (the same words in both versions), None without an answer."""
    status = result.response.get("status") if isinstance(result.response, dict) else None
    return ListUpdateStatus(status) if status in ListUpdateStatus._value2member_map_ else None


def configuration_of(response: Any) -> dict[str, str]:
    """A GetConfiguration answer as {key: value} ("" for a key without a value)."""
    return {item["key"]: str(item.get("value", "")) for item in response.get("configurationKey", [])
            if isinstance(item, dict) and "key" in item}


def settings_of(configuration: dict[str, str]) -> dict[Setting, str]:
    return {_SETTING_OF[key]: value for key, value in configuration.items() if key in _SETTING_OF}


def setting_text(value: bool | int | str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class V16Control:
    """StationControl (edge/stations/control.py) over OCPP 1.6."""

    def __init__(self, commands: Commands):
        self.commands = commands

    def is_connected(self, charger_id: str) -> bool:
        return self.commands.is_connected(charger_id)

    def is_ready(self, charger_id: str) -> bool:
        return self.commands.is_ready(charger_id)

    async def _send(self, charger_id: str, action: str, params: dict[str, Any], actor: str,
                    reason: str) -> CommandResult:
        return await self.commands.send(charger_id, action, params, actor=actor, reason=reason)

    async def set_charging_limit(self, charger_id: str, limit: ChargingLimit, *, actor: str,
                                 reason: str) -> CommandResult:
        return await self._send(charger_id, "SetChargingProfile", charging_profile(limit), actor, reason)

    async def clear_charging_limit(self, charger_id: str, profile_id: int, *, actor: str,
                                   reason: str) -> CommandResult:
        return await self._send(charger_id, "ClearChargingProfile", {"id": profile_id}, actor, reason)

    async def remote_start(self, charger_id: str, evse: int, token: IdToken, *, actor: str,
                           reason: str) -> CommandResult:
        return await self._send(charger_id, "RemoteStartTransaction", {"connectorId": evse, "idTag": token.value},
                                actor, reason)

    async def remote_stop(self, charger_id: str, transaction_id: int, *, actor: str, reason: str) -> CommandResult:
        return await self._send(charger_id, "RemoteStopTransaction", {"transactionId": transaction_id}, actor,
                                reason)

    async def reserve(self, charger_id: str, evse: int, token: IdToken, *, reservation_id: int, expires: str,
                      parent: str | None, actor: str, reason: str) -> CommandResult:
        params: dict[str, Any] = {"connectorId": evse, "expiryDate": expires, "idTag": token.value,
                                  "reservationId": reservation_id}
        if parent:
            params["parentIdTag"] = parent
        return await self._send(charger_id, "ReserveNow", params, actor, reason)

    async def cancel_reservation(self, charger_id: str, reservation_id: int, *, actor: str,
                                 reason: str) -> CommandResult:
        return await self._send(charger_id, "CancelReservation", {"reservationId": reservation_id}, actor, reason)

    async def unlock(self, charger_id: str, evse: int, *, actor: str, reason: str) -> CommandResult:
        return await self._send(charger_id, "UnlockConnector", {"connectorId": evse}, actor, reason)

    async def reset(self, charger_id: str, kind: ResetKind, *, actor: str, reason: str) -> CommandResult:
        return await self._send(charger_id, "Reset", {"type": kind.value}, actor, reason)

    async def change_availability(self, charger_id: str, evse: int, availability: Availability, *, actor: str,
                                  reason: str) -> CommandResult:
        return await self._send(charger_id, "ChangeAvailability", {"connectorId": evse, "type": availability.value},
                                actor, reason)

    async def trigger(self, charger_id: str, what: Trigger, *, evse: int | None = None, actor: str,
                      reason: str) -> CommandResult:
        params: dict[str, Any] = {"requestedMessage": what.value}
        if evse is not None:
            params["connectorId"] = evse
        return await self._send(charger_id, "TriggerMessage", params, actor, reason)

    async def clear_cache(self, charger_id: str, *, actor: str, reason: str) -> CommandResult:
        return await self._send(charger_id, "ClearCache", {}, actor, reason)

    async def send_local_list(self, charger_id: str, update: Any, *, actor: str, reason: str) -> CommandResult:
        result = await self._send(charger_id, "SendLocalList", local_list_request(update), actor, reason)
        return dataclasses.replace(result, value=list_update_status(result))

    async def local_list_version(self, charger_id: str, *, actor: str, reason: str) -> CommandResult:
        result = await self._send(charger_id, "GetLocalListVersion", {}, actor, reason)
        # 1.6: -1 says the station has no local list at all; 0 an empty one.
        version = result.response.get("listVersion", -1) if result.outcome == "ok" else -1
        return dataclasses.replace(result, value=version if version >= 0 else None)

    async def _configuration(self, charger_id: str, keys: list[str] | None, actor: str,
                             reason: str) -> tuple[CommandResult, dict[str, str] | None]:
        result = await self._send(charger_id, "GetConfiguration", {} if keys is None else {"key": keys}, actor,
                                  reason)
        return result, configuration_of(result.response) if result.outcome == "ok" else None

    async def read_settings(self, charger_id: str, settings: Sequence[Setting] | None, *, actor: str,
                            reason: str) -> CommandResult:
        keys = None if settings is None else [SETTING_KEYS[s] for s in settings]
        result, configuration = await self._configuration(charger_id, keys, actor, reason)
        return dataclasses.replace(result, value=None if configuration is None else settings_of(configuration))

    async def read_configuration(self, charger_id: str, *, actor: str, reason: str) -> CommandResult:
        result, configuration = await self._configuration(charger_id, None, actor, reason)
        return dataclasses.replace(result, value=configuration)

    async def change_setting(self, charger_id: str, setting: Setting, value: bool | int | str, *, actor: str,
                             reason: str) -> CommandResult:
        return await self._send(charger_id, "ChangeConfiguration",
                                {"key": SETTING_KEYS[setting], "value": setting_text(value)}, actor, reason)
