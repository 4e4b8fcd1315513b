"""The simulated 2.0.1 station's side of block A (Security) beyond what simulator/v201/handlers.py does
(SignCertificate on TriggerMessage, CertificateSigned):

- SetVariables SecurityCtrlr.BasicAuthPassword (A01): 16 to 40 characters of identifierString, or
  Rejected (TC_A_10_CS); an accepted one is the password of the next connection, and the station
  reconnects with it at once (TC_A_09_CS).
- InstallCertificate / GetInstalledCertificateIds / DeleteCertificate (M03, M04, M05) over its CA store
  (the 1.6 charger's, simulator/security.py), in 2.0.1's certificate types (CSMSRootCertificate, ...).

As in simulator/v201/handlers.py every @on answers without awaiting a call.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from ocpp.routing import on
from ocpp.v201 import ChargePoint, call_result
from ocpp.v201.enums import Action

from simulator.security import delete_certificate, hash_data, install_certificate

if TYPE_CHECKING:
    from simulator.v201.device_model import Key
    from simulator.v201.station import SimulatedStation

# identifierString (OCPP 2.0.1 part 2, 2.1.2): what a BasicAuthPassword may hold; 16 to 40 of them (A00.FR.205).
PASSWORD = re.compile(r"[A-Za-z0-9*\-_=:+|@.]{16,40}")


def is_password(item: dict) -> bool:
    return item["component"].get("name") == "SecurityCtrlr" and item["variable"].get("name") == "BasicAuthPassword"


def set_variable(sim: "SimulatedStation", item: dict) -> tuple[dict, "Key | None"]:
    """One SetVariableResult: the BasicAuthPassword's own rules, any other variable the device model's."""
    if not is_password(item):
        return sim.device.set_variable(item)
    result = {"attribute_type": item.get("attribute_type") or "Actual", "component": item["component"],
              "variable": item["variable"]}
    value = str(item["attribute_value"])
    if not PASSWORD.fullmatch(value):
        return {**result, "attribute_status": "Rejected", "attribute_status_info": {
            "reason_code": "InvalidValue", "additional_info": "16 to 40 characters of identifierString"}}, None
    sim.device.put("SecurityCtrlr", "BasicAuthPassword", value)
    sim.password, sim.security_password_changed = value, True
    sim.emit("password_changed")
    return {**result, "attribute_status": "Accepted"}, None


def after_set_variables(sim: "SimulatedStation", close: Callable[[], Awaitable[Any]]) -> Callable | None:
    """The follow-up of a SetVariables that set a new password: reconnect with it (None: nothing to do)."""
    if not sim.security_password_changed:
        return None
    sim.security_password_changed = False
    return close


class StationSecurityHandlers(ChargePoint):
    sim: "SimulatedStation"

    @on(Action.install_certificate)
    def on_install_certificate(self, certificate_type: str, certificate: str, call_unique_id: str,
                               **_: Any) -> call_result.InstallCertificate:
        status = install_certificate(self.sim.security, certificate_type, certificate)
        self._answer("InstallCertificate", status, call_unique_id, certificate_type=certificate_type)  # type: ignore
        return call_result.InstallCertificate(status=status)

    @on(Action.get_installed_certificate_ids)
    def on_get_installed_certificate_ids(self, call_unique_id: str, certificate_type: list[str] | None = None,
                                         **_: Any) -> call_result.GetInstalledCertificateIds:
        found = [{"certificate_type": kind, "certificate_hash_data": hash_data(pem)}
                 for kind, store in self.sim.security.installed.items()
                 if certificate_type is None or kind in certificate_type for pem in store]
        status = "Accepted" if found else "NotFound"
        self._answer("GetInstalledCertificateIds", status, call_unique_id)  # type: ignore[attr-defined]
        return call_result.GetInstalledCertificateIds(status=status, certificate_hash_data_chain=found or None)

    @on(Action.delete_certificate)
    def on_delete_certificate(self, certificate_hash_data: dict, call_unique_id: str,
                              **_: Any) -> call_result.DeleteCertificate:
        status = delete_certificate(self.sim.security, certificate_hash_data)
        self._answer("DeleteCertificate", status, call_unique_id)  # type: ignore[attr-defined]
        return call_result.DeleteCertificate(status=status)
