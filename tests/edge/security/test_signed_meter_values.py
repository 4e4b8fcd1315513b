"""Signed meter values (OCMF): the simulated charger's calibrated meter signs each session's begin and end
reading; the real edge keeps them with the transaction, verifies them with the charger's meter key into
the charge record, and exports them as the transparency software's XML (read back here with pyocmf)."""

from __future__ import annotations

import warnings
from datetime import datetime, timezone

import pyocmf
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from pyocmf.utils.xml import OcmfContainer

from edge.cdr.signed_data import record_status, valid_public_key, verify
from edge.config import ConfigError, parse_config
from edge.journal import Store
from edge.ocpp.signed_values import signed_of
from simulator import ocmf
from tests.edge.cdr.helpers import next_cdr
from tests.edge.conftest import PASSWORD_HASH, api_call, eventually, simulated, site_toml

KEY = ec.generate_private_key(ec.SECP256R1())
OTHER = ec.generate_private_key(ec.SECP256R1())


def _reading(key=KEY, energy_wh: float = 1234.5, kind: str = "B") -> str:
    return ocmf.sign(key, meter_serial="M-1", transaction_id="7", id_tag="TAG-OK", energy_wh=energy_wh,
                     at=datetime(2027, 1, 1, tzinfo=timezone.utc), kind=kind)


def test_verdicts():
    key = ocmf.public_key_hex(KEY)
    assert verify(_reading(), key) == ("verified", None)
    assert verify(_reading(OTHER), key)[0] == "invalid"
    tampered = _reading().replace('"RV":1.234', '"RV":0.234')
    assert verify(tampered, key)[0] == "invalid"
    assert verify(_reading(), None)[0] == "unverifiable"
    assert verify("0A1B" * 40, key)[0] == "unverifiable"            # EDL: kept, not checked here
    assert verify("OCMF|{broken", key)[0] == "invalid"
    values = [{"signed_data": _reading(), "encoding": "OCMF"}, {"signed_data": tampered, "encoding": "OCMF"}]
    assert record_status(values, key)["status"] == "invalid"
    assert record_status(values[:1], key)["status"] == "verified"
    assert record_status(values[:1], None)["status"] == "unverifiable"
    assert record_status([], key) is None


def test_signed_values_are_picked_from_meter_values():
    meter_value = [{"timestamp": "2027-01-01T00:00:00Z", "sampled_value": [
        {"value": "12.0", "measurand": "Energy.Active.Import.Register"},
        {"value": _reading(), "format": "SignedData", "context": "Transaction.Begin"},
        {"value": "AB" * 40, "format": "SignedData"}]}]
    picked = signed_of(meter_value)
    assert [p["encoding"] for p in picked] == ["OCMF", "EDL"]
    assert picked[0]["context"] == "Transaction.Begin"


def test_the_config_takes_a_meter_key_and_refuses_what_is_not_one(tmp_path):
    key = ocmf.public_key_hex(KEY)
    assert valid_public_key(key.upper()) == key
    bad = site_toml(tmp_path, chargers='[[chargers]]\nid = "CP-1"\nmeter_public_key = "abcd"\n')
    with pytest.raises(ConfigError, match="meter_public_key"):
        parse_config(bad, "site.toml", state_dir=str(tmp_path))


def _chargers(key: str | None) -> str:
    line = f'meter_public_key = "{key}"\n' if key else ""
    return f'[[chargers]]\nid = "CP-1"\npassword_hash = "{PASSWORD_HASH}"\nconnectors = 2\n{line}'


async def _keys_with(edge, charger_id: str) -> dict | None:
    """The stored meter keys once `charger_id`'s is among them."""
    found = await edge.journal.read(Store.meter_keys)
    return found if charger_id in found else None


async def _session(edge, sim) -> dict:
    records = edge.bus.subscribe()
    await sim.plug_in(1)
    await sim.start_transaction(1, "TAG-OK")
    await sim.stop_transaction(1)
    await sim.flush()
    summary = await next_cdr(records)
    return (await api_call(edge, "GET", f"/cdrs/{summary['id']}"))


async def test_a_session_with_signed_readings_gives_a_verified_record_and_a_transparency_export(make_edge, tmp_path):
    async with make_edge(chargers=_chargers(ocmf.public_key_hex(KEY))) as edge, \
            simulated(edge, ocmf_key=KEY) as sim:
        cdr = await _session(edge, sim)
        signed = cdr["signed_data"]
        assert signed["status"] == "verified", signed
        assert [v["context"] for v in signed["values"]] == ["Transaction.Begin", "Transaction.End"]
        import aiohttp
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{edge.api.bound_port}/api/v1/security/transparency.xml",
                                params={"transaction": str(cdr["transaction_id"])},
                                headers={"Authorization": f"Bearer {edge.api._token}"}) as got:
                assert got.status == 200
                (tmp_path / "t.xml").write_text(await got.text())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        container = OcmfContainer.from_xml(tmp_path / "t.xml")
        assert len(container) == 2 and all(record.verify_signature() for record in container)
        assert {r.context for r in container} == {"Transaction.Begin", "Transaction.End"}


async def test_without_a_key_the_record_says_unverifiable_and_with_a_wrong_one_invalid(make_edge):
    async with make_edge(chargers=_chargers(None)) as edge, \
            simulated(edge, ocmf_key=KEY, shows_meter_key=False) as sim:
        assert (await _session(edge, sim))["signed_data"]["status"] == "unverifiable"
    async with make_edge(chargers=_chargers(ocmf.public_key_hex(OTHER))) as edge, \
            simulated(edge, ocmf_key=KEY) as sim:
        cdr = await _session(edge, sim)
        assert cdr["signed_data"]["status"] == "invalid"
        assert any("does not verify" in flag for flag in cdr["flags"])


async def test_the_meter_key_is_read_from_a_charger_once_it_signs(make_edge):
    async with make_edge(chargers=_chargers(None)) as edge, simulated(edge, ocmf_key=KEY) as sim:
        assert await edge.journal.read(Store.meter_keys) == {}          # nothing asked of a charger that has not signed
        first = await _session(edge, sim)                   # its signed values make the edge ask for the key
        assert first["signed_data"]["status"] in ("unverifiable", "verified")
        found = await eventually(lambda: _keys_with(edge, "CP-1"), "the meter key stored")
        assert found["CP-1"]["public_key"] == ocmf.public_key_hex(KEY)
        assert found["CP-1"]["source"] == "GetConfiguration MeterPublicKey"
        assert (await _session(edge, sim))["signed_data"]["status"] == "verified"


assert pyocmf
