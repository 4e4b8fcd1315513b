"""OCPP 2.0.1 block A, OCA test cases (CSMS side) not covered in tests/edge/security/test_v201_security.py:
A05's security profile upgrade (TC_A_19) between the real edge and the simulated 2.0.1 station over real
WebSockets and real TLS on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from hypothesis import given, strategies as st

from edge.journal import Store
from edge.ocpp.v201 import security
from simulator.tls import client_context
from simulator.v201 import SimulatedStation
from tests.edge.conftest import PASSWORD
from tests.edge.security.conftest import make_tls_edge, pki  # noqa: F401  (fixtures: the site with TLS)

STATION = "CP-1"     # configured at security profile 1, with a password (tests/edge/security/conftest.py)


async def _actions(edge: Any, action: str) -> list[dict]:
    """The parameters of each `action` the actions log holds for the station, oldest first."""
    rows = await edge.journal.read(Store.log, "actions", STATION, 100)
    return [json.loads(r["request"]) for r in reversed(rows) if r["action"] == action]


@contextlib.asynccontextmanager
async def running(sim: SimulatedStation):
    task = asyncio.create_task(sim.run())
    try:
        await sim.wait_online()
        yield sim
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_TC_A_19_CSMS_upgrade_security_profile_1_to_2(make_tls_edge, pki):  # noqa: F811
    """A05 (TC_A_19_CSMS): a station at profile 1 (ws://, HTTP Basic) that trusts the site CA is moved to 2 by the
    operator: the edge sends SetNetworkProfile (a free configurationSlot, the edge's wss:// URL, securityProfile 2,
    JSON, OCPP20, messageTimeout, ocppInterface), SetVariables NetworkConfigurationPriority with that slot first,
    and a Reset; the station reboots, boots again over TLS with its password and the edge sees it at profile 2.
    Then a move back to 1 (a downgrade) is refused before anything is sent."""
    async with make_tls_edge() as edge:
        sim = SimulatedStation(STATION, f"ws://127.0.0.1:{edge.ocpp.bound_port}/ocpp", password=PASSWORD,
                               tls=client_context(pki.root / "ca.pem"), reconnect_delay=0.05, ramp_seconds=0.2)
        async with running(sim):
            assert edge.ocpp.seen[STATION].last_level == 1
            result = await security.upgrade_security_profile(edge.ocpp, STATION, 2, actor="operator",
                                                             reason="TC_A_19")
            assert result["outcome"] == "ok", result
            [profile] = await _actions(edge, "SetNetworkProfile")
            tls_url = f"wss://127.0.0.1:{edge.ocpp.bound_tls_port}/ocpp"
            assert profile == {"configurationSlot": 1, "connectionData": {
                "ocppVersion": "OCPP20", "ocppTransport": "JSON", "ocppCsmsUrl": tls_url, "messageTimeout": 30,
                "securityProfile": 2, "ocppInterface": "Wired0"}}
            priority = [a for a in await _actions(edge, "SetVariables")
                        if a["setVariableData"][0]["variable"]["name"] == "NetworkConfigurationPriority"]
            assert [p["setVariableData"][0]["attributeValue"] for p in priority] == ["1,0"]
            assert await _actions(edge, "Reset") == [{"type": "OnIdle"}]

            await sim.wait_event("boot", count=2)       # rebooted, with the new network profile
            await sim.wait_online()
            seen = edge.ocpp.seen[STATION]
            assert (seen.last_level, seen.level) == (2, 2) and seen.tls_version in ("TLSv1.2", "TLSv1.3")
            assert sim.url == f"{tls_url}/{STATION}" and sim.device.get("SecurityCtrlr", "SecurityProfile") == "2"

            sent = len(await edge.journal.read(Store.log, "actions", STATION, 100))
            back = await security.upgrade_security_profile(edge.ocpp, STATION, 1, actor="operator", reason="back")
            assert back["outcome"] == "invalid" and "downgrade" in back["error"]
            assert len(await edge.journal.read(Store.log, "actions", STATION, 100)) == sent     # nothing sent


async def test_TC_A_19_CSMS_a_station_without_a_CSMS_root_rejects_and_the_edge_stops(make_tls_edge):  # noqa: F811
    """A05's prerequisite (TC_A_20_CS from the CSMS side): a station with no CSMS root certificate to trust rejects
    the SetNetworkProfile for profile 2; the edge stops there: no priority change, no Reset, the station stays."""
    async with make_tls_edge() as edge:
        sim = SimulatedStation(STATION, f"ws://127.0.0.1:{edge.ocpp.bound_port}/ocpp", password=PASSWORD,
                               reconnect_delay=0.05, ramp_seconds=0.2)
        async with running(sim):
            result = await security.upgrade_security_profile(edge.ocpp, STATION, 2, actor="operator", reason="A05")
            assert result["outcome"] == "rejected" and result["error"].startswith("SetNetworkProfile: Rejected")
            assert [s["action"] for s in result["steps"]] == ["GetVariables", "SetNetworkProfile"]
            assert await _actions(edge, "Reset") == []
            assert edge.ocpp.seen[STATION].last_level == 1 and sim._event_counts["boot"] == 1


LEVELS = st.one_of(st.none(), st.integers(0, 3))


@given(target=st.integers(-1, 5), current=LEVELS, highest=LEVELS, configured=st.integers(1, 3),
       tls_port=st.one_of(st.none(), st.just(8443)), password_set=st.booleans())
def test_an_upgrade_is_sent_only_upwards_and_only_where_the_station_can_connect(target, current, highest, configured,
                                                                             tls_port, password_set):
    """Whatever the operator asks and whatever the edge knows, the upgrade goes out only to a connected station, to a
    real profile above the one it connects at, never below the highest it was seen at (A05: no downgrade) nor the
    config's, with wss:// served for 2 and 3 and a password set for 2; every refusal says why."""
    why = security.upgrade_refusal("CS", target, current=current, highest=highest, configured=configured,
                                   tls_port=tls_port, password_set=password_set)
    allowed = (target in (1, 2, 3) and current is not None and target > current and
               (highest is None or target >= highest) and target >= configured and
               (target < 2 or tls_port is not None) and (target != 2 or password_set))
    assert (why is None) == allowed
    assert why is None or why.endswith("Nothing was sent") or "does not exist" in why


@given(st.lists(st.integers(0, 9), unique=True, max_size=5))
def test_the_new_slot_is_one_the_station_does_not_use_and_comes_first(slots):
    priority = ",".join(map(str, slots)) or None
    chosen = security.free_slot(priority)
    assert chosen not in slots
    value = security.priority_request(chosen, priority)["setVariableData"][0]["attributeValue"]
    assert value.split(",") == [str(chosen), *map(str, slots)]


async def test_TC_A_19_CSMS_steps_10_to_13_the_old_profile_is_refused_once_the_config_is_raised(make_tls_edge,  # noqa
                                                                                               pki):  # noqa: F811
    """Steps 10-13 the way the edge refuses them today: the upgrade's result tells the operator to raise the
    station's security_profile; with the config raised (the edge restarted on it) the station, now at profile 2,
    gets in over wss:// with its password, and its old way in (ws:// with the same password) is refused (403)."""
    from tests.edge.conftest import PASSWORD_HASH, free_port
    from tests.edge.security.conftest import CHARGERS
    from tests.edge.security.test_v201_security import _handshake

    ports = {"ocpp_port": free_port(), "tls": f"[ocpp.tls]\nport = {free_port()}\nhttps_port = 0\n"}
    raised = CHARGERS.replace(f'id = "CP-1"\npassword_hash = "{PASSWORD_HASH}"\n',
                              f'id = "CP-1"\npassword_hash = "{PASSWORD_HASH}"\nsecurity_profile = 2\n')
    assert raised != CHARGERS
    sim = SimulatedStation(STATION, f"ws://127.0.0.1:{ports['ocpp_port']}/ocpp", password=PASSWORD,
                           tls=client_context(pki.root / "ca.pem"), reconnect_delay=0.05, ramp_seconds=0.2)
    task = asyncio.create_task(sim.run())     # the station runs on while the edge restarts
    try:
        async with make_tls_edge(**ports) as edge:
            await sim.wait_online()
            result = await security.upgrade_security_profile(edge.ocpp, STATION, 2, actor="operator", reason="A05")
            assert result["outcome"] == "ok" and "raise its security_profile to 2" in result["then"]
            await sim.wait_event("boot", count=2)
            await sim.wait_online()
            assert edge.ocpp.seen[STATION].last_level == 2
            connected = sim._event_counts["connected"]
        async with make_tls_edge(chargers=raised, **ports) as edge:
            await sim.wait_event("connected", count=connected + 1)
            await sim.wait_online()
            assert edge.ocpp.seen[STATION].last_level == 2                   # steps 12-13: the new profile gets in
            assert await _handshake(edge, STATION, STATION, PASSWORD) == 403  # steps 10-11: the old one is refused
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_TC_A_19_CSMS_steps_10_11_the_old_profile_is_refused_without_raising_the_config(make_tls_edge,  # noqa
                                                                                               pki):  # noqa: F811
    """Steps 10-11 as the OCTT plays them: after the upgrade the station is at profile 2, and a connection at its old
    profile 1 (ws:// with the same password) is refused (403) by the edge itself, with the config still at 1, in the
    same run and after a restart of the edge (the level seen is kept in the journal)."""
    from tests.edge.conftest import free_port
    from tests.edge.security.test_v201_security import _handshake

    ports = {"ocpp_port": free_port(), "tls": f"[ocpp.tls]\nport = {free_port()}\nhttps_port = 0\n"}
    sim = SimulatedStation(STATION, f"ws://127.0.0.1:{ports['ocpp_port']}/ocpp", password=PASSWORD,
                           tls=client_context(pki.root / "ca.pem"), reconnect_delay=0.05, ramp_seconds=0.2)
    task = asyncio.create_task(sim.run())
    try:
        async with make_tls_edge(**ports) as edge:
            await sim.wait_online()
            assert edge.ocpp.seen[STATION].last_level == 1
            assert (await security.upgrade_security_profile(edge.ocpp, STATION, 2, actor="operator",
                                                            reason="A05"))["outcome"] == "ok"
            await sim.wait_event("boot", count=2)
            await sim.wait_online()
            assert edge.ocpp.seen[STATION].last_level == 2
            assert await _handshake(edge, STATION, STATION, PASSWORD) == 403
        async with make_tls_edge(**ports) as edge:
            await sim.wait_online()
            assert edge.ocpp.seen[STATION].last_level == 2           # the station itself goes on at 2
            assert await _handshake(edge, STATION, STATION, PASSWORD) == 403
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def test_only_a_201_station_seen_over_tls_gets_a_floor():
    from edge.ocpp.security_state import Seen
    from edge.ocpp.server import _no_lower_than

    seen = Seen(level=2, level_at="t", last_level=2, last_at="t")
    assert _no_lower_than(seen, ["ocpp2.0.1"]) == 2
    assert _no_lower_than(seen, ["ocpp1.6", "ocpp2.0.1"]) == 0      # may be served in 1.6
    assert _no_lower_than(Seen(level=1, level_at="t", last_level=1, last_at="t"), ["ocpp2.0.1"]) == 0
    assert _no_lower_than(None, ["ocpp2.0.1"]) == 0
