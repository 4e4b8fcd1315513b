"""The simulated 2.0.1 station's side of block A (Security) beyond what simulator/v201/handlers.py does
(SignCertificate on TriggerMessage, CertificateSigned):

- SetVariables SecurityCtrlr.BasicAuthPassword (A01): 16 to 40 characters of identifierString, or
  Rejected (TC_A_10_CS); an accepted one is the password of the next connection, and the station
  reconnects with it at once (TC_A_09_CS).
- InstallCertificate / GetInstalledCertificateIds / DeleteCertificate (M03, M04, M05) over its CA store
  (the 1.6 charger's, simulator/security.py), in 2.0.1's certificate types (CSMSRootCertificate, ...).
- SetNetworkProfile (B09) and OCPPCommCtrlr.NetworkConfigurationPriority, the way A05 raises a station's security
  profile: a profile goes into a configurationSlot the station offers (0 to 2) other than the one in use, and is
  Rejected below the profile in use (no downgrade, TC_A_22_CS), at 2 or 3 without a CSMS root to trust (its TLS
  context or an installed CSMSRootCertificate, TC_A_20_CS), at 3 without a client certificate (TC_A_21_CS). A
  NetworkConfigurationPriority naming a slot without a profile, or one below the profile in use, is Rejected;
  an accepted one applies at the next boot (a Reset, a power cycle): the station then connects with the first
  slot's URL and profile (wss:// with its password at 2, its certificate without a password at 3). Not
  simulated: falling back to the next slot when the first cannot connect (B10.FR.03).

As in simulator/v201/handlers.py every @on answers without awaiting a call.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Protocol

from urllib.parse import quote

from ocpp.routing import on
from ocpp.v201 import ChargePoint, call_result
from ocpp.v201.enums import Action

from simulator.security import delete_certificate, hash_data, install_certificate

if TYPE_CHECKING:
    import ssl

    from simulator.security import SecurityState
    from simulator.v201.device_model import DeviceModel, Key

# identifierString (OCPP 2.0.1 part 2, 2.1.2): what a BasicAuthPassword may hold; 16 to 40 of them (A00.FR.205).
PASSWORD = re.compile(r"[A-Za-z0-9*\-_=:+|@.]{16,40}")


PRIORITY = ("OCPPCommCtrlr", "NetworkConfigurationPriority")


class SecuredStation(Protocol):
    """What block A's rules and handlers use of the 2.0.1 station (station.py, which imports this module): its
    device model, the network profiles it may connect with, its URL, password and TLS contexts."""

    id: str
    url: str
    password: str | None
    tls: ssl.SSLContext | None
    trust_tls: ssl.SSLContext | None
    client_tls: ssl.SSLContext | None
    security: SecurityState
    security_password_changed: bool
    network_profiles: dict[int, dict]
    device: DeviceModel

    def emit(self, name: str, **data: Any) -> None: ...


def is_password(item: dict) -> bool:
    return item["component"].get("name") == "SecurityCtrlr" and item["variable"].get("name") == "BasicAuthPassword"


def set_variable(sim: SecuredStation, item: dict) -> tuple[dict, "Key | None"]:
    """One SetVariableResult: the BasicAuthPassword's own rules, any other variable the device model's."""
    if (item["component"].get("name"), item["variable"].get("name")) == PRIORITY:
        return set_priority(sim, item)
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


def in_use(sim: SecuredStation) -> int:
    """The security profile the station connects with now."""
    return int(sim.device.get("SecurityCtrlr", "SecurityProfile"))


def slots_offered(sim: SecuredStation) -> tuple[str, ...]:
    return sim.device.variables[("OCPPCommCtrlr", None, "NetworkConfigurationPriority", None)].values_list or ()


def set_priority(sim: SecuredStation, item: dict) -> tuple[dict, None]:
    """NetworkConfigurationPriority (B10, A05.FR.04): slots with a profile, none below the profile in use;
    Accepted, and used from the next boot."""
    result = {"attribute_type": item.get("attribute_type") or "Actual", "component": item["component"],
              "variable": item["variable"]}
    slots = str(item["attribute_value"]).split(",")
    unknown = [s for s in slots if not s.isdigit() or int(s) not in sim.network_profiles]
    lower = [s for s in slots if s not in unknown and sim.network_profiles[int(s)]["security_profile"] < in_use(sim)]
    if unknown or lower:
        why = (f"no network profile in slot {','.join(unknown)}" if unknown else
               f"slot {','.join(lower)} is below security profile {in_use(sim)} (A05: no downgrade)")
        return {**result, "attribute_status": "Rejected",
                "attribute_status_info": {"reason_code": "InvalidValue", "additional_info": why}}, None
    sim.device.after_reboot[("OCPPCommCtrlr", None, "NetworkConfigurationPriority", None)] = ",".join(slots)
    sim.emit("network_priority", slots=slots)
    return {**result, "attribute_status": "Accepted"}, None


def network_profile_refusal(sim: SecuredStation, slot: int, data: dict) -> str | None:
    """Why SetNetworkProfile(slot, data) is Rejected, or None."""
    target = data.get("security_profile")
    if str(slot) not in slots_offered(sim):
        return f"configurationSlot {slot} is not one of {','.join(slots_offered(sim))}"
    if str(slot) == sim.device.get("OCPPCommCtrlr", "NetworkConfigurationPriority").split(",")[0]:
        return f"configurationSlot {slot} is the one in use"
    if data.get("ocpp_version") != "OCPP20" or data.get("ocpp_transport") != "JSON":
        return "this station speaks OCPP 2.0.1 over JSON only"
    if not isinstance(target, int) or target < in_use(sim):
        return f"security profile {target} is below the {in_use(sim)} in use (A05: no downgrade)"
    if target >= 2 and sim.trust_tls is None and not sim.security.installed.get("CSMSRootCertificate"):
        return "no CSMS root certificate to trust for TLS"
    if target == 3 and sim.client_tls is None:
        return "no charging station certificate for security profile 3"
    if target >= 2 and not str(data.get("ocpp_csms_url", "")).startswith("wss://"):
        return f"security profile {target} needs a wss:// URL"
    return None


def use_network_profile(sim: SecuredStation) -> None:
    """At boot: connect with the first slot of NetworkConfigurationPriority that has a profile."""
    order = [int(s) for s in sim.device.get("OCPPCommCtrlr", "NetworkConfigurationPriority").split(",") if s.isdigit()]
    slot = next((s for s in order if s in sim.network_profiles), None)
    if slot is None:
        return
    data = sim.network_profiles[slot]
    url, profile = str(data["ocpp_csms_url"]), int(data["security_profile"])
    suffix = "/" + quote(sim.id, safe="")
    sim.url = url if url.endswith(suffix) else url.rstrip("/") + suffix
    if profile == 3:
        sim.tls, sim.password = sim.client_tls, None
    elif profile == 2:
        sim.tls = sim.trust_tls
    sim.device.put("SecurityCtrlr", "SecurityProfile", str(profile))
    sim.emit("network_profile", slot=slot, url=sim.url, security_profile=profile)


def after_set_variables(sim: SecuredStation, close: Callable[[], Awaitable[Any]]) -> Callable | None:
    """The follow-up of a SetVariables that set a new password: reconnect with it (None: nothing to do)."""
    if not sim.security_password_changed:
        return None
    sim.security_password_changed = False
    return close


class StationSecurityHandlers(ChargePoint):
    sim: SecuredStation

    @on(Action.set_network_profile)
    def on_set_network_profile(self, configuration_slot: int, connection_data: dict, call_unique_id: str,
                               **_: Any) -> call_result.SetNetworkProfile:
        sim = self.sim
        why = network_profile_refusal(sim, configuration_slot, connection_data)
        if why is None:
            sim.network_profiles[configuration_slot] = dict(connection_data)
        status = "Rejected" if why else "Accepted"
        self._answer("SetNetworkProfile", status, call_unique_id,  # type: ignore[attr-defined]
                     configuration_slot=configuration_slot, security_profile=connection_data.get("security_profile"),
                     url=connection_data.get("ocpp_csms_url"), reason=why)
        return call_result.SetNetworkProfile(
            status=status, status_info={"reason_code": "InvalidValue", "additional_info": why[:512]} if why else None)

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
