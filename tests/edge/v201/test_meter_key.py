"""A 2.0.1 station that signs its meter values without sending its meter's key is asked for it through the
StationControl (Setting.METER_PUBLIC_KEY: GetVariables FiscalMetering.PublicKey), not with 1.6's
GetConfiguration it refuses: the real edge and the simulated 2.0.1 station over real WebSockets."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec

from edge.journal import Store
from simulator import ocmf
from simulator.v201 import services
from simulator.v201.device_model import Variable
from simulator.v201.station import utcnow
from tests.edge.cdr.helpers import next_cdr
from tests.edge.conftest import api_call
from tests.edge.v201.conftest import SITE_CHARGERS, STATION, station
from tests.edge.conftest import eventually
from tests.edge.v201.test_transactions import charge, preauthorized


async def _actions(edge) -> list[dict]:
    return await edge.journal.read(Store.log, "actions", STATION, 50, None)


async def _charge_signing_without_the_key(sim, key: ec.EllipticCurvePrivateKey) -> None:
    """A transaction on EVSE 1 and a signed reading of it (OCMF, Base64) with no publicKey beside it."""
    await sim.wait_online()
    preauthorized(sim, "TAG-OK")
    await charge(sim, "TAG-OK", periodic=1)
    signed = services.signed_meter_value(key, transaction_id=sim.evses[1].tx.transaction_id, id_tag="TAG-OK",
                                         energy_wh=1000.0, at=utcnow(), kind="B", with_key=False)
    await services.meter_values(sim, 1, signed=signed)


async def test_a_201_station_signing_without_its_key_is_asked_for_FiscalMetering_PublicKey(make_edge):
    key = ec.generate_private_key(ec.SECP256R1())

    def fiscal_meter(device) -> None:
        device.variables[("FiscalMetering", None, "PublicKey", None)] = Variable(ocmf.public_key_hex(key),
                                                                                 mutability="ReadOnly")
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        records = edge.bus.subscribe()
        async with station(edge, configure=fiscal_meter, tx_updated_interval=1) as sim:
            await _charge_signing_without_the_key(sim, key)
            stored = await eventually(lambda: _key(edge), "the meter key read from the station")
            assert stored == {"public_key": ocmf.public_key_hex(key), "source": "GetVariables FiscalMetering.PublicKey"}
            asked = [a for a in await _actions(edge) if "meter's public key" in (a.get("reason") or "")]
            assert [(a["action"], a["outcome"]) for a in asked] == [("GetVariables", "ok")], asked
            await sim.stop(1)
            await sim.wait_event("transaction_ended")
            summary = await next_cdr(records)
            record = await api_call(edge, "GET", f"/cdrs/{summary['id']}")
    assert record["signed_data"]["status"] == "verified", record["signed_data"]


async def test_a_201_station_without_a_fiscal_meter_key_leaves_its_values_unverifiable(make_edge):
    """No FiscalMetering.PublicKey in its device model: the GetVariables answer says so, nothing is kept."""
    key = ec.generate_private_key(ec.SECP256R1())
    async with make_edge(chargers=SITE_CHARGERS) as edge, station(edge, tx_updated_interval=1) as sim:
        await _charge_signing_without_the_key(sim, key)

        async def asked() -> list[dict]:
            return [a for a in await _actions(edge) if "meter's public key" in (a.get("reason") or "")]
        [ask] = await eventually(asked, "the station asked for its meter key")
        assert ask["action"] == "GetVariables" and "UnknownComponent" in str(ask["response"])
        assert STATION not in await edge.journal.read(Store.meter_keys)


async def _key(edge) -> dict | None:
    found = (await edge.journal.read(Store.meter_keys)).get(STATION)
    return found and {"public_key": found["public_key"], "source": found["source"]}
