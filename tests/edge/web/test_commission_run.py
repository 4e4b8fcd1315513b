"""The page's commissioning run over real HTTP: started in the background, polled as it goes, one at a time,
the rotation detection only with consent, into the actions log, and ended with the edge. A real edge, the real
simulated SDM630 and simulated chargers (test_commission_e2e's site: charger B wired STR, configured RST)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from hypothesis import given, strategies as st

from edge.journal import Store
from edge.web.api.commission import MAX_REASON, parse_request
from tests.edge.commission.test_commission_e2e import miswired_site
from tests.edge.conftest import api_call, eventually, wait_for
from tests.edge.dlm.test_closed_loop import charge
from tests.edge.web.test_logins import PASSWORD, client, login, web

json_values = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5) | \
    st.lists(st.integers(), max_size=2)


@given(body=st.fixed_dictionaries({}, optional={"detect_rotation": json_values, "consent": json_values,
                                                 "reason": json_values | st.text(min_size=190, max_size=210)}),
       consent_needed=st.booleans())
def test_a_request_is_taken_as_sent_or_refused_saying_which_field(body: dict[str, Any], consent_needed: bool):
    try:
        detect, reason = parse_request(body, consent_needed=consent_needed)
    except ValueError as exc:
        message = str(exc)
        wrong = [name for name in ("detect_rotation", "consent") if not isinstance(body.get(name, False), bool)]
        if wrong:
            assert message.startswith(f"{wrong[0]} must be true or false")
        elif not isinstance(body.get("reason", ""), str):
            assert message.startswith("reason must be a string")
        elif len(body.get("reason", "").strip()) > MAX_REASON:
            assert message.startswith("reason is") and f"at most {MAX_REASON}" in message
        else:
            assert consent_needed and body.get("detect_rotation") and not body.get("consent")
            assert '"consent": true' in message
        return
    assert detect is body.get("detect_rotation", False)
    assert reason == body.get("reason", "").strip() and len(reason) <= MAX_REASON
    # Stepping the cars is never started without consent where consent is needed.
    assert not (consent_needed and detect and body.get("consent") is not True)


async def runs(edge) -> list[dict[str, Any]]:
    return [a for a in await edge.journal.read(Store.log, "actions", "*", 50, None) if a["action"] == "Commission"]


async def stepped(edge, charger_id: str) -> list[dict[str, Any]]:
    return [a for a in await edge.journal.read(Store.log, "actions", charger_id, 50, None)
            if a["action"] == "SetChargingProfile" and a["actor"] == "edge:commission"]


async def test_a_run_in_the_background_shows_its_progress_and_is_alone(make_edge) -> None:
    async with miswired_site(make_edge) as (edge, site):
        assert (await api_call(edge, "GET", "/commission/run"))["run"] is None
        # Without consent, the rotation detection is refused and nothing is stepped.
        refused = await api_call(edge, "POST", "/commission/run", body={"detect_rotation": True}, expect=400)
        assert "consent" in refused["error"]
        assert await runs(edge) == [] and await stepped(edge, "A") == []

        await charge(site.sims["A"], "TAG-OK", car_phases=1)
        started = await api_call(edge, "POST", "/commission/run", expect=202,
                                 body={"detect_rotation": True, "consent": True, "reason": "  handover  "})
        assert started["state"] == "running" and started["reason"] == "handover"
        # One run at a time: the page's and edgectl's.
        busy = await api_call(edge, "POST", "/commission/run", body={}, expect=409)
        assert busy["run"]["id"] == started["id"]
        await api_call(edge, "POST", "/commission", body={}, expect=409)

        # Polled while it runs: the stages so far, then the report.
        seen: list[str] = []
        while True:
            run = (await api_call(edge, "GET", "/commission/run"))["run"]
            if run["state"] != "running":
                break
            if not seen or seen[-1] != run["stage"]:
                seen.append(run["stage"])
            await asyncio.sleep(0.1)
        assert any(stage.startswith("charger A/1: step to 0 A") for stage in seen), seen
        assert run["state"] == "done" and run["stage"] == "done" and run["finished_at"]
        assert [r["verdict"] for r in run["rotation"]] == ["ok"]      # only A has a car: B is not stepped
        assert run["report"]["checks"] == run["checks"] and run["report"]["ok"] is True
        assert await stepped(edge, "A") and await stepped(edge, "B") == []

        logged = await runs(edge)
        assert [(a["actor"], a["reason"], a["outcome"]) for a in logged] == [("tester", "handover", "ok")]
        assert all("commissioning (handover)" in a["reason"] for a in await stepped(edge, "A"))
        # The next one may start now.
        await api_call(edge, "POST", "/commission", body={})


async def test_a_run_ends_with_the_edge(make_edge, caplog: pytest.LogCaptureFixture) -> None:
    async with miswired_site(make_edge) as (edge, site):
        await charge(site.sims["A"], "TAG-OK", car_phases=1)
        await api_call(edge, "POST", "/commission/run", body={"detect_rotation": True, "consent": True}, expect=202)
        await wait_for(lambda: [d for name, d in site.sims["A"].events if name == "request"
                                and d["action"] == "SetChargingProfile"], timeout=20, what="the first step")
    # The edge stopped in the middle of the run: the run stopped with it, not carrying on against a closed journal.
    tasks = [t for t in asyncio.all_tasks() if t.get_name().startswith("commissioning-run-")]
    assert tasks == [], tasks
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


async def test_the_page_starts_a_run_only_with_its_csrf_token(make_edge) -> None:
    async with make_edge(extra=web()) as edge:
        base = f"http://127.0.0.1:{edge.api.bound_port}"
        async with client() as http:
            status, session = await login(http, base, PASSWORD)
            assert status == 200
            async with http.post(base + "/api/v1/commission/run", json={}) as resp:
                assert resp.status == 403 and "CSRF" in (await resp.json())["error"]
            assert (await api_call(edge, "GET", "/commission/run"))["run"] is None and await runs(edge) == []
            async with http.post(base + "/api/v1/commission/run", json={"reason": "handover"},
                                 headers={"X-CSRF-Token": session["csrf"]}) as resp:
                assert resp.status == 202
            while (await api_call(edge, "GET", "/commission/run"))["run"]["state"] == "running":
                await asyncio.sleep(0.05)
        # The actions log is written as the run ends, and read once committed: wait for it.
        logged = await eventually(lambda: runs(edge), "the run in the actions log")
        assert [(a["actor"], a["reason"]) for a in logged] == [("installer (web page)", "handover")]
