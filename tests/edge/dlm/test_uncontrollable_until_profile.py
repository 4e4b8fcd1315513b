"""A charger is steered only once it accepted its default profile. Until then
(not booted yet, or slow to answer SetChargingProfile) a car on it may draw
its maximum, so that maximum is held in the allocation and the other cars
get less: the circuit is never over its fuse. The observation: a car started
in that window drew 30 A per phase, with no profile, on a 40 A circuit."""

from __future__ import annotations

import pytest
from ocpp.v16 import call

from tests.edge.boot_first import BootFirstCharger, boot_first
from edge.journal import Store
from tests.edge.conftest import wait_for
from tests.edge.dlm.test_load_management import LM, chargers
from tests.edge.test_charger_ready import next_event

LIMIT = 40.0   # the circuit "grid" in LM
MAX = 32.0     # every charger's maximum


def last_limit(cp: BootFirstCharger) -> float | None:
    """The limit of the TxProfile the charger holds now (the last one it accepted)."""
    tx = [p for p in cp.profiles if p["charging_profile_purpose"] == "TxProfile"]
    return float(tx[-1]["charging_schedule"]["charging_schedule_period"][0]["limit"]) if tx else None


async def start_car(cp: BootFirstCharger, tag: str, amps: float) -> int:
    await cp.send_call(call.StatusNotification(connector_id=1, error_code="NoError", status="Charging"))
    tx = (await cp.send_call(call.StartTransaction(connector_id=1, id_tag=tag, meter_start=0,
                                                   timestamp="2026-12-06T10:00:00Z"))).transaction_id
    await cp.send_call(call.MeterValues(connector_id=1, transaction_id=tx, meter_value=[{
        "timestamp": "2026-12-06T10:00:05Z", "sampled_value": [
            {"value": f"{amps:g}", "measurand": "Current.Import", "phase": p, "unit": "A"}
            for p in ("L1", "L2", "L3")]}]))
    return tx


def worst_phase(edge) -> float:
    """What the allocation lets the circuit carry on its fullest phase: what it gave the
    controlled cars plus what it holds for the chargers it cannot steer."""
    phases = edge.load_manager.allocation.circuits["grid"].phases
    return max(p.allocated + p.reserved for p in phases)


@pytest.mark.parametrize("before_boot", ["silent", "refuse"])
async def test_a_car_started_before_the_default_profile_does_not_overload_the_circuit(make_edge, before_boot):
    async with make_edge(extra=LM, chargers=chargers("A", "B")) as edge:
        dlm = edge.load_manager
        # A has booted with this site before; B has just been switched on.
        async with boot_first(edge, "A", booted=True) as a, boot_first(edge, "B", before_boot=before_boot) as b:
            # B is connected but has not booted: a car there would run on nothing we set.
            assert await a.boot() == "Accepted"
            await wait_for(lambda: dlm.chargers["A"].default_sent is not None, what="A steered")
            await start_car(a, "TAG-OK", MAX)
            await wait_for(lambda: last_limit(a) is not None, what="A's first TxProfile")
            assert last_limit(a) <= LIMIT - MAX, "B's maximum is not held while it cannot be steered"

            # B boots, but takes its time with the default profile; its car starts at once and draws 30 A.
            b.hold.add("SetChargingProfile")
            assert await b.boot() == "Accepted"
            await b.wait_for_call("SetChargingProfile")
            await start_car(b, "TAG-2", 30.0)
            await wait_for(lambda: dlm.tracks[("B", 1)].measured == (30.0, 30.0, 30.0), what="B's car measured")
            dlm.evaluate()
            decisions = dlm.allocation.decisions
            assert decisions[("A", 1)].limit <= LIMIT - MAX
            assert last_limit(a) <= LIMIT - MAX
            assert worst_phase(edge) <= LIMIT
            # What may really flow: A at its profile, B's car at whatever it likes (at most its maximum).
            assert last_limit(a) + MAX <= LIMIT
            assert decisions[("B", 1)].limit == 0.0 and "no default profile accepted yet" in decisions[("B", 1)].reason

            # B accepts its default profile: from now on it is steered and both share.
            await b.release("SetChargingProfile")
            await wait_for(lambda: last_limit(b) is not None and last_limit(a) == last_limit(b) == LIMIT / 2,
                           what="an equal split once B is steered")
            assert worst_phase(edge) <= LIMIT


async def test_a_failed_default_profile_is_retried_and_the_maximum_held_meanwhile(make_edge):
    async with make_edge(extra=LM, chargers=chargers("A", "B")) as edge:
        dlm = edge.load_manager
        dlm.retry_delays = (0.3, 0.6)
        events = edge.bus.subscribe()
        async with boot_first(edge, "B") as b:
            b.fail_once.add(("SetChargingProfile", "TxDefaultProfile"))
            assert await b.boot() == "Accepted"
            alert = await next_event(events, "dlm.uncontrollable", "B")
            assert "TxDefaultProfile error" in alert.data["reason"]
            assert dlm.allocation.circuits["grid"].phases[0].reserved == MAX * 2   # A offline, B not steered
            await wait_for(lambda: dlm.chargers["B"].default_sent is not None, what="the retry accepted")
            dlm.evaluate()
            assert dlm.allocation.circuits["grid"].phases[0].reserved == MAX        # only A, offline
        tries = [a["outcome"] for a in reversed(await edge.journal.read(Store.log, "actions", "B", 50))
                 if a["action"] == "SetChargingProfile"]
        assert tries == ["error", "ok"]
