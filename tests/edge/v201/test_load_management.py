"""Load management of OCPP 2.0.1 stations (issue 19, block K): the load manager speaks
StationControl, so a 2.0.1 station under a managed circuit is steered like a 1.6 charger.
It gets its safe share as a TxDefaultProfile on EVSE 0 when it is ready, a TxProfile for
each transaction (named by the station's transactionId), and its cars follow them; its
TransactionEvent Updated meter values come at the interval the edge set
(SampledDataCtrlr.TxUpdatedInterval) with per-phase Current.Import. Real edge, real
WebSockets, the simulated 2.0.1 station (simulator.v201)."""

from __future__ import annotations

import asyncio

from edge.stations.model import ChargingLimit, LimitPurpose
from tests.edge.conftest import wait_for
from tests.edge.dlm.test_load_management import LM as LM_16
from tests.edge.v201.conftest import STATION, station

# The 1.6 end-to-end tests' site, sampled every second: a 2.0.1 TxUpdatedInterval is whole seconds.
LM = LM_16.replace("meter_values_interval = 0.5", "meter_values_interval = 1")
assert LM != LM_16
SITE = f"""
[[chargers]]
id = "{STATION}"
connectors = 2
max_current = 32
"""


def profiles(sim, purpose: str) -> list[dict]:
    return [data for name, data in sim.events if name == "charging_profile" and data["purpose"] == purpose]


def offered(sim, evse: int) -> float:
    return sim.offered_current(evse)


def drawn(sim, evse: int) -> float:
    sim.settle()
    return max(sim.connectors[evse].meter.currents)


async def start(sim, evse: int, tag: str) -> None:
    await sim.plug_in(evse)
    assert await sim.present_token(evse, tag) == "Accepted"


async def test_a_201_station_gets_its_safe_share_and_its_cars_follow_their_tx_profiles(make_edge):
    async with make_edge(extra=LM, chargers=SITE) as edge, station(edge, evses=2) as sim:
        dlm = edge.load_manager
        # Ready: its safe share (40 A for two EVSEs that may all start at once) on EVSE 0, Relative.
        await wait_for(lambda: dlm.chargers[STATION].default_sent is not None, what="the default profile taken")
        [default] = [s for s in sim.stored_profiles if s.raw["charging_profile_purpose"] == "TxDefaultProfile"]
        assert default.evse_id == 0 and default.raw["charging_profile_kind"] == "Relative"
        assert default.installed.profile.periods[0].limit == 20.0
        # Its unit and stack level as the station reports them (SmartChargingCtrlr.RateUnit, ProfileStackLevel).
        assert dlm.chargers[STATION].unit == "A" and dlm.chargers[STATION].max_stack_level == 8

        await start(sim, 1, "TAG-OK")
        await wait_for(lambda: offered(sim, 1) == 32.0, what="the first car alone at its maximum")
        await wait_for(lambda: drawn(sim, 1) >= 31.5, what="the first car drawing it")
        tx = [s for s in sim.stored_profiles if s.raw["charging_profile_purpose"] == "TxProfile"]
        assert [(s.evse_id, s.raw["transaction_id"]) for s in tx] == [(1, sim.evses[1].tx.transaction_id)]

        await start(sim, 2, "TAG-2")
        await wait_for(lambda: offered(sim, 1) == 20.0 and offered(sim, 2) == 20.0, what="an equal split")
        await wait_for(lambda: drawn(sim, 1) <= 20.0 + 1e-6 and 19.0 <= drawn(sim, 2) <= 20.0 + 1e-6,
                       what="both cars drawing their share")
        assert {(e, p["evse_id"]) for e in (1, 2) for p in profiles(sim, "TxProfile") if p["evse_id"] == e} == \
            {(1, 1), (2, 2)}
        # The edge set the sampling the estimator needs: every second, per-phase Current.Import among them.
        assert sim.device.get("SampledDataCtrlr", "TxUpdatedInterval") == "1"
        assert "Current.Import" in sim.device.members("SampledDataCtrlr", "TxUpdatedMeasurands")
        await wait_for(lambda: dlm.tracks[(STATION, 2)].measured == (20.0, 20.0, 20.0), what="EVSE 2 measured")

        await sim.stop(2)
        await wait_for(lambda: offered(sim, 1) == 32.0, what="the first car back to its maximum")


async def test_a_limit_sent_as_soon_as_a_transaction_starts_names_the_stations_transaction(make_edge):
    """The load manager hears transaction.started before the TransactionEvent handling has written which
    transactionId of the station it is; its first TxProfile, sent at once, must still name that one (a
    station rejects a TxProfile for another transaction, K01.FR.33, and would be taken as refusing)."""
    async with make_edge(extra=LM, chargers=SITE) as edge, station(edge, evses=2) as sim:
        events = edge.bus.subscribe()
        answers: list = []

        async def limit_at_once() -> None:
            while (event := await events.get()).kind != "transaction.started":
                pass
            answers.append(await edge.control.set_charging_limit(STATION, ChargingLimit(
                101, LimitPurpose.TX, 10.0, 1, evse=1, phases=3, transaction_id=event.data["transaction_id"],
                start=edge.clock.now(), duration_s=60), actor="t", reason="r"))

        task = asyncio.create_task(limit_at_once())
        await start(sim, 1, "TAG-OK")
        await asyncio.wait_for(task, 5)
        [answer] = answers
        assert answer.request["chargingProfile"]["transactionId"] == sim.evses[1].tx.transaction_id
        assert answer.outcome == "ok", answer
