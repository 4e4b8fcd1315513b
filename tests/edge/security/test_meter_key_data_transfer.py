"""A calibrated meter's public key announced by DataTransfer (vendorId "generalConfiguration", messageId
"setMeterConfiguration", as German calibration-law chargers send it after boot) is kept for the charger and
verifies its signed readings from the first session on. The simulated charger here does not show the key in
its configuration, so the DataTransfer is the only way the edge can learn it."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, strategies as st
from ocpp.v16 import call

from edge.journal import Store
from edge.ocpp.signed_values import announces_meter_key, meter_configuration_keys
from simulator import ocmf
from tests.edge.conftest import simulated
from tests.edge.security.test_signed_meter_values import _chargers, _session

KEY = ec.generate_private_key(ec.SECP256R1())
OTHER = ec.generate_private_key(ec.SECP256R1())


def _announce(*meters: tuple[int, str]) -> call.DataTransfer:
    return call.DataTransfer(vendor_id="generalConfiguration", message_id="setMeterConfiguration", data=json.dumps(
        {"meters": [{"connectorId": c, "meterSerial": f"M-{c}", "type": "SIGNATURE", "publicKey": k}
                    for c, k in meters]}))


async def test_a_meter_key_announced_by_data_transfer_verifies_the_first_session(make_edge):
    key = ocmf.public_key_hex(KEY)
    async with make_edge(chargers=_chargers(None)) as edge, \
            simulated(edge, ocmf_key=KEY, shows_meter_key=False) as sim:
        await sim.wait_online()
        answer = await sim.send(_announce((1, key.upper()), (2, key.upper())))
        assert answer.status == "Accepted"
        kept = await edge.journal.read(Store.meter_keys)
        assert kept["CP-1"] == {**kept["CP-1"], "public_key": key, "source": "DataTransfer setMeterConfiguration"}
        assert (await _session(edge, sim))["signed_data"]["status"] == "verified"


async def test_what_is_not_one_meter_key_is_rejected_and_nothing_kept(make_edge):
    async with make_edge(chargers=_chargers(None)) as edge, \
            simulated(edge, ocmf_key=KEY, shows_meter_key=False) as sim:
        await sim.wait_online()
        broken = call.DataTransfer(vendor_id="generalConfiguration", message_id="setMeterConfiguration",
                                   data="{not json")
        assert (await sim.send(broken)).status == "Rejected"
        two = _announce((1, ocmf.public_key_hex(KEY)), (2, ocmf.public_key_hex(OTHER)))
        assert (await sim.send(two)).status == "Rejected"      # one key per charger: neither is trusted
        assert await edge.journal.read(Store.meter_keys) == {}
        assert (await _session(edge, sim))["signed_data"]["status"] == "unverifiable"


async def test_the_configured_key_wins_over_an_announced_one(make_edge):
    async with make_edge(chargers=_chargers(ocmf.public_key_hex(KEY))) as edge, \
            simulated(edge, ocmf_key=KEY, shows_meter_key=False) as sim:
        await sim.wait_online()
        assert (await sim.send(_announce((1, ocmf.public_key_hex(OTHER))))).status == "Accepted"
        assert (await edge.journal.read(Store.meter_keys))["CP-1"]["source"] == "config"
        assert (await _session(edge, sim))["signed_data"]["status"] == "verified"


def test_the_announcement_is_recognised_without_case():
    assert announces_meter_key("generalConfiguration", "setMeterConfiguration")
    assert announces_meter_key("GeneralConfiguration", "SetMeterConfiguration")
    assert not announces_meter_key("generalConfiguration", None)
    assert not announces_meter_key("com.vendor", "setMeterConfiguration")


@pytest.mark.parametrize("data, why", [
    (None, "data is missing"), ("[1]", 'no "meters"'), ('{"meters": []}', 'no "meters"'),
    ('{"meters": [{"publicKey": "00"}]}', "meters[0].connectorId"),
    ('{"meters": [{"connectorId": true, "publicKey": "00"}]}', "meters[0].connectorId"),
    ('{"meters": [{"connectorId": 1, "publicKey": "abcd"}]}', "meters[0].publicKey"),
    ("[" * 5000, "not JSON"),
])
def test_a_bad_announcement_says_what_is_wrong(data, why):
    with pytest.raises(ValueError, match=why.replace("[", r"\[").replace("]", r"\]")):
        meter_configuration_keys(data)


@given(st.one_of(st.none(), st.text(max_size=200), st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(
        ["meters", "connectorId", "publicKey", "x"]), inner, max_size=3), max_leaves=12).map(json.dumps)))
def test_any_data_gives_keys_or_a_reason(data):
    try:
        found = meter_configuration_keys(data)
    except ValueError as exc:
        assert str(exc)
    else:
        assert found and all(isinstance(k, str) for k in found.values())
