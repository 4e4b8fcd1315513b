"""OCPP 2.0.1 block A at its boundaries (pure: edge/ocpp/v201/security.py, the shared CSR checks and the
masking of the new password); the end-to-end cases with real TLS are tests/edge/security/test_v201_security.py.

Hypothesis drives what comes from outside: a station's CSR (any subject, any key), the certificate types,
the operator's 1.6 certificate commands, and every password the edge can make."""

from __future__ import annotations

import json
import random
from datetime import datetime, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings, strategies as st
from ocpp.messages import Call, _validate_payload
from ocpp.v16 import call as call16

from edge.ocpp import certificates
from edge.ocpp.credentials import new_password
from edge.ocpp.masking import MASK, mask_frame, mask_payload
from edge.ocpp.security_messages import hash_data
from edge.ocpp.security_words import OCPP16_WORDS, OCPP201_WORDS
from edge.ocpp.v201 import security
from edge.ocpp.v201.translate import as_v201_request

NOW = datetime(2026, 12, 7, tzinfo=timezone.utc)
STATION = "CS-201"
CA = certificates.make_ca("Test site CA", now=NOW)
KEYS = {"p256": ec.generate_private_key(ec.SECP256R1()), "p384": ec.generate_private_key(ec.SECP384R1()),
        "rsa1024": rsa.generate_private_key(public_exponent=65537, key_size=1024),
        "rsa2048": rsa.generate_private_key(public_exponent=65537, key_size=2048)}
CERTIFICATE_TYPES = st.sampled_from([None, "ChargingStationCertificate", "V2GCertificate"])


def schema_ok(action: str, params: dict) -> None:
    """Raises unless `params` is a valid 2.0.1 `action` request (the library's JSON schema)."""
    _validate_payload(Call("1", action, json.loads(json.dumps(params))), "2.0.1")


def csr(common_name: str, organization: str | None, key_name: str) -> bytes:
    names = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        names.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return (x509.CertificateSigningRequestBuilder().subject_name(x509.Name(names))
            .sign(KEYS[key_name], hashes.SHA256()).public_bytes(serialization.Encoding.PEM))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(common_name=st.one_of(st.just(STATION), st.text(min_size=1, max_size=64)),
       organization=st.one_of(st.none(), st.text(min_size=1, max_size=32)),
       key_name=st.sampled_from(sorted(KEYS)), certificate_type=CERTIFICATE_TYPES)
def test_a_CSR_is_signed_only_for_this_station_and_its_key_and_answered_in_2_0_1_form(common_name, organization,
                                                                                    key_name, certificate_type):
    try:
        request = csr(common_name, organization, key_name)
    except ValueError:
        return                                  # not even a CSR (cryptography refuses the name)
    schema_ok("SignCertificate", {"csr": request.decode(), **(
        {"certificateType": certificate_type} if certificate_type else {})})
    try:
        pem = certificates.sign_csr(CA.certificate, CA.key or b"", request, STATION, now=NOW)
    except certificates.CertificateError:
        assert common_name != STATION or key_name == "rsa1024"      # the wrong name, or a key too small
        return
    cert = x509.load_pem_x509_certificate(pem)
    assert certificates.common_name(cert) == STATION and key_name != "rsa1024"
    assert cert.public_key().public_numbers() == KEYS[key_name].public_key().public_numbers()
    action, params = security.certificate_signed(pem.decode(), certificate_type)
    schema_ok(action, params)
    assert params.get("certificateType") == certificate_type       # A02.FR.14: the CSR's own type, or none


@given(st.text(max_size=40).filter(lambda t: t.strip() != ""))
def test_text_that_is_no_CSR_is_refused(text):
    with pytest.raises(certificates.CertificateError):
        certificates.sign_csr(CA.certificate, CA.key or b"", text.encode(), STATION, now=NOW)


@given(st.integers(0, 2 ** 64))
def test_every_password_the_edge_makes_is_a_2_0_1_BasicAuthPassword_and_never_logged(seed: int):
    password = new_password(random.Random(seed).choice)
    action, params = OCPP201_WORDS.password_request(password)
    schema_ok(action, params)
    assert security.PASSWORD_VARIABLE == params["setVariableData"][0]["variable"]["name"]
    assert 16 <= len(password) <= 40 and password.isalnum()         # identifierString, A00.FR.205
    frame = json.dumps([2, "1", action, params])
    assert password not in mask_frame(frame) and password not in json.dumps(mask_payload(params))
    # 1.6 gets the same key as the whitepaper's hex digits, also masked.
    action16, params16 = OCPP16_WORDS.password_request(password)
    assert (action16, bytes.fromhex(params16["value"]).decode()) == ("ChangeConfiguration", password)
    assert params16["value"] not in mask_frame(json.dumps([2, "1", action16, params16]))


@given(st.sampled_from(["Accepted", "RebootRequired", "Rejected", "UnknownComponent", "UnknownVariable",
                        "NotSupportedAttributeType"]))
def test_the_password_answer_is_read_from_the_BasicAuthPassword_result(status):
    response = {"setVariableResult": [
        {"attributeStatus": "Accepted", "component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "X"}},
        {"attributeStatus": status, "component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"}}]}
    assert security.password_status(response) == status
    assert security.password_status({"status": "Accepted"}) is None     # not a SetVariables answer


def test_a_password_a_station_reports_back_is_masked_in_every_2_0_1_shape():
    secret = "AbCdEfGhIjKlMnOpQrSt"
    get_result = {"getVariableResult": [{"attributeStatus": "Accepted", "attributeValue": secret,
                                         "component": {"name": "SecurityCtrlr"},
                                         "variable": {"name": "BasicAuthPassword"}}]}
    report = {"reportData": [{"component": {"name": "SecurityCtrlr"}, "variable": {"name": "basicauthpassword"},
                              "variableAttribute": [{"type": "Actual", "value": secret}]}]}
    for payload in (get_result, report):
        assert secret not in json.dumps(mask_payload(payload)) and MASK in json.dumps(mask_payload(payload))
        frame = json.dumps([3, "1", payload])
        assert secret not in mask_frame(frame)
        assert secret not in mask_frame(frame.replace("BasicAuthPassword", "BasicAuth\\u0050assword"))
    other = {"attributeValue": "60", "component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
    assert mask_payload(other) == other


USES_16 = st.sampled_from(["CentralSystemRootCertificate", "ManufacturerRootCertificate"])


@given(USES_16)
def test_the_operators_1_6_certificate_commands_reach_a_2_0_1_station_as_their_twins(use):
    pem = CA.certificate.decode()
    install = as_v201_request(call16.InstallCertificate(certificate_type=use, certificate=pem))
    listing = as_v201_request(call16.GetInstalledCertificateIds(certificate_type=use))
    delete = as_v201_request(call16.DeleteCertificate(certificate_hash_data=hash_data(CA.certificate)))
    expected = "CSMSRootCertificate" if use == "CentralSystemRootCertificate" else use
    assert install.certificate_type == expected and listing.certificate_type == [expected]
    for twin in (install, listing, delete):
        schema_ok(type(twin).__name__, _camel(twin))


@given(st.sampled_from(sorted(security.EXTENDED_TRIGGERS)), st.one_of(st.none(), st.integers(1, 4)))
def test_extended_trigger_message_becomes_trigger_message(message, connector):
    twin = as_v201_request(call16.ExtendedTriggerMessage(requested_message=message, connector_id=connector))
    assert type(twin).__name__ == "TriggerMessage"
    assert twin.requested_message == security.EXTENDED_TRIGGERS[message]
    schema_ok("TriggerMessage", _camel(twin))


@given(CERTIFICATE_TYPES)
def test_a_new_CSR_is_asked_for_with_2_0_1s_trigger(certificate_type):
    action, params = OCPP201_WORDS.csr_request(certificate_type)
    schema_ok(action, params)
    assert params["requestedMessage"] == ("SignV2GCertificate" if certificate_type == "V2GCertificate"
                                          else "SignChargingStationCertificate")
    assert OCPP16_WORDS.csr_request(certificate_type) == (
        "ExtendedTriggerMessage", {"requestedMessage": "SignChargePointCertificate"})


def _camel(payload) -> dict:
    from ocpp.charge_point import remove_nones, serialize_as_dict, snake_to_camel_case
    return snake_to_camel_case(remove_nones(serialize_as_dict(payload)))


# -- A05: once raised, a station's lower profile is refused at the handshake (edge/ocpp/tls.py) ----------------

from edge.ocpp import tls as tls_layer  # noqa: E402

PEERS = {"plain": None, "tls": tls_layer.PeerTls("TLSv1.3", "TLS_AES_128_GCM_SHA256", None),
         "tls+cert": tls_layer.PeerTls("TLSv1.3", "TLS_AES_128_GCM_SHA256", b"der")}


@given(profile=st.integers(1, 3), floor=st.integers(0, 3), peer=st.sampled_from(sorted(PEERS)),
       name=st.sampled_from([STATION, "CS-other"]), password_set=st.booleans())
def test_a_station_raised_to_a_profile_is_never_let_in_below_it(profile, floor, peer, name, password_set):
    """admission's floor (TC_A_19 steps 10-13): the station is admitted exactly as if configured at the higher of
    the config's profile and the one it was raised to; never at a level below that floor when it needs a password
    or a certificate there, and the refusal names the way in."""
    tls = PEERS[peer]
    cn = name if tls is not None and tls.certificate else None
    got = tls_layer.admission(STATION, profile, tls, tls_port=8443, cert_common_name=cn,
                              password_set=password_set, floor=floor)
    assert got == tls_layer.admission(STATION, max(profile, floor), tls, tls_port=8443, cert_common_name=cn,
                                      password_set=password_set)
    if got.refusal is None and max(profile, floor) >= 2:
        assert got.level >= 2 or (not password_set and got.level == 0)
    if floor >= 2 and tls is None:
        assert got.refusal is not None and "wss://" in got.refusal


def test_TC_A_19_CSMS_steps_10_11_the_old_profile_is_refused_the_new_one_admitted():
    """A station configured at 1 and raised to 2: ws:// with its password (its old profile) is refused, wss:// with
    the password is let in at 2."""
    old = tls_layer.admission(STATION, 1, None, tls_port=8443, floor=2)
    new = tls_layer.admission(STATION, 1, PEERS["tls"], tls_port=8443, floor=2)
    assert old.refusal == "security profile 2: plain ws:// is refused, connect over wss:// on port 8443"
    assert (new.refusal, new.level, new.check_password) == (None, 2, True)
