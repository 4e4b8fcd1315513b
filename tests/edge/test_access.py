"""Free vend and opening hours, acted out on a simulated charger."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from edge.auth.config import model_from_document
from edge.auth.enforcement import availability
from edge.journal import Store
from tests.edge.conftest import wait_for
from tests.stations import CHARGERS, STATION_IDS, VERSIONS, simulated_station


FREE_VEND = '''
[[charge_groups]]
id = "public"
policy = "free-vend"
evses = [{ charger = "CP-1", connector = 2 }, { charger = "CS-201", connector = 2 }]
'''


@pytest.mark.parametrize("version", VERSIONS)
async def test_free_vend_starts_anonymous_sessions(make_edge, version):
    async with make_edge(extra=FREE_VEND, chargers=CHARGERS) as edge:
        async with simulated_station(version, edge) as station:
            await station.plug_in(2)
            await station.wait_running(2)
            await station.plug_in(1)   # not free vend: nothing starts without a token
            await station.stop(2, "EVDisconnected")
            assert not station.running(1)
        [row] = await edge.journal.read(Store.transactions)
        assert (row["connector_id"], row["id_tag"], row["auth_status"], row["user_group"]) == (
            2, "FREEVEND", "Accepted", None)
        records = await edge.journal.read(Store.authorizations, charger_id=station.id)
        assert [r["method"] for r in records if r["id_tag"] == "FREEVEND"] == ["free-vend"]


def closed_now_window(tz: str) -> str:
    local = datetime.now(ZoneInfo(tz))
    start, end = local + timedelta(hours=2), local + timedelta(hours=3)
    if end.date() != start.date():  # keep the window inside one day
        start, end = local - timedelta(hours=3), local - timedelta(hours=2)
    return f"{start:%H:%M}-{end:%H:%M}"


@pytest.mark.parametrize("version", VERSIONS)
async def test_closed_charge_group_makes_its_evses_inoperative(make_edge, version):
    hours = f'''
[[charge_groups]]
id = "office"
policy = "all-known"
evses = ["{STATION_IDS[version]}"]
opening_hours = {{ daily = "{closed_now_window('UTC')}" }}
outside_hours = "inoperative"
'''
    async with make_edge(extra=hours, chargers=CHARGERS) as edge:
        async with simulated_station(version, edge) as station:
            await station.requests_until(lambda: station.requests("ChangeAvailability"))
            await wait_for(lambda: not station.operative(1) and not station.operative(2), what="both inoperative")
            assert await station.authorize("TAG-OK") == "Invalid"


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
