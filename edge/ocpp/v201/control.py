"""StationControl for OCPP 2.0.1 stations: each request in domain words becomes
the 2.0.1 message (camelCase parameters, as the actions log shows them), goes
out through `Commands.deliver` (the same guard, session and actions log as
1.6's; the session validates it against the library's 2.0.1 schema) and its
answer is read back into the same domain words as edge/ocpp/v16/control.py.

Choices where the issue is silent (docs/ocpp-201.md): the site's "connector"
is the EVSE, whose connector 1 is the one unlocked; a Soft reset is OnIdle, a
Hard one Immediate; a 1.6 idTag of the local list is an ISO14443 idToken and
its parentIdTag a Central groupIdToken; the settings the core reads are the
component variables of SETTING_VARIABLES.
"""

from __future__ import annotations

import dataclasses
import itertools
from datetime import datetime
from typing import Any, Awaitable, Callable, NamedTuple, Sequence

from ocpp.charge_point import camel_to_snake_case
from ocpp.v201 import call as call201

from edge.clock import Clock, iso
from edge.ocpp.commands import Commands
from edge.ocpp.v16.control import list_update_status, schedule_limit, setting_text
from edge.stations.control import CommandResult
from edge.stations.model import (WHOLE_STATION, Availability, ChargingLimit, IdToken, IdTokenType, LimitPurpose,
                                 ResetKind, Setting, Trigger)


class Variable(NamedTuple):
    """A 2.0.1 device model variable: component and variable name (instance where one is needed)."""
    component: str
    name: str
    instance: str | None = None

    def as_request(self) -> dict[str, Any]:
        variable = {"name": self.name, **({"instance": self.instance} if self.instance else {})}
        return {"component": {"name": self.component}, "variable": variable}

    def __str__(self) -> str:
        return f"{self.component}.{self.name}" + (f"[{self.instance}]" if self.instance else "")


# The 2.0.1 variable of each setting the core reads or sets (OCPP 2.0.1 part 2, appendix 3), beside
# 1.6's SETTING_KEYS. Three have none: a 2.0.1 station tells how many tokens its list holds only as
# LocalAuthListCtrlr.Entries' maxLimit, and how many measurands TxUpdatedMeasurands may hold only as its
# maxLimit, characteristics GetVariables cannot read (the core keeps its default: no limit known), and
# 1.6's feature profiles are no 2.0.1 notion. The load manager's samples are the TransactionEvent
# Updated meter values: TxUpdatedInterval and TxUpdatedMeasurands (1.6 MeterValueSampleInterval and
# MeterValuesSampledData).
SETTING_VARIABLES: dict[Setting, Variable] = {
    Setting.LOCAL_AUTH_LIST_ENABLED: Variable("LocalAuthListCtrlr", "Enabled"),
    Setting.LOCAL_AUTHORIZE_OFFLINE: Variable("AuthCtrlr", "LocalAuthorizeOffline"),
    Setting.AUTHORIZATION_CACHE_ENABLED: Variable("AuthCacheCtrlr", "Enabled"),
    Setting.STOP_TRANSACTION_ON_INVALID_ID: Variable("TxCtrlr", "StopTxOnInvalidId"),
    Setting.SEND_LOCAL_LIST_MAX_LENGTH: Variable("LocalAuthListCtrlr", "ItemsPerMessage"),
    Setting.CHARGING_RATE_UNITS: Variable("SmartChargingCtrlr", "RateUnit"),
    Setting.MAX_STACK_LEVEL: Variable("SmartChargingCtrlr", "ProfileStackLevel"),
    Setting.METER_VALUES_INTERVAL: Variable("SampledDataCtrlr", "TxUpdatedInterval"),
    Setting.METER_VALUES_MEASURANDS: Variable("SampledDataCtrlr", "TxUpdatedMeasurands"),
    # Not in 2.0.1's standardized list (which has OCPPCommCtrlr.PublicKeyWithSignedMeterValue, whether the key
    # rides with each signed value): the OCA application note on signed meter values in OCPP names the meter's
    # key FiscalMetering.PublicKey (1.6's MeterPublicKey). A station without it answers UnknownComponent.
    Setting.METER_PUBLIC_KEY: Variable("FiscalMetering", "PublicKey"),
}
_SETTING_OF = {variable: setting for setting, variable in SETTING_VARIABLES.items()}

# 2.0.1's profile purpose names: the station's maximum is ChargingStationMaxProfile (1.6 ChargePointMaxProfile).
PURPOSES = {LimitPurpose.STATION_MAX: "ChargingStationMaxProfile", LimitPurpose.TX_DEFAULT: "TxDefaultProfile",
            LimitPurpose.TX: "TxProfile"}
# ChargingLimitSourceEnumType: who installed a profile (the site's are CSO's).
ALL_SOURCES = ("EMS", "Other", "SO", "CSO")
RESETS = {ResetKind.SOFT: "OnIdle", ResetKind.HARD: "Immediate"}
# The site's EVSE has one connector as far as the core knows: the one UnlockConnector names.
ONLY_CONNECTOR = 1
# A 1.6 parentIdTag is a group the edge made up, not a card: a Central token.
GROUP_TOKEN_TYPE = IdTokenType.CENTRAL.value


async def own_transaction_id(charger_id: str, transaction_id: int) -> str:
    """The edge's number as text: what a station is told when the journal knows no transactionId of
    its for the transaction (a station answers Rejected to one it does not know). edge/app.py hands
    V201Control the journal's station_transactions instead (kept by the TransactionEvent handling)."""
    return str(transaction_id)


def charging_profile(limit: ChargingLimit, transaction: str | None, now: datetime) -> dict[str, Any]:
    """SetChargingProfile parameters: one period from the start, Absolute with a start time, Relative
    without; `transaction` the station's transactionId for a TxProfile. A station's maximum goes on EVSE 0
    and cannot be Relative (K01.FR.38): without a start it starts `now`."""
    if limit.purpose is LimitPurpose.STATION_MAX and limit.start is None:
        limit = dataclasses.replace(limit, start=now)
    period: dict[str, Any] = {"startPeriod": 0, "limit": schedule_limit(limit)}
    if limit.phases is not None:
        period["numberPhases"] = limit.phases
    schedule: dict[str, Any] = {"id": limit.profile_id, "chargingRateUnit": limit.unit}
    if limit.duration_s is not None:
        schedule["duration"] = limit.duration_s
    if limit.start is not None:
        schedule["startSchedule"] = iso(limit.start)
    schedule["chargingSchedulePeriod"] = [period]
    profile: dict[str, Any] = {"id": limit.profile_id, "stackLevel": limit.stack_level,
                               "chargingProfilePurpose": PURPOSES[limit.purpose],
                               "chargingProfileKind": "Absolute" if limit.start is not None else "Relative",
                               "chargingSchedule": [schedule]}
    if transaction is not None:
        profile["transactionId"] = transaction
    evse = WHOLE_STATION if limit.purpose is LimitPurpose.STATION_MAX else limit.evse
    return {"evseId": evse, "chargingProfile": profile}


def clear_criteria(evse: int | None, purpose: LimitPurpose | None, stack_level: int | None) -> dict[str, Any]:
    """ClearChargingProfile's chargingProfileCriteria: every one given; K10.FR.02 wants at least one."""
    criteria: dict[str, Any] = {}
    if evse is not None:
        criteria["evseId"] = evse
    if purpose is not None:
        criteria["chargingProfilePurpose"] = PURPOSES[purpose]
    if stack_level is not None:
        criteria["stackLevel"] = stack_level
    if not criteria:
        raise ValueError("clearing by criteria needs at least one of evse, purpose, stack_level (K10.FR.02)")
    return criteria


def profiles_criterion(profile_ids: Sequence[int], purpose: LimitPurpose | None, stack_level: int | None,
                       sources: Sequence[str]) -> dict[str, Any]:
    """GetChargingProfiles' chargingProfile criterion (K09.FR.03): the profile ids alone, or every one of
    purpose, stackLevel, sources given; with nothing given every source, so never an empty criterion."""
    if profile_ids:
        return {"chargingProfileId": list(profile_ids)}
    criterion: dict[str, Any] = {}
    if purpose is not None:
        criterion["chargingProfilePurpose"] = PURPOSES[purpose]
    if stack_level is not None:
        criterion["stackLevel"] = stack_level
    if sources or not criterion:
        criterion["chargingLimitSource"] = list(sources or ALL_SOURCES)
    return criterion


def id_token(token: IdToken) -> dict[str, str]:
    return {"idToken": token.value, "type": token.type.value}


def remote_start_request(evse: int, token: IdToken, remote_start_id: int) -> dict[str, Any]:
    """RequestStartTransaction parameters; EVSE 0: the station picks one."""
    params: dict[str, Any] = {"idToken": id_token(token), "remoteStartId": remote_start_id}
    if evse != WHOLE_STATION:
        params["evseId"] = evse
    return params


def reservation_request(evse: int, token: IdToken, reservation_id: int, expires: str,
                        parent: str | None) -> dict[str, Any]:
    """ReserveNow parameters; EVSE 0: any EVSE of the station."""
    params: dict[str, Any] = {"id": reservation_id, "expiryDateTime": expires, "idToken": id_token(token)}
    if evse != WHOLE_STATION:
        params["evseId"] = evse
    if parent:
        params["groupIdToken"] = {"idToken": parent, "type": GROUP_TOKEN_TYPE}
    return params


def setting_request(setting: Setting, value: bool | int | str) -> dict[str, Any]:
    """SetVariables parameters for one setting."""
    variable = SETTING_VARIABLES.get(setting)
    if variable is None:
        raise ValueError(f"setting {setting.value} has no OCPP 2.0.1 variable "
                         "(edge/ocpp/v201/control.py SETTING_VARIABLES)")
    return {"setVariableData": [{"attributeValue": setting_text(value), **variable.as_request()}]}


def local_list_entry(item: dict) -> dict[str, Any]:
    """One entry of edge.auth.local_list.Update (1.6's idTag/idTagInfo) as 2.0.1's AuthorizationData;
    without idTagInfo (a removal in a Differential update) without idTokenInfo."""
    entry: dict[str, Any] = {"idToken": id_token(IdToken(item["idTag"]))}
    info = item.get("idTagInfo")
    if info is not None:
        token_info: dict[str, Any] = {"status": info["status"]}
        if info.get("expiryDate"):
            token_info["cacheExpiryDateTime"] = info["expiryDate"]
        if info.get("parentIdTag"):
            token_info["groupIdToken"] = {"idToken": info["parentIdTag"], "type": GROUP_TOKEN_TYPE}
        entry["idTokenInfo"] = token_info
    return entry


def local_list_request(update: Any) -> dict[str, Any]:
    """SendLocalList parameters for an edge.auth.local_list.Update."""
    params: dict[str, Any] = {"versionNumber": update.version, "updateType": update.update_type}
    if update.items:
        params["localAuthorizationList"] = [local_list_entry(item) for item in update.items]
    return params


def variables_of(response: Any) -> dict[Variable, str]:
    """A GetVariables answer as {variable: value}, for those the station reported (Accepted)."""
    values: dict[Variable, str] = {}
    for item in response.get("getVariableResult", []) if isinstance(response, dict) else []:
        if isinstance(item, dict) and item.get("attributeStatus") == "Accepted":
            variable = Variable(item["component"]["name"], item["variable"]["name"],
                                item["variable"].get("instance"))
            values[variable] = str(item.get("attributeValue", ""))
    return values


class V201Control:
    """StationControl (edge/stations/control.py) over OCPP 2.0.1."""

    def __init__(self, commands: Commands, clock: Clock,
                 station_transaction: Callable[[str, int], Awaitable[str]] = own_transaction_id):
        self.commands = commands
        self.clock = clock
        self.station_transaction = station_transaction
        # remoteStartId: the station reports it in its TransactionEvent; unique across restarts (int32 until 2092).
        self._remote_start_ids = itertools.count(max(1, int(clock.now().timestamp()) - 1_704_067_200))

    def is_connected(self, charger_id: str) -> bool:
        return self.commands.is_connected(charger_id)

    def is_ready(self, charger_id: str) -> bool:
        return self.commands.is_ready(charger_id)

    async def _send(self, charger_id: str, action: str, params: dict[str, Any], actor: str,
                    reason: str) -> CommandResult:
        payload = getattr(call201, action)(**camel_to_snake_case(params))
        return await self.commands.deliver(charger_id, action, params, payload, actor=actor, reason=reason)

    async def set_charging_limit(self, charger_id: str, limit: ChargingLimit, *, actor: str,
                                 reason: str) -> CommandResult:
        transaction = None if limit.transaction_id is None else \
            await self.station_transaction(charger_id, limit.transaction_id)
        profile = charging_profile(limit, transaction, self.clock.now())
        return await self._send(charger_id, "SetChargingProfile", profile, actor, reason)

    async def clear_charging_limit(self, charger_id: str, profile_id: int, *, actor: str,
                                   reason: str) -> CommandResult:
        return await self._send(charger_id, "ClearChargingProfile", {"chargingProfileId": profile_id}, actor,
                                reason)

    async def clear_charging_limits(self, charger_id: str, *, evse: int | None = None,
                                    purpose: LimitPurpose | None = None, stack_level: int | None = None,
                                    actor: str, reason: str) -> CommandResult:
        """ClearChargingProfile by criteria (K10.FR.02: no id, one or more of evseId, purpose, stackLevel):
        every profile matching all given. The station answers Unknown when none matched (nothing to clear)."""
        criteria = clear_criteria(evse, purpose, stack_level)
        return await self._send(charger_id, "ClearChargingProfile", {"chargingProfileCriteria": criteria}, actor,
                                reason)

    async def remote_start(self, charger_id: str, evse: int, token: IdToken, *, actor: str,
                           reason: str) -> CommandResult:
        return await self._send(charger_id, "RequestStartTransaction",
                                remote_start_request(evse, token, next(self._remote_start_ids)), actor, reason)

    async def remote_stop(self, charger_id: str, transaction_id: int, *, actor: str, reason: str) -> CommandResult:
        return await self._send(charger_id, "RequestStopTransaction",
                                {"transactionId": await self.station_transaction(charger_id, transaction_id)},
                                actor, reason)

    async def reserve(self, charger_id: str, evse: int, token: IdToken, *, reservation_id: int, expires: str,
                      parent: str | None, actor: str, reason: str) -> CommandResult:
        return await self._send(charger_id, "ReserveNow",
                                reservation_request(evse, token, reservation_id, expires, parent), actor, reason)

    async def cancel_reservation(self, charger_id: str, reservation_id: int, *, actor: str,
                                 reason: str) -> CommandResult:
        return await self._send(charger_id, "CancelReservation", {"reservationId": reservation_id}, actor, reason)

    async def unlock(self, charger_id: str, evse: int, *, actor: str, reason: str) -> CommandResult:
        return await self._send(charger_id, "UnlockConnector", {"evseId": evse, "connectorId": ONLY_CONNECTOR},
                                actor, reason)

    async def reset(self, charger_id: str, kind: ResetKind, *, actor: str, reason: str) -> CommandResult:
        return await self._send(charger_id, "Reset", {"type": RESETS[kind]}, actor, reason)

    async def change_availability(self, charger_id: str, evse: int, availability: Availability, *, actor: str,
                                  reason: str) -> CommandResult:
        params: dict[str, Any] = {"operationalStatus": availability.value}
        if evse != WHOLE_STATION:
            params["evse"] = {"id": evse}
        return await self._send(charger_id, "ChangeAvailability", params, actor, reason)

    async def trigger(self, charger_id: str, what: Trigger, *, evse: int | None = None, actor: str,
                      reason: str) -> CommandResult:
        params: dict[str, Any] = {"requestedMessage": what.value}
        if evse:
            params["evse"] = {"id": evse}
        return await self._send(charger_id, "TriggerMessage", params, actor, reason)

    async def clear_cache(self, charger_id: str, *, actor: str, reason: str) -> CommandResult:
        return await self._send(charger_id, "ClearCache", {}, actor, reason)

    async def send_local_list(self, charger_id: str, update: Any, *, actor: str, reason: str) -> CommandResult:
        result = await self._send(charger_id, "SendLocalList", local_list_request(update), actor, reason)
        return dataclasses.replace(result, value=list_update_status(result))

    async def local_list_version(self, charger_id: str, *, actor: str, reason: str) -> CommandResult:
        result = await self._send(charger_id, "GetLocalListVersion", {}, actor, reason)
        # 2.0.1 has no -1: 0 says no list yet (none sent, or the list disabled: D02.FR.02), which the local list
        # sync answers with a Full list (as 1.6's empty list); None only when no answer came.
        version = result.response.get("versionNumber", 0) if result.outcome == "ok" else None
        return dataclasses.replace(result, value=version)

    async def _variables(self, charger_id: str, variables: Sequence[Variable], actor: str,
                         reason: str) -> tuple[CommandResult, dict[Variable, str] | None]:
        result = await self._send(charger_id, "GetVariables",
                                  {"getVariableData": [v.as_request() for v in variables]}, actor, reason)
        return result, variables_of(result.response) if result.outcome == "ok" else None

    async def read_settings(self, charger_id: str, settings: Sequence[Setting] | None, *, actor: str,
                            reason: str) -> CommandResult:
        wanted = [s for s in (SETTING_VARIABLES if settings is None else settings) if s in SETTING_VARIABLES]
        result, values = await self._variables(charger_id, [SETTING_VARIABLES[s] for s in wanted], actor, reason)
        return dataclasses.replace(result, value=None if values is None else
                                   {_SETTING_OF[v]: text for v, text in values.items() if v in _SETTING_OF})

    async def read_configuration(self, charger_id: str, *, actor: str, reason: str) -> CommandResult:
        """The variables of SETTING_VARIABLES under their 2.0.1 names ("LocalAuthListCtrlr.Enabled");
        the whole device model comes with GetBaseReport/NotifyReport, not read yet."""
        result, values = await self._variables(charger_id, list(SETTING_VARIABLES.values()), actor, reason)
        return dataclasses.replace(result, value=None if values is None else
                                   {str(v): text for v, text in values.items()})

    async def change_setting(self, charger_id: str, setting: Setting, value: bool | int | str, *, actor: str,
                             reason: str) -> CommandResult:
        return await self._send(charger_id, "SetVariables", setting_request(setting, value), actor, reason)

    # -- K: what the station has and plans (edge/ocpp/v201/services.py keeps ReportChargingProfiles) --

    async def composite_schedule(self, charger_id: str, evse: int, duration_s: int, *, unit: str | None = None,
                                 actor: str, reason: str) -> CommandResult:
        """GetCompositeSchedule: the schedule the station will follow on `evse` (0: the whole station) for
        `duration_s`; the answer (status, schedule) is the result's response, kept in the actions log."""
        params: dict[str, Any] = {"duration": duration_s, "evseId": evse}
        if unit:
            params["chargingRateUnit"] = unit
        return await self._send(charger_id, "GetCompositeSchedule", params, actor, reason)

    async def charging_profiles(self, charger_id: str, request_id: int, *, evse: int | None = None,
                                profile_ids: Sequence[int] = (), purpose: LimitPurpose | None = None,
                                stack_level: int | None = None, sources: Sequence[str] = (),
                                actor: str, reason: str) -> CommandResult:
        """GetChargingProfiles (all the station's, or those of `evse`): the station answers Accepted or
        NoProfiles, then sends them in ReportChargingProfiles under `request_id`
        (edge.ocpp.v201.services.reported_profiles). K09.FR.03: the criterion names profile ids, or one or
        more of stackLevel, chargingLimitSource, purpose; with none given, every source is named (all the
        station's profiles), never an empty criterion."""
        criterion = profiles_criterion(profile_ids, purpose, stack_level, sources)
        params: dict[str, Any] = {"requestId": request_id, "chargingProfile": criterion}
        if evse is not None:
            params["evseId"] = evse
        return await self._send(charger_id, "GetChargingProfiles", params, actor, reason)
