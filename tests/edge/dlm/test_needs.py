"""A session's needs (edge.dlm.needs) and what the load manager gives the planner of them:
the departure in its monotonic clock, the energy less what was delivered, gone with the session."""

from __future__ import annotations

import math
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, strategies as st

from edge.auth.config import UserGroupConfig, model_document, model_from_document
from edge.auth.model import ModelError
from edge.dlm.needs import Declared, NeedError, departure_of, energy_of, next_at, register_wh, still_wanted
from edge.journal import Sample
from tests.edge.dlm.test_manager_estimate import event, manager

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 12, 7, 15, 0, tzinfo=timezone.utc)        # 16:00 in Berlin


def energy(tx: int, value: float, unit: str = "Wh") -> list[Sample]:
    return [Sample(1, tx, "", "Energy.Active.Import.Register", None, value, unit, "Sample.Periodic", "Outlet")]


def test_a_time_of_day_is_the_next_one_at_the_site():
    assert departure_of("17:30", NOW, BERLIN) == datetime(2026, 12, 7, 17, 30, tzinfo=BERLIN)
    assert departure_of("08:00", NOW, BERLIN) == datetime(2026, 12, 8, 8, 0, tzinfo=BERLIN)
    assert departure_of("2026-12-07T18:00", NOW, BERLIN) == datetime(2026, 12, 7, 18, 0, tzinfo=BERLIN)
    # Across the change to summer time: the wall time asked for, not 24 h later.
    spring = datetime(2027, 3, 27, 23, 0, tzinfo=timezone.utc)
    assert next_at(time(7, 0), spring, BERLIN).utcoffset() == timedelta(hours=2)


@given(st.floats(allow_nan=True, allow_infinity=True) | st.integers() | st.text() | st.booleans() | st.none())
def test_energy_is_bounded_whatever_is_sent(value):
    try:
        kwh = energy_of(value)
    except NeedError as exc:
        assert exc.field == "energy_kwh" and repr(value) in str(exc)
    else:
        assert 0 < kwh <= 200 and math.isfinite(kwh)


def test_the_register_and_what_is_still_wanted():
    assert register_wh(energy(1, 12.5, "kWh")) == 12_500
    assert register_wh(energy(1, 9.0, "varh")) is None
    assert still_wanted(20_000, 1_000, 6_000) == 15_000
    assert still_wanted(20_000, 1_000, None) == 20_000          # nothing metered yet
    assert still_wanted(20_000, 1_000, 40_000) == 0
    assert still_wanted(None, 0, 5) == math.inf


def test_the_manager_plans_the_need_less_what_was_delivered_and_drops_it_at_the_stop():
    lm, clock = manager()
    assert not lm.set_needs(7, None, 1.0)                        # no such session
    event(lm, "transaction.started", "A", connector_id=1, transaction_id=7, id_tag="T", meter_start=1_000)
    assert lm.set_needs(7, clock.now() + timedelta(hours=2), 20_000)
    clock.advance(10)
    event(lm, "meter.values", "A", connector_id=1, transaction_id=7, samples=energy(7, 6_000))
    now = clock.monotonic()
    need = lm._needs_now(now)[("A", 1)]
    assert need.energy_wh == 15_000 and need.departure == pytest.approx(now + 2 * 3600 - 10)
    event(lm, "meter.values", "A", connector_id=1, transaction_id=7, samples=energy(7, 21.5, "kWh"))
    assert lm._needs_now(now) == {}                              # met: planned as a car that said nothing
    event(lm, "transaction.stopped", "A", connector_id=1, transaction_id=7)
    assert lm.needs == {}


def test_a_group_default_is_taken_at_the_start_and_the_api_replaces_it():
    default = Declared(datetime(2026, 12, 7, 17, 30, tzinfo=BERLIN), 30_000, "user group commuters")
    lm, clock = manager()
    lm._needs_of = lambda tag: default if tag == "COMMUTER" else None
    event(lm, "transaction.started", "A", connector_id=1, transaction_id=1, id_tag="COMMUTER")
    event(lm, "transaction.started", "B", connector_id=1, transaction_id=2, id_tag="OTHER")
    assert lm.needs == {1: default}
    lm.set_needs(1, default.departure, 5_000)
    assert lm.needs[1].source == "api" and lm.needs[1].energy_wh == 5_000


@pytest.mark.parametrize("group, problem", [
    ({"departure": "25:00"}, "is not a time of day"),
    ({"energy_kwh": 0}, "greater than 0"),
    ({"energy_kwh": 201}, "less than or equal to 200"),
])
def test_user_group_defaults_are_checked(group, problem):
    with pytest.raises(ModelError, match=problem):
        model_from_document(1, {"user_groups": [{"id": "g", **group}]}, None)


def test_a_group_document_without_the_keys_is_unchanged_and_with_them_builds():
    model = model_from_document(1, {"user_groups": [{"id": "g", "departure": "7:05", "energy_kwh": 12}]}, None)
    assert model.user_groups["g"].departure == time(7, 5) and model.user_groups["g"].energy_kwh == 12
    document = model_document([UserGroupConfig(id="g")], [], [], "all-known")
    assert document["user_groups"] == [{"id": "g", "name": "", "prioritised": False, "tariff": "",
                                        "charge_groups": [], "allow_concurrent": False, "archived": False}]
