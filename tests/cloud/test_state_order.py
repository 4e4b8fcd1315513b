"""A site's state (birth, goodbye, last will) whatever order several cloud instances handle it in
(issue 18, observation 5): the connection counter the edge puts in each birth and will decides, not
the order of arrival. Every storage test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import json

from cloud.store.ingest import store_state
from contract.v1 import SiteState, encode, state_topic, up_topic
from tests.cloud.fakes import batch, message
from tests.cloud.test_ingest import until

RECEIVED = "2026-12-06T12:00:09.000Z"


def state(connection: int | None, online: bool, at: str) -> SiteState:
    return SiteState(site="site-a", online=online, at=at, connection=connection,
                     backlog={"cdr": connection or 0} if online else {})


# Two connections as the site made them: birth of 1, its refresh, the will of 1 (its `at` is the
# connect time of 1, earlier than the births), birth of 2 and its refresh. The last word is birth 2's
# refresh, whatever order the broker's shared subscription and two instances put them in.
HISTORY = [state(1, True, "2026-12-06T12:00:00.100Z"), state(1, True, "2026-12-06T12:00:30.000Z"),
           state(1, False, "2026-12-06T12:00:00.000Z"),
           state(2, True, "2026-12-06T12:01:00.100Z"), state(2, True, "2026-12-06T12:01:30.000Z")]


async def stored(db, site: str) -> dict:
    return await db.read(lambda conn: conn.one(
        "SELECT online, state_connection, state_at, backlog FROM sites WHERE site = ?", (site,)))


async def test_every_arrival_order_ends_at_the_latest_state(db):
    orders = list(itertools.permutations(range(len(HISTORY))))
    for n, order in enumerate(orders):
        site = f"site-{n}"

        def apply(conn, order=order, site=site) -> None:
            for i in order:
                store_state(conn, HISTORY[i].model_copy(update={"site": site}), RECEIVED, fresh=True)
        await db.write(apply)
    rows = await db.read(lambda conn: conn.all("SELECT online, state_connection, state_at FROM sites"))
    assert len(rows) == len(orders) == 120
    assert {(r["online"], r["state_connection"], r["state_at"]) for r in rows} == {
        (1, 2, "2026-12-06T12:01:30.000Z")}


async def test_the_will_of_a_connection_ends_it_even_after_its_latest_birth(db):
    """Within one connection the offline state is the last word: a birth refresh handled after the
    will (by another instance) does not bring the site back online."""
    will, refresh = state(3, False, "2026-12-06T12:00:00.000Z"), state(3, True, "2026-12-06T12:05:00.000Z")
    await db.write(lambda conn: [store_state(conn, s, RECEIVED, fresh=True) for s in (will, refresh)])
    assert (await stored(db, "site-a"))["online"] == 0


async def test_a_birth_of_the_next_connection_beats_the_late_will_of_the_one_before(db):
    birth, late_will = state(8, True, "2026-12-06T12:01:00.000Z"), state(7, False, "2026-12-06T12:00:00.000Z")
    await db.write(lambda conn: [store_state(conn, s, RECEIVED, fresh=True) for s in (birth, late_will)])
    row = await stored(db, "site-a")
    assert row["online"] == 1 and row["state_connection"] == 8 and json.loads(row["backlog"]) == {"cdr": 8}


async def test_an_edge_without_the_counter_is_taken_in_arrival_order(db):
    """An edge from before the counter (contract 1 without `connection`): as before, the last handled
    wins, also over a counter stored from a newer release it was downgraded from."""
    await db.write(lambda conn: store_state(conn, state(5, True, "2026-12-06T12:00:00.000Z"), RECEIVED, fresh=True))
    await db.write(lambda conn: store_state(conn, state(None, False, "2026-12-06T11:00:00.000Z"), RECEIVED,
                                            fresh=True))
    row = await stored(db, "site-a")
    assert row["online"] == 0 and row["state_connection"] is None
    await db.write(lambda conn: store_state(conn, state(None, True, "2026-12-06T10:00:00.000Z"), RECEIVED,
                                            fresh=True))
    assert (await stored(db, "site-a"))["online"] == 1


# --- through the broker, with two instances sharing the state topic ---------------------------------------

async def publish_state(site, state_: SiteState) -> None:
    await site.publish(state_topic(state_.site), encode(state_), retain=True)


def states_handled(*clouds) -> int:
    return sum(c.ingest.counts["states"] for c in clouds)


async def test_two_instances_share_the_state_topic_and_a_late_will_changes_nothing(make_cloud, make_site):
    """The race of observation 5: the birth of connection n + 1 reaches the cloud before the will of
    connection n (the old link's death is seen late), and two instances split the state topic."""
    async with make_cloud("cloud-1") as one, make_cloud("cloud-2") as two:
        # Two links of one site at once (the broker has not noticed the old one died): the old one's
        # will carries connection 1.
        # (The will is given at CONNECT: set before the first one, not by reconnecting from the test's thread
        # while paho's loop runs, which once lost the next publish's PUBACK.)
        old = make_site("site-a", client_id="site-a-old", will=encode(state(1, False, "2026-12-06T12:00:00.000Z")))
        await publish_state(old, state(1, True, "2026-12-06T12:00:00.100Z"))
        new = make_site("site-a", client_id="site-a-new", will=False)
        await publish_state(new, state(2, True, "2026-12-06T12:01:00.000Z"))
        await until(lambda: states_handled(one, two) >= 2, one.ingest, two.ingest)
        old.vanish()                    # the broker sends the will of connection 1 now
        await until(lambda: states_handled(one, two) >= 3, one.ingest, two.ingest)
        row = await stored(one.db, "site-a")
        assert row["online"] == 1 and row["state_connection"] == 2
        assert one.ingest.counts["states"] + two.ingest.counts["states"] == 3     # each state handled once


async def test_one_instance_reads_the_retained_states_not_each(make_cloud, make_site):
    """States published while no instance was subscribed are read from the retained ones by the first
    instance to connect; the others (and a reconnection within a minute) do not read them again."""
    sites = [make_site(f"site-{n}", will=False) for n in range(5)]
    for n, site in enumerate(sites):
        await publish_state(site, state(n + 1, True, "2026-12-06T12:00:00.000Z").model_copy(
            update={"site": site.site}))
    async with make_cloud("cloud-1") as one:
        await until(lambda: states_handled(one) >= 5, one.ingest)
        async with make_cloud("cloud-2") as two:
            await sites[0].publish(up_topic("site-0", "alert"), batch("site-0", "alert", [message(1)]))
            await until(lambda: one.ingest.counts["stored"] + two.ingest.counts["stored"] == 1, one.ingest,
                        two.ingest)
            assert states_handled(one, two) == 5 and two.service.link.links["main"].sweeps == 0
        rows = await one.db.read(lambda conn: conn.all("SELECT site, online, state_connection FROM sites "
                                                       "ORDER BY site"))
        assert [(r["site"], r["online"], r["state_connection"]) for r in rows] == [
            (f"site-{n}", 1, n + 1) for n in range(5)]
