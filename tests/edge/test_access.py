"""Free vend and opening hours, acted out on a simulated charger."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from edge.auth.config import model_from_document
from edge.auth.enforcement import availability
from edge.journal import Store
from tests.edge.conftest import simulated


FREE_VEND = '''
[[charge_groups]]
id = "public"
policy = "free-vend"
evses = [{ charger = "CP-1", connector = 2 }]
'''


async def test_free_vend_starts_anonymous_sessions(make_edge):
    async with make_edge(extra=FREE_VEND) as edge:
        async with simulated(edge) as sim:
            await sim.plug_in(2)
            await sim.wait_event("start_transaction", timeout=10)
            await sim.flush()
            assert sim.connector(2).transaction_id > 0
            await sim.plug_in(1)   # not free vend: nothing starts without a token
            await sim.stop_transaction(2, "EVDisconnected")
            assert sim.connector(1).transaction_id is None
        [row] = await edge.journal.read(Store.transactions)
        assert (row["connector_id"], row["id_tag"], row["auth_status"], row["user_group"]) == (
            2, "FREEVEND", "Accepted", None)
        records = await edge.journal.read(Store.authorizations, charger_id="CP-1")
        assert [r["method"] for r in records if r["id_tag"] == "FREEVEND"] == ["free-vend"]


def closed_now_window(tz: str) -> str:
    local = datetime.now(ZoneInfo(tz))
    start, end = local + timedelta(hours=2), local + timedelta(hours=3)
    if end.date() != start.date():  # keep the window inside one day
        start, end = local - timedelta(hours=3), local - timedelta(hours=2)
    return f"{start:%H:%M}-{end:%H:%M}"


async def test_closed_charge_group_makes_its_evses_inoperative(make_edge):
    hours = f'''
[[charge_groups]]
id = "office"
policy = "all-known"
evses = ["CP-1"]
opening_hours = {{ daily = "{closed_now_window('UTC')}" }}
outside_hours = "inoperative"
'''
    async with make_edge(extra=hours) as edge:
        async with simulated(edge) as sim:
            await sim.wait_event("request", timeout=10)
            assert [d for e, d in sim.events if e == "request"][0]["action"] == "ChangeAvailability"
            assert not sim.connectors[1].operative and not sim.connectors[2].operative
            assert await sim.authorize("TAG-OK") == "Invalid"


def test_availability_is_pure_and_an_open_group_wins():
    document = {
        "user_groups": [{"id": "staff", "charge_groups": []}],
        "charge_groups": [
            {"id": "day", "policy": "all-known", "evses": ["A", {"charger": "B", "connector": 1}],
             "opening_hours": {"daily": "08:00-18:00"}, "outside_hours": "inoperative"},
            {"id": "late", "policy": "private", "evses": ["A"],
             "opening_hours": {"daily": "08:00-18:00"}, "outside_hours": "operative-private"},
        ],
        "tokens": [],
    }
    model = model_from_document(1, document, None)
    tz = ZoneInfo("Europe/Berlin")
    night = datetime(2026, 11, 23, 22, 0, tzinfo=timezone.utc)
    day = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)
    assert availability(model, night, tz) == {("A", 0): "Operative", ("B", 1): "Inoperative"}
    assert availability(model, day, tz) == {("A", 0): "Operative", ("B", 1): "Operative"}
