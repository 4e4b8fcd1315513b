"""A session's needs (edge.dlm.needs) and what the load manager gives the planner of them:
the departure in its monotonic clock, the energy less what was delivered, gone with the session."""

from __future__ import annotations

import asyncio
import contextlib
import math
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, strategies as st

from edge.auth.config import UserGroupConfig, model_document, model_from_document
from edge.auth.model import ModelError
from edge.clock import ManualClock, iso
from edge.dlm.history import TokenHistory, most_drawn
from edge.dlm.needs import (LEARN_FROM, MAX_AHEAD, MAX_ENERGY_KWH, Declared, NeedError, PastSession, departure_of,
                            energy_of, from_car, learned, next_at, register_wh, still_wanted)
from edge.events import Event, EventBus
from edge.journal import Journal, Sample
from edge.journal.store import Store
from tests.edge.conftest import wait_for
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


# --- learned from the token's history, in a real journal ------------------------------------------

def berlin(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=BERLIN)


async def charged(journal: Journal, tag: str, begin: datetime, end: datetime, wh: int) -> None:
    """A session as the charger reports it: started, then stopped `wh` later on the register."""
    started = await journal.write(Store.start_transaction, "CP1", 1, tag, "Accepted", 0, iso(begin), None,
                                  iso(begin))
    await journal.write(Store.stop_transaction, "CP1", started.transaction_id, wh, iso(end), "EVDisconnected", tag,
                        iso(end))


@contextlib.asynccontextmanager
async def journal_with(tmp_path, sessions):
    """A real journal with these completed sessions: (tag, start, stop, Wh)."""
    async with Journal(str(tmp_path / "journal.db")) as journal:
        commits = asyncio.create_task(journal.run())
        try:
            for session in sessions:
                await charged(journal, *session)
            yield journal
        finally:
            commits.cancel()


COMMUTER = [("COMMUTER", berlin(1, 8), berlin(1, 17, 10), 10_000),     # Tuesday to Thursday
            ("COMMUTER", berlin(2, 8), berlin(2, 17, 50), 30_000),
            ("COMMUTER", berlin(3, 8, 30), berlin(3, 17, 30), 14_000),
            ("COMMUTER", berlin(5, 10), berlin(5, 12), 50_000),          # a Saturday: another kind of day
            ("OTHER", berlin(4, 7), berlin(4, 9), 5_000)]


async def test_a_need_is_learned_from_the_tokens_last_sessions_on_the_same_kind_of_day(tmp_path):
    async with journal_with(tmp_path, COMMUTER) as journal:
        monday = ManualClock(berlin(7, 8, 15).astimezone(timezone.utc))
        history = TokenHistory(journal, EventBus(), monday, BERLIN)
        await history.load()
        need = history.needs_of("COMMUTER")
        # The medians of the three weekday sessions; the Saturday's 50 kWh at noon left out.
        assert need == Declared(berlin(7, 17, 30), 14_000, "learned from the token's last 3 weekday sessions")
        assert history.needs_of("OTHER") is None                       # one session: nothing to learn from
        assert history.needs_of("NEWCOMER") is None
        # A user group's departure wins; what it leaves out is filled from the history.
        group = Declared(berlin(7, 18), None, "user group staff")
        assert history.needs_of("COMMUTER", group) == Declared(
            berlin(7, 18), 14_000, "user group staff; energy learned from the token's last 3 weekday sessions")
        whole = Declared(berlin(7, 16), 8_000, "user group staff")
        assert history.needs_of("COMMUTER", whole) == whole
        # Later than it ever came: its usual 17:30 is tomorrow, longer than it ever stayed; its
        # median stay (9 h 10) from now instead.
        monday._wall = berlin(7, 19).astimezone(timezone.utc)
        assert history.needs_of("COMMUTER").departure == berlin(8, 4, 10)
        # On a Saturday only the Saturday counts: too few.
        monday._wall = berlin(12, 9).astimezone(timezone.utc)
        assert history.needs_of("COMMUTER") is None


async def test_the_history_is_read_again_when_a_session_stops(tmp_path):
    async with journal_with(tmp_path, COMMUTER[:2]) as journal:
        bus = EventBus()
        history = TokenHistory(journal, bus, ManualClock(berlin(7, 8).astimezone(timezone.utc)), BERLIN)
        await history.load()
        assert history.needs_of("COMMUTER") is None                       # two sessions: too few
        await charged(journal, *COMMUTER[2])
        assert history.needs_of("COMMUTER") is None                       # not read yet
        reader = asyncio.create_task(history.run())
        try:
            def stopped_and_read() -> bool:
                # The stop's event, until run() has subscribed and read the journal again.
                bus.publish(Event("transaction.stopped", "CP1", iso(berlin(3, 17, 30)), {"transaction_id": 3}))
                return history.needs_of("COMMUTER") is not None
            await wait_for(stopped_and_read, what="the history read again")
            assert history.needs_of("COMMUTER").energy_wh == 14_000
        finally:
            reader.cancel()


async def test_the_most_a_tokens_car_drew_is_learned_from_its_last_sessions_samples(tmp_path):
    """The planner counts on a car that drew near its EVSE's maximum at that maximum (plan_cars' drew);
    the token's last sessions tell it before the car shows it again. Samples from a token's session
    other than Current.Import, or of another token, do not count."""
    async with journal_with(tmp_path, COMMUTER) as journal:
        def drew(transaction_id: int, phase: str | None, amps: float, measurand: str = "Current.Import") -> Sample:
            return Sample(1, transaction_id, iso(berlin(1, 9)), measurand, phase, amps, "A", "Sample.Periodic",
                          "Outlet")
        await journal.write(Store.record_samples, "CP1", [drew(1, "L1", 12.0), drew(1, "L2", 12.1)], iso(berlin(1, 9)))
        await journal.write(Store.record_samples, "CP1", [drew(2, "L1", 31.4), drew(2, None, 40.0, "Current.Offered")],
                            iso(berlin(2, 9)))
        await journal.write(Store.record_samples, "CP1", [drew(5, None, 15.9)], iso(berlin(4, 8)))
        history = TokenHistory(journal, EventBus(), ManualClock(berlin(7, 8).astimezone(timezone.utc)), BERLIN)
        await history.load()
        assert history.drew_of("COMMUTER") == 31.4
        assert history.drew_of("OTHER") == 15.9
        assert (history.drew_of("NEWCOMER"), history.drew_of("")) == (0.0, 0.0)


def test_only_a_tokens_last_sessions_say_what_its_car_draws():
    # Newest first: the token's last LEARN_FROM sessions with a current; an older car's 32 A is forgotten.
    rows = [{"id_tag": "T", "drew": 16.0}] * LEARN_FROM + [{"id_tag": "T", "drew": 32.0}, {"id_tag": "U", "drew": None}]
    assert most_drawn(rows) == {"T": 16.0}


@st.composite
def histories(draw):
    base = datetime(2026, 11, 2, tzinfo=timezone.utc)
    out = []
    for _ in range(draw(st.integers(0, 25))):
        begin = base + timedelta(minutes=draw(st.integers(0, 60 * 24 * 40)))
        out.append(PastSession(begin, begin + timedelta(minutes=draw(st.integers(-60, 60 * 30))),
                               draw(st.floats(0, 1e7))))
    return out


@given(histories(), st.integers(0, 60 * 24 * 14))
def test_a_learned_need_is_always_a_plan_the_edge_accepts(history, minutes):
    now = datetime(2026, 12, 7, tzinfo=timezone.utc) + timedelta(minutes=minutes)
    need = learned(history, now, BERLIN)
    if need is None:
        return
    assert now < need.departure <= now + MAX_AHEAD
    assert need.energy_wh is None or 0 < need.energy_wh <= MAX_ENERGY_KWH * 1000
    assert need.source.startswith("learned from the token's last")


# --- the car's own maximum, for the planner ------------------------------------------------------

def test_an_ac_cars_ev_max_current_is_its_maximum_per_phase_for_the_planner():
    now = datetime(2026, 12, 7, 8, 0, tzinfo=timezone.utc)
    read = from_car({"requested_energy_transfer": "AC_three_phase", "ac_charging_parameters": {
        "energy_amount": 20_000, "ev_min_current": 6, "ev_max_current": 16, "ev_max_voltage": 400}}, now)
    assert read.max_per_phase() == 16.0
    said_nothing = from_car({"requested_energy_transfer": "AC_three_phase",
                             "ac_charging_parameters": {"energy_amount": 20_000}}, now)
    assert said_nothing.max_per_phase() is None


def test_a_dc_cars_most_power_is_spread_over_the_three_ac_phases():
    now = datetime(2026, 12, 7, 8, 0, tzinfo=timezone.utc)
    # 50 kW at most: 72.5 A per phase at 230 V; without evMaxPower, evMaxCurrent x evMaxVoltage.
    read = from_car({"requested_energy_transfer": "DC", "dc_charging_parameters": {
        "ev_max_current": 125, "ev_max_voltage": 400, "ev_max_power": 50_000, "energy_amount": 30_000}}, now)
    assert read.max_per_phase() == pytest.approx(50_000 / 690)
    read = from_car({"requested_energy_transfer": "DC", "dc_charging_parameters": {
        "ev_max_current": 50, "ev_max_voltage": 400, "energy_amount": 30_000}}, now)
    assert read.max_per_phase() == pytest.approx(20_000 / 690)
