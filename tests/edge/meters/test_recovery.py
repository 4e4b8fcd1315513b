"""A grid meter that stops answering and answers again, through the real edge:
the load manager leaves failsafe at the first good poll after the meter is
back (issue 15, observation 4: a back-off meant for a shared bus kept a lone
TCP meter in failsafe seconds after it answered)."""

from __future__ import annotations

import asyncio

from edge.meters.poller import GRACE_FAILURES
from tests.edge.conftest import wait_for
from tests.edge.dlm.test_closed_loop import closed_loop


async def next_failsafe(events, active: bool):
    while True:
        event = await events.get()
        if event.kind == "dlm.failsafe" and event.data["active"] is active:
            return event


async def test_failsafe_ends_at_the_first_good_poll_after_the_meter_answers_again(make_edge):
    async with closed_loop(make_edge) as (edge, site, meter):
        poller = edge.meters["grid-meter"]
        period = poller.config.period
        events = edge.bus.subscribe()
        meter.silent = True
        await asyncio.wait_for(next_failsafe(events, True), 5)
        # Silent long enough that a back-off would ask it only every 8 periods by now.
        await wait_for(lambda: poller.failures > GRACE_FAILURES + 3, timeout=10, what="a meter silent for a while")
        assert poller.pause() == period, "a meter alone on its link is asked again within a period"

        returned, last = poller.polls, poller.latest
        meter.silent = False
        await asyncio.wait_for(next_failsafe(events, False), 5)
        # Failsafe ended with the first poll whose request reached the meter after its return: the
        # one under way then (if its request was not sent yet), else the next one, started within a period.
        assert poller.polls - returned <= 1
        assert poller.latest is not last and poller.failures == 0
        assert not edge.load_manager.allocation.circuits["grid"].failsafe
