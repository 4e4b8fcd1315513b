"""OCA OCPP 2.0.1 test cases of block D (Local authorization list management), CSMS side: the edge's local
list sync (edge/auth/sync.py, the same Full/Differential logic as for 1.6) keeps the simulated 2.0.1
station's list (simulator.v201: versions, Full/Differential, VersionMismatch) equal to the site's tokens, over
real WebSockets. Each test checks what the case's tool validations check of the CSMS's requests."""

from __future__ import annotations

import asyncio
import json

from edge.journal import Store
from tests.edge.conftest import api_call, wait_for
from tests.edge.v201.conftest import SITE_CHARGERS, STATION, station

# A private charge group over the station that admits no user group: no token may charge there.
NOBODY = """
[[charge_groups]]
id = "staff-only"
policy = "private"
evses = [{ charger = "CS-201" }]
"""


async def settled(edge) -> dict:
    await asyncio.wait_for(edge.local_lists.idle.wait(), 10)
    return edge.local_lists.held[STATION]


async def sent(edge, action: str) -> list[dict]:
    """The edge's requests of `action` to the station, oldest first, with their answers (the actions log)."""
    log = await edge.journal.read(Store.log, "actions", STATION, 200)
    return [{**a, "request": json.loads(a["request"])} for a in reversed(log) if a["action"] == action]


def requests(sim, action: str) -> list[dict]:
    """The CSMS requests of `action` the station answered (simulator events)."""
    return [data for name, data in sim.events if name == "request" and data.get("action") == action]


def listed(request: dict) -> dict[str, dict | None]:
    return {e["idToken"]["idToken"]: e.get("idTokenInfo") for e in request.get("localAuthorizationList") or []}


async def test_TC_D_01_and_TC_D_09_CSMS_full_list_to_a_station_without_one(make_edge):
    """D02 then D01.FR.01/06/18: the station answers GetLocalListVersion 0 (no list, TC_D_09); the CSMS sends
    SendLocalList updateType Full, versionNumber > 0, every entry with idTokenInfo; the station holds it."""
    async with make_edge(chargers=SITE_CHARGERS, push_local_lists=True) as edge:
        async with station(edge) as sim:
            held = await settled(edge)
            [version] = await sent(edge, "GetLocalListVersion")
            assert json.loads(version["response"]) == {"versionNumber": 0}
            [full] = await sent(edge, "SendLocalList")
            request = full["request"]
            assert request["updateType"] == "Full" and request["versionNumber"] > 0
            entries = listed(request)
            assert entries and all(info is not None for info in entries.values())
            assert entries["TAG-OK"]["status"] == "Accepted" and entries["TAG-BLOCKED"]["status"] == "Blocked"
            assert all(e["idToken"]["type"] == "ISO14443" for e in request["localAuthorizationList"])
            assert json.loads(full["response"]) == {"status": "Accepted"}
            assert (held["status"], held["version"]) == ("in-sync", request["versionNumber"])
            assert sim.local_auth.version == request["versionNumber"]
            assert sim.local_auth.entries == {"ISO14443:TAG-OK": "Accepted", "ISO14443:TAG-2": "Accepted",
                                              "ISO14443:TAG-BLOCKED": "Blocked"}


async def test_TC_D_02_and_TC_D_03_CSMS_differential_update_and_removal(make_edge):
    """D01.FR.01/06/17/18: a token added is a Differential update with versionNumber above the station's, its
    entry with idTokenInfo (TC_D_02); a token removed is a Differential entry without idTokenInfo (TC_D_03)."""
    async with make_edge(chargers=SITE_CHARGERS, push_local_lists=True) as edge:
        async with station(edge) as sim:
            first = (await settled(edge))["version"]
            await api_call(edge, "POST", "/tokens", body={"id_tag": "NEW-CARD", "user_group": "residents"})
            added = await settled(edge)
            await api_call(edge, "DELETE", "/tokens/tag-2")
            removed = await settled(edge)
            full, update, removal = await sent(edge, "SendLocalList")
            assert full["request"]["updateType"] == "Full"
            assert update["request"]["updateType"] == removal["request"]["updateType"] == "Differential"
            assert first < update["request"]["versionNumber"] == added["version"] < \
                removal["request"]["versionNumber"] == removed["version"] == sim.local_auth.version
            assert listed(update["request"]) == {"NEW-CARD": {"status": "Accepted",
                                                              "groupIdToken": {"idToken": "residents",
                                                                               "type": "Central"}}}
            assert listed(removal["request"]) == {"TAG-2": None}
            assert set(sim.local_auth.entries) == {"ISO14443:TAG-OK", "ISO14443:NEW-CARD", "ISO14443:TAG-BLOCKED"}
            assert removed["status"] == "in-sync"


async def test_TC_D_04_CSMS_full_list_with_no_entries(make_edge):
    """D01.FR.01/06/18: where no token may charge, the CSMS sends a Full update with no (or an empty)
    localAuthorizationList, and the station's list is empty at that version."""
    async with make_edge(chargers=SITE_CHARGERS, push_local_lists=True, extra=NOBODY) as edge:
        async with station(edge) as sim:
            held = await settled(edge)
            [full] = await sent(edge, "SendLocalList")
            assert full["request"]["updateType"] == "Full" and full["request"]["versionNumber"] > 0
            assert not full["request"].get("localAuthorizationList")
            assert sim.local_auth.entries == {} and sim.local_auth.version == full["request"]["versionNumber"]
            assert held["status"] == "in-sync"


async def test_TC_D_08_CSMS_version_read_at_reconnect_and_nothing_resent(make_edge):
    """D02: the CSMS asks GetLocalListVersion when the station comes back; the version it holds is the one
    sent, so nothing is sent again; a station that reports another version gets a Full list again."""
    from simulator.v201 import SimulatedStation

    async with make_edge(chargers=SITE_CHARGERS, push_local_lists=True) as edge:
        kept = None
        for run, shift in enumerate((0, 0, 5)):
            # The station connects three times, its list kept; before the third, someone else changed its version.
            sim = SimulatedStation(STATION, f"ws://127.0.0.1:{edge.ocpp.bound_port}/ocpp", evses=2)
            if kept is not None:
                sim.local_auth = kept
                sim.local_auth.version += shift
            task = asyncio.create_task(sim.run())
            try:
                await sim.wait_accepted()
                await wait_for(lambda: requests(sim, "GetLocalListVersion"), what="the version asked")
                held = await settled(edge)
                kept = sim.local_auth
                if run == 1:
                    asked = await sent(edge, "GetLocalListVersion")
                    assert [json.loads(a["response"]) for a in asked] == \
                        [{"versionNumber": 0}, {"versionNumber": held["version"]}]
                    assert len(await sent(edge, "SendLocalList")) == 1 and held["status"] == "in-sync"
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            await wait_for(lambda: not edge.control.is_connected(STATION), what="the station gone")
        updates = await sent(edge, "SendLocalList")
        assert [u["request"]["updateType"] for u in updates] == ["Full", "Full"]
        assert held["version"] == updates[-1]["request"]["versionNumber"] == kept.version
