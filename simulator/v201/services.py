"""What the simulated 2.0.1 station does in blocks J, K (the car's needs), L, N and P.

- Sent by the station (a test or the CLI calls these): `charging_needs` (an ISO 15118 car's
  NotifyEVChargingNeeds), `ev_charging_schedule`, `meter_values` (MeterValues, optionally with an OCMF
  signedMeterValue, Base64 as 2.0.1 sends it), `notify_event`, `data_transfer`.
- Answered by the station (`ServiceHandlers`, a mixin of the link): UpdateFirmware (L01: download, check
  the signature as the 1.6 simulator does, FirmwareStatusNotification per step) and GetLog (N01:
  LogStatusNotification Uploading, an HTTP PUT of its log to remoteLocation, Uploaded or UploadFailure).
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Iterable, Protocol

from cryptography.hazmat.primitives.asymmetric import ec
from ocpp.routing import after, on
from ocpp.v201 import call, call_result
from ocpp.v201.enums import Action

from simulator import ocmf
from simulator.metering import iso
from simulator.security import install_firmware, put_log
from simulator.session import NotConnected

if TYPE_CHECKING:
    from simulator.v201.evse import Evse


class ServedStation(Protocol):
    """What these messages and handlers use of the 2.0.1 station (station.py, which imports the link that
    mixes ServiceHandlers in)."""

    id: str
    link: Any
    evses: dict[int, Evse]
    wall_clock: Callable[[], datetime]

    def meter_value(self, e: Evse, measurands: Iterable[str] | None, context: str) -> dict | None: ...

    def emit(self, name: str, **data: Any) -> None: ...


async def _send(sim: ServedStation, payload: Any) -> Any:
    link = sim.link
    if link is None:
        raise NotConnected(f"{sim.id} is not connected")
    return await link.send(payload)


# -- K: what the car says (ISO 15118) ------------------------------------------------------------------

def charging_needs_request(evse_id: int, *, departure: datetime | str | None = None, energy_wh: int | None = None,
                           min_current: int = 6, max_current: int = 32, max_voltage: int = 400,
                           transfer: str = "AC_three_phase", dc: dict[str, Any] | None = None,
                           max_schedule_tuples: int | None = None) -> call.NotifyEVChargingNeeds:
    """A NotifyEVChargingNeeds as a station forwards an ISO 15118 car's ChargeParameterDiscoveryReq."""
    needs: dict[str, Any] = {"requested_energy_transfer": transfer}
    if departure is not None:
        needs["departure_time"] = departure if isinstance(departure, str) else iso(departure)
    if dc is not None:
        needs["dc_charging_parameters"] = dc
    elif energy_wh is not None:
        needs["ac_charging_parameters"] = {"energy_amount": energy_wh, "ev_min_current": min_current,
                                           "ev_max_current": max_current, "ev_max_voltage": max_voltage}
    return call.NotifyEVChargingNeeds(evse_id=evse_id, charging_needs=needs, max_schedule_tuples=max_schedule_tuples)


async def charging_needs(sim: ServedStation, evse_id: int, **needs: Any) -> Any:
    """Send the car's needs on `evse_id`; -> the CSMS's answer (status, status_info)."""
    answer = await _send(sim, charging_needs_request(evse_id, **needs))
    sim.emit("charging_needs", evse_id=evse_id, status=answer.status)
    return answer


async def ev_charging_schedule(sim: ServedStation, evse_id: int, limits_a: list[float],
                               period_s: int = 900) -> Any:
    """The car's chosen schedule (K15.FR.?, K17): one period of `period_s` per limit, in A."""
    schedule = {"id": 1, "charging_rate_unit": "A",
                "charging_schedule_period": [{"start_period": i * period_s, "limit": limit}
                                             for i, limit in enumerate(limits_a)]}
    return await _send(sim, call.NotifyEVChargingSchedule(time_base=iso(sim.wall_clock()), evse_id=evse_id,
                                                          charging_schedule=schedule))


# -- J: meter values --------------------------------------------------------------------------------

def signed_meter_value(key: ec.EllipticCurvePrivateKey, *, transaction_id: str, id_tag: str, energy_wh: float,
                       at: datetime, kind: str = "T", with_key: bool = True) -> dict[str, Any]:
    """A 2.0.1 signedMeterValue: an OCMF reading, Base64 encoded as 2.0.1 asks, with the meter's key
    (Base64 of its DER) when the station sends it (PublicKeyWithSignedMeterValue)."""
    data = ocmf.sign(key, meter_serial="SIM-201-METER", transaction_id=transaction_id, id_tag=id_tag,
                     energy_wh=energy_wh, at=at, kind=kind)
    return {"signed_meter_data": base64.b64encode(data.encode()).decode(), "signing_method": ocmf.ALGORITHM,
            "encoding_method": "OCMF",
            "public_key": base64.b64encode(bytes.fromhex(ocmf.public_key_hex(key))).decode() if with_key else ""}


async def meter_values(sim: ServedStation, evse_id: int, *, measurands: list[str] | None = None,
                       signed: dict[str, Any] | None = None) -> Any:
    """MeterValues of `evse_id` now (J01/J02), per phase as the station measures; `signed` (a
    signedMeterValue) rides on the energy register's value."""
    e = sim.evses[evse_id]
    entry = sim.meter_value(e, measurands or ["Energy.Active.Import.Register", "Current.Import",
                                               "Power.Active.Import"], "Sample.Clock")
    if entry is None:
        raise ValueError("no measurand to send")
    if signed is not None:
        for sv in entry["sampled_value"]:
            if sv["measurand"] == "Energy.Active.Import.Register":
                sv["signed_meter_value"] = signed
    answer = await _send(sim, call.MeterValues(evse_id=evse_id, meter_value=[entry]))
    sim.emit("meter_values", evse_id=evse_id, signed=signed is not None)
    return answer


# -- N: events, P: data transfer ---------------------------------------------------------------------

_event_ids = iter(range(1, 1 << 31))


async def notify_event(sim: ServedStation, component: str, variable: str, value: str, *,
                       trigger: str = "Delta", evse_id: int | None = None, cleared: bool | None = None,
                       tech_info: str | None = None) -> Any:
    """One NotifyEvent (N07/N08) of a hard-wired notification: `component`.`variable` is now `value`."""
    data: dict[str, Any] = {"event_id": next(_event_ids), "timestamp": iso(sim.wall_clock()), "trigger": trigger,
                            "actual_value": value, "event_notification_type": "HardWiredNotification",
                            "component": {"name": component, **({"evse": {"id": evse_id}} if evse_id else {})},
                            "variable": {"name": variable}}
    if cleared is not None:
        data["cleared"] = cleared
    if tech_info:
        data["tech_info"] = tech_info
    return await _send(sim, call.NotifyEvent(generated_at=iso(sim.wall_clock()), seq_no=0, event_data=[data]))


async def data_transfer(sim: ServedStation, vendor_id: str, message_id: str | None = None,
                        data: Any = None) -> Any:
    return await _send(sim, call.DataTransfer(vendor_id=vendor_id, message_id=message_id, data=data))


# -- L, N: what the CSMS asks ------------------------------------------------------------------------

class ServiceHandlers:
    """UpdateFirmware and GetLog, answered first and acted on after (simulator.follow_ups)."""

    sim: ServedStation

    @on(Action.update_firmware)
    def on_update_firmware(self, request_id: int, firmware: dict, call_unique_id: str,
                           **_: Any) -> call_result.UpdateFirmware:
        status = self._answer("UpdateFirmware", "Accepted", call_unique_id,  # type: ignore[attr-defined]
                              lambda: self._install(request_id, firmware), request_id=request_id)
        return call_result.UpdateFirmware(status=status)

    @after(Action.update_firmware)
    def after_update_firmware(self, call_unique_id: str, **_: Any) -> None:
        self._follow_up(call_unique_id)  # type: ignore[attr-defined]

    async def _install(self, request_id: int, firmware: dict) -> None:
        async def report(status: str) -> None:
            self.sim.emit("firmware_status", status=status, request_id=request_id)
            await self.send(call.FirmwareStatusNotification(status=status, request_id=request_id))  # type: ignore[attr-defined]
        await install_firmware(self.sim, firmware, report)

    @on(Action.get_log)
    def on_get_log(self, log: dict, log_type: str, request_id: int, call_unique_id: str,
                   **_: Any) -> call_result.GetLog:
        file_name = f"{log_type}-{self.sim.id}.log"
        location = log["remote_location"]
        status = self._answer("GetLog", "Accepted", call_unique_id,  # type: ignore[attr-defined]
                              lambda: self._upload(location, request_id, file_name), request_id=request_id)
        return call_result.GetLog(status=status, filename=file_name)

    @after(Action.get_log)
    def after_get_log(self, call_unique_id: str, **_: Any) -> None:
        self._follow_up(call_unique_id)  # type: ignore[attr-defined]

    async def _upload(self, location: str, request_id: int, file_name: str) -> None:
        await self.send(call.LogStatusNotification(status="Uploading", request_id=request_id))  # type: ignore[attr-defined]
        status = await put_log(self.sim, location, file_name)
        self.sim.emit("log_upload", status=status, request_id=request_id)
        await self.send(call.LogStatusNotification(status=status, request_id=request_id))  # type: ignore[attr-defined]
