"""Birth, last will and the clean goodbye on the retained state topic."""

from __future__ import annotations

import asyncio
import uuid

from tests.edge.uplink.conftest import SITE, Cloud, eventually
from tests.edge.uplink.helpers import Proxy, make_cdrs


def latest_state(cloud: Cloud) -> dict | None:
    states = cloud.states()
    return states[-1][0] if states else None


async def retained_state(broker) -> dict:
    """What a subscriber arriving now gets: the retained state."""
    late = Cloud(broker, client_id=f"late-{uuid.uuid4().hex[:8]}", filters=(f"sc/v1/sites/{SITE}/state",),
                 persistent=False).start()
    try:
        await eventually(lambda: late.states(), what="the retained state")
        payload, retained = late.states()[0]
        assert retained
        return payload
    finally:
        late.stop()


async def test_birth_is_retained_with_the_backlog_and_the_goodbye_is_clean(make_uplinked_edge, cloud, live_broker):
    live_broker.stop()
    async with make_uplinked_edge() as edge:
        await make_cdrs(edge, 7)
        live_broker.start()
        await eventually(lambda: (s := latest_state(cloud)) and s["online"], what="the birth")
        birth = latest_state(cloud)
        assert birth["site"] == SITE and birth["backlog"]["cdr"] == 7 and birth["software_version"]
        assert (await retained_state(live_broker))["online"] is True
        await eventually(lambda: len(cloud.up_messages("cdr")) >= 7, what="the backlog")
    # Stopped: its own retained offline state, and not the last will on top of it.
    await eventually(lambda: latest_state(cloud)["online"] is False, what="the offline state")
    await asyncio.sleep(0.5)
    assert [s["online"] for s, _ in cloud.states()][-2:] == [True, False]
    assert (await retained_state(live_broker))["online"] is False


async def test_a_lost_link_brings_the_last_will(make_uplinked_edge, cloud, live_broker):
    proxy = await Proxy(live_broker.port).start()
    try:
        async with make_uplinked_edge(port=proxy.port) as edge:
            await eventually(lambda: edge.uplink.connection is not None, what="connected")
            await eventually(lambda: (s := latest_state(cloud)) and s["online"], what="the birth")
            proxy.refusing = True       # the link stays down until the will is checked
            proxy.cut()     # no DISCONNECT: the broker sees the site vanish
            await eventually(lambda: latest_state(cloud)["online"] is False, what="the last will")
            will = latest_state(cloud)
            assert will["site"] == SITE and will["backlog"] == {}
            assert (await retained_state(live_broker))["online"] is False
            proxy.refusing = False
            # ... and it comes back by itself.
            await eventually(lambda: latest_state(cloud)["online"] is True, what="a new birth")
            # The cloud may see the birth before its PUBACK reaches the edge, which counts the connection then.
            await eventually(lambda: edge.uplink.connections >= 2, what="the second connection counted")
    finally:
        await proxy.stop()


async def test_birth_and_will_carry_the_connection_counter_which_rises_and_survives_a_restart(
        make_uplinked_edge, cloud, live_broker):
    """The cloud orders a will against a later birth by this counter (issue 18): the will of a
    connection carries that connection's number, the next connection a higher one, also after a
    restart of the edge (the counter is in the journal)."""
    proxy = await Proxy(live_broker.port).start()
    try:
        async with make_uplinked_edge(port=proxy.port) as edge:
            await eventually(lambda: (s := latest_state(cloud)) and s["online"], what="the birth")
            first = latest_state(cloud)["connection"]
            assert first >= 1 and first == edge.uplink.connection_number
            proxy.refusing = True
            proxy.cut()
            await eventually(lambda: latest_state(cloud)["online"] is False, what="the last will")
            assert latest_state(cloud)["connection"] == first         # the will of that connection
            proxy.refusing = False
            await eventually(lambda: latest_state(cloud)["online"] is True, what="a new birth")
            second = latest_state(cloud)["connection"]
            assert second > first
        await eventually(lambda: latest_state(cloud)["online"] is False, what="the goodbye")
        assert latest_state(cloud)["connection"] == second
        async with make_uplinked_edge(port=proxy.port):
            await eventually(lambda: latest_state(cloud)["online"] is True, what="the birth after a restart")
            assert latest_state(cloud)["connection"] > second
    finally:
        await proxy.stop()
