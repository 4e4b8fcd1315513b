"""POST /api/v1/chargers/{id}/security-profile and `edgectl security upgrade`: an operator moves a charger to
another security profile. An OCPP 2.0.1 station gets A05 (TC_A_19: SetNetworkProfile, NetworkConfigurationPriority,
Reset) and comes back over TLS; a 1.6 charger gets ChangeConfiguration(SecurityProfile), guarded as before. The
real edge with wss:// served, the simulated stations over real WebSockets and real TLS on loopback, the real CLI."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from hypothesis import given, strategies as st

from edge.cli import main
from edge.journal import Store
from edge.web.api.chargers import MAX_REASON, security_profile_request
from simulator.tls import client_context
from simulator.v201 import SimulatedStation
from tests.edge.conftest import PASSWORD, api_call, site_toml
from tests.edge.security.conftest import CHARGERS, TLS, make_tls_edge, pki  # noqa: F401  (fixtures)
from tests.edge.security.test_profiles import sim as charge_point
from tests.edge.v201.test_oca_a import STATION, running


def _station(edge: Any, pki: Any) -> SimulatedStation:   # noqa: F811
    """CP-1 (profile 1 in the config) as a 2.0.1 station on ws:// that trusts the site CA."""
    return SimulatedStation(STATION, f"ws://127.0.0.1:{edge.ocpp.bound_port}/ocpp", password=PASSWORD,
                            tls=client_context(pki.root / "ca.pem"), reconnect_delay=0.05, ramp_seconds=0.2)


async def _action_count(edge: Any, charger_id: str) -> int:
    """The requests the API's caller (api_call's actor, "tester") had sent to the charger; the edge's own are
    not counted (it may send some of its own after the station's boot)."""
    return sum(r["actor"] == "tester" for r in await edge.journal.read(Store.log, "actions", charger_id, 100))


async def test_TC_A_19_CSMS_an_operator_upgrades_a_201_station_through_the_api(make_tls_edge, pki):  # noqa: F811
    async with make_tls_edge() as edge:
        sim = _station(edge, pki)
        async with running(sim):
            assert edge.ocpp.seen[STATION].last_level == 1
            result = await api_call(edge, "POST", f"/chargers/{STATION}/security-profile",
                                    body={"profile": 2, "reason": "TC_A_19"})
            assert (result["outcome"], result["ocpp"], result["target"]) == ("ok", "2.0.1", 2), result
            assert [s["action"] for s in result["steps"]] == ["GetVariables", "SetNetworkProfile", "SetVariables",
                                                              "Reset"]
            rows = await edge.journal.read(Store.log, "actions", STATION, 100)
            assert {(r["actor"], r["reason"]) for r in rows if r["action"] == "SetNetworkProfile"} == {
                ("tester", "TC_A_19")}
            await sim.wait_event("boot", count=2)       # rebooted into the new network profile, over wss://
            await sim.wait_online()
            assert (edge.ocpp.seen[STATION].last_level, edge.ocpp.seen[STATION].level) == (2, 2)
            assert sim.url.startswith(f"wss://127.0.0.1:{edge.ocpp.bound_tls_port}/")

            # Back to 1 is a downgrade: 409 naming why, nothing sent.
            sent = await _action_count(edge, STATION)
            refused = await api_call(edge, "POST", f"/chargers/{STATION}/security-profile", body={"profile": 1},
                                     expect=409)
            assert refused["outcome"] == "invalid" and "downgrade" in refused["error"]
            assert await _action_count(edge, STATION) == sent

        # Unknown charger, bad bodies, no token.
        await api_call(edge, "POST", "/chargers/NOPE/security-profile", body={"profile": 2}, expect=404)
        for body, field in (({}, "profile"), ({"profile": "2"}, "profile"), ({"profile": True}, "profile"),
                            ({"profile": 4}, "profile"), ({"profile": 2, "reason": 7}, "reason"),
                            ({"profile": 2, "reason": "x" * (MAX_REASON + 1)}, "reason"),
                            ({"profile": 2, "slot": 3}, "slot")):
            bad = await api_call(edge, "POST", f"/chargers/{STATION}/security-profile", body=body, expect=400)
            assert field in bad["error"], (body, bad)
        await api_call(edge, "POST", f"/chargers/{STATION}/security-profile", body=[2], expect=400)
        await api_call(edge, "POST", f"/chargers/{STATION}/security-profile", body={"profile": 2}, token="wrong",
                       expect=401)
        assert await _action_count(edge, STATION) == sent


async def test_TC_A_19_CSMS_edgectl_security_upgrade(make_tls_edge, pki, tmp_path: Path, capsys):  # noqa: F811
    async with make_tls_edge() as edge:
        config = tmp_path / "site.toml"
        config.write_text(site_toml(tmp_path, chargers=CHARGERS).replace("[api]", TLS + "[api]", 1)
                          .replace("[api]\nport = 0", f"[api]\nport = {edge.api.bound_port}"))
        cli = ["--config", str(config), "--state-dir", str(tmp_path)]
        sim = _station(edge, pki)
        async with running(sim):
            capsys.readouterr()
            assert await asyncio.to_thread(main, ["security", "upgrade", STATION, *cli]) == 1   # no --profile
            assert "--profile" in capsys.readouterr().err
            assert await asyncio.to_thread(main, ["security", "upgrade", STATION, "--profile", "2",
                                                  "--reason", "by edgectl", *cli]) == 0
            shown = json.loads(capsys.readouterr().out)
            assert shown["outcome"] == "ok" and shown["steps"][-1]["action"] == "Reset"
            await sim.wait_event("boot", count=2)
            await sim.wait_online()
            assert edge.ocpp.seen[STATION].last_level == 2
            # A downgrade: refused, said so, exit 1.
            assert await asyncio.to_thread(main, ["security", "upgrade", STATION, "--profile", "1", *cli]) == 1
            assert "downgrade" in json.loads(capsys.readouterr().out)["error"]


async def test_a_16_charger_is_upgraded_by_change_configuration_through_the_same_route(make_tls_edge,  # noqa: F811
                                                                                        pki):  # noqa: F811
    """For 1.6 the route sends ChangeConfiguration(SecurityProfile) under the same guard as TC_083: refused (409)
    while the charger was not seen at that level, sent once it connected over wss://."""
    async with make_tls_edge() as edge:
        async with charge_point(edge, "CP-1", tls=None):
            refused = await api_call(edge, "POST", "/chargers/CP-1/security-profile", body={"profile": 2},
                                     expect=409)
            assert refused["ocpp"] == "1.6" and "before it is told SecurityProfile 2" in refused["error"]
        async with charge_point(edge, "CP-1", tls=client_context(pki.root / "ca.pem")) as cp:
            done = await api_call(edge, "POST", "/chargers/CP-1/security-profile",
                                  body={"profile": 2, "reason": "to TLS"})
            assert done["outcome"] == "ok" and done["steps"][0]["action"] == "ChangeConfiguration"
            assert cp.config.value("SecurityProfile") == "2"


JSON = st.recursive(st.none() | st.booleans() | st.integers(-10, 10) | st.floats(allow_nan=False) | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                    max_leaves=6)
BODIES = st.dictionaries(st.sampled_from(["profile", "reason", "slot", "Profile"]) | st.text(max_size=6),
                         JSON | st.integers(0, 3) | st.text(max_size=MAX_REASON + 20), max_size=4)


@given(BODIES)
def test_any_body_is_a_profile_and_a_reason_or_an_error_naming_the_field(body):
    """The request body crosses the boundary: any JSON object is a profile 0..3 (never a bool) and a short reason,
    or a ValueError (400) whose message starts with the field at fault."""
    try:
        profile, reason = security_profile_request(body)
    except ValueError as exc:
        message = str(exc)
        unknown = sorted(k for k in body if k not in ("profile", "reason"))
        if unknown:
            assert message.startswith(f"unknown field {unknown[0][:40]!r}")
        else:
            assert message.split()[0] in ("profile", "reason"), message
        return
    assert set(body) <= {"profile", "reason"}
    assert type(profile) is int and 0 <= profile <= 3 and profile == body["profile"]
    assert isinstance(reason, str) and 0 < len(reason) <= MAX_REASON
