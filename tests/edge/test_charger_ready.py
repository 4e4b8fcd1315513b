"""Talk when the charger listens: the edge configures a charger (auth keys,
local list, default charging profile) only once it is ready (its
BootNotification accepted, or, for a known charger that does not boot again
after an edge restart, its first frame), retries what failed, and never
leaves a command hanging on a closed socket. Against a charger that refuses
or ignores every request until its boot is accepted, as real firmware does."""

from __future__ import annotations

import asyncio

import pytest
from ocpp.v16 import call

from edge.journal import Store
from tests.edge.boot_first import boot_first
from tests.edge.conftest import api_call, wait_for
from tests.edge.dlm.test_load_management import LM, chargers

SITE = dict(push_local_lists=True, extra=LM, chargers=chargers("A", "B"))
TOKENS = {"TAG-OK": "Accepted", "TAG-2": "Accepted", "TAG-BLOCKED": "Blocked"}
# A real charger takes a moment between opening its socket and booting: the old
# edge used it to send requests the charger refused or never answered.
BOOT_DELAY = 0.3


async def next_event(events, kind: str, charger_id: str):
    while True:
        event = await asyncio.wait_for(events.get(), 10)
        if event.kind == kind and event.charger_id == charger_id:
            return event


def in_sync(edge, charger_id: str) -> bool:
    return (edge.local_lists.held.get(charger_id) or {}).get("status") == "in-sync"


async def actions(edge, charger_id: str) -> list[dict]:
    return list(reversed(await edge.journal.read(Store.log, "actions", charger_id, 200)))


@pytest.mark.parametrize("before_boot", ["refuse", "silent"])
async def test_nothing_goes_out_before_the_boot_then_list_and_profile_do(make_edge, before_boot):
    async with make_edge(**SITE) as edge:
        events = edge.bus.subscribe()
        async with boot_first(edge, "A", before_boot=before_boot) as cp:
            await next_event(events, "charger.connected", "A")
            await asyncio.sleep(BOOT_DELAY)
            assert cp.received == [], "requests sent to a charger that has not booted"
            started = asyncio.get_running_loop().time()
            assert await cp.boot() == "Accepted"
            await next_event(events, "charger.ready", "A")
            await cp.wait_for_call("SetChargingProfile")
            await wait_for(lambda: in_sync(edge, "A"), what="the local list in sync")
            took = asyncio.get_running_loop().time() - started
        assert all(after_boot for _, _, after_boot in cp.received)
        assert cp.config["LocalAuthListEnabled"] == "true" and cp.config["LocalAuthorizeOffline"] == "true"
        assert cp.local_list == TOKENS
        assert cp.profiles[0]["charging_profile_purpose"] == "TxDefaultProfile"
        assert {a["outcome"] for a in await actions(edge, "A")} == {"ok"}
        assert took < 2.0, f"configuring took {took:.1f} s: something waited for a response timeout"


async def test_a_known_charger_that_does_not_boot_again_is_ready_at_its_first_frame(make_edge):
    """After an edge restart the charger keeps its session: no BootNotification,
    it just goes on (here: a StatusNotification after a while)."""
    async with make_edge(**SITE) as edge:
        events = edge.bus.subscribe()
        async with boot_first(edge, "A", booted=True) as cp:
            await next_event(events, "charger.connected", "A")
            await asyncio.sleep(BOOT_DELAY)
            assert cp.received == [], "requests sent before the charger said anything"
            await cp.send_call(call.StatusNotification(connector_id=1, error_code="NoError", status="Available"))
            ready = await next_event(events, "charger.ready", "A")
            await cp.wait_for_call("SetChargingProfile")
            await wait_for(lambda: in_sync(edge, "A"), what="the local list in sync")
        assert ready.charger_id == "A" and cp.local_list == TOKENS


async def test_a_failed_setting_is_retried(make_edge):
    """LocalAuthListEnabled answered with an error once: the edge asks again, with back-off."""
    async with make_edge(**SITE) as edge:
        edge.local_lists.retry_delays = (0.2, 0.4)
        async with boot_first(edge, "A") as cp:
            cp.fail_once.add(("ChangeConfiguration", "LocalAuthListEnabled"))
            assert await cp.boot() == "Accepted"
            await wait_for(lambda: cp.config["LocalAuthListEnabled"] == "true" and in_sync(edge, "A"),
                           what="LocalAuthListEnabled set on the second try")
        tries = [a["outcome"] for a in await actions(edge, "A")
                 if a["action"] == "ChangeConfiguration" and "LocalAuthListEnabled" in a["request"]]
        assert tries == ["error", "ok"]


async def test_pending_commands_end_not_connected_when_the_socket_closes(make_edge):
    async with make_edge(**SITE) as edge:
        edge.local_lists.enabled = False
        async with boot_first(edge, "B") as cp:
            assert await cp.boot() == "Accepted"
            await cp.wait_for_call("SetChargingProfile")
            await wait_for(lambda: edge.load_manager.chargers["B"].default_sent is not None, what="B steered")
            cp.hold.add("UnlockConnector")   # it never answers this one
            unlock = asyncio.create_task(api_call(
                edge, "POST", "/chargers/B/commands/UnlockConnector",
                body={"params": {"connectorId": 1}, "reason": "cable stuck"}, expect=None))
            await cp.wait_for_call("UnlockConnector")
            reset = asyncio.create_task(api_call(
                edge, "POST", "/chargers/B/commands/Reset",
                body={"params": {"type": "Soft"}, "reason": "then reboot"}, expect=None))
            session = edge.ocpp.sessions["B"]
            await wait_for(lambda: session.pending == 2, what="Reset queued behind UnlockConnector")
            closed_at = asyncio.get_running_loop().time()
            await cp.hang_up()
            answers = await asyncio.wait_for(asyncio.gather(unlock, reset), 5)
            took = asyncio.get_running_loop().time() - closed_at
        assert [a["outcome"] for a in answers] == ["not-connected", "not-connected"]
        assert took < 1.0, f"pending commands took {took:.2f} s to give up"
        logged = {a["action"]: a["outcome"] for a in await actions(edge, "B")}
        assert logged["UnlockConnector"] == logged["Reset"] == "not-connected"


async def test_a_composite_schedule_comes_back_as_numbers(make_edge):
    async with make_edge(**SITE) as edge:
        edge.local_lists.enabled = False
        async with boot_first(edge, "A") as cp:
            cp.composite = {"charging_rate_unit": "A", "charging_schedule_period": [
                {"start_period": 0, "limit": 16.5}, {"start_period": 600, "limit": 20}]}
            assert await cp.boot() == "Accepted"
            answer = await api_call(edge, "POST", "/chargers/A/commands/GetCompositeSchedule",
                                    body={"params": {"connectorId": 1, "duration": 3600}, "reason": "check"})
        periods = answer["response"]["chargingSchedule"]["chargingSchedulePeriod"]
        assert [(p["startPeriod"], p["limit"]) for p in periods] == [(0, 16.5), (600, 20)]
        assert isinstance(periods[1]["limit"], int)
