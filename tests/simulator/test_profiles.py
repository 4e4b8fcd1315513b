"""Table tests for charging profile evaluation (simulator.profiles)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.profiles import (
    ChargingProfile, Installed, Limit, Period, TxRef, active_limit, clear, composite, install, parse_profile,
    period_at,
)

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=timezone.utc)  # a Monday


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def profile(id: int = 1, *, purpose: str = "TxProfile", kind: str = "Absolute", stack: int = 0, unit: str = "A",
            periods: tuple[tuple[int, float] | tuple[int, float, int], ...] = ((0, 16.0),), start: datetime | None = T0,
            duration: int | None = None, recurrency: str | None = None, valid_from: datetime | None = None,
            valid_to: datetime | None = None, transaction_id: int | None = None) -> ChargingProfile:
    return ChargingProfile(id=id, stack_level=stack, purpose=purpose, kind=kind, unit=unit,
                           periods=tuple(Period(*p) for p in periods), duration=duration,
                           start_schedule=start if kind != "Relative" else None, recurrency=recurrency,
                           valid_from=valid_from, valid_to=valid_to, transaction_id=transaction_id)


STEPS = profile(periods=((0, 16.0), (600, 10.0), (1200, 6.0)), duration=1800)


@pytest.mark.parametrize("p, moment, tx, expected", [
    (STEPS, at(-1), None, None),  # before the schedule starts
    (STEPS, at(0), None, 16.0),
    (STEPS, at(599), None, 16.0),
    (STEPS, at(600), None, 10.0),
    (STEPS, at(1799), None, 6.0),
    (STEPS, at(1800), None, None),  # duration over
    (profile(periods=((0, 16.0), (60, 8.0))), at(10**6), None, 8.0),  # no duration: the last period lasts
    (profile(kind="Relative", periods=((0, 20.0), (300, 12.0))), at(1000), TxRef(at(900)), 20.0),
    (profile(kind="Relative", periods=((0, 20.0), (300, 12.0))), at(1200), TxRef(at(900)), 12.0),
    (profile(kind="Relative", periods=((0, 20.0), (300, 12.0))), at(1200), None, 20.0),  # no tx: as if now
    (profile(kind="Recurring", recurrency="Daily", periods=((0, 8.0), (3600, 32.0)), duration=7200),
     at(86400 + 60), None, 8.0),
    (profile(kind="Recurring", recurrency="Daily", periods=((0, 8.0), (3600, 32.0)), duration=7200),
     at(2 * 86400 + 3601), None, 32.0),
    (profile(kind="Recurring", recurrency="Daily", periods=((0, 8.0),), duration=7200), at(86400 + 7200), None, None),
    (profile(kind="Recurring", recurrency="Weekly", periods=((0, 8.0),), duration=3600), at(86400), None, None),
    (profile(kind="Recurring", recurrency="Weekly", periods=((0, 8.0),), duration=3600), at(7 * 86400 + 5), None, 8.0),
    (profile(valid_from=at(100)), at(99), None, None),
    (profile(valid_from=at(100)), at(100), None, 16.0),
    (profile(valid_to=at(100)), at(100), None, None),
])
def test_period_at(p: ChargingProfile, moment: datetime, tx: TxRef | None, expected: float | None) -> None:
    period = period_at(p, moment, tx)
    assert (period.limit if period else None) == expected


TX = TxRef(T0, transaction_id=7)
DEFAULT_8A = Installed(1, profile(purpose="TxDefaultProfile", periods=((0, 8.0),)))


@pytest.mark.parametrize("installed, connector, tx, expected", [
    ([], 1, TX, None),
    ([Installed(1, profile(stack=0, periods=((0, 16.0),))), Installed(1, profile(2, stack=1, periods=((0, 10.0),)))],
     1, TX, Limit(10.0)),  # highest stack level wins, even with a higher limit below
    ([Installed(1, profile(stack=0, periods=((0, 10.0),))),
      Installed(1, profile(2, stack=1, periods=((0, 20.0),), duration=5))], 1, TX, Limit(10.0)),  # level 1 expired
    ([DEFAULT_8A, Installed(1, profile(2, periods=((0, 20.0),)))], 1, TX, Limit(20.0)),  # TxProfile overrides
    ([DEFAULT_8A, Installed(1, profile(2, periods=((0, 20.0),)))], 1, None, Limit(8.0)),  # no transaction: default
    ([Installed(0, profile(purpose="TxDefaultProfile", periods=((0, 8.0),))),
      Installed(1, profile(2, purpose="TxDefaultProfile", periods=((0, 12.0),)))], 1, TX, Limit(12.0)),
    ([Installed(0, profile(purpose="TxDefaultProfile", periods=((0, 8.0),)))], 2, TX, Limit(8.0)),  # 0 covers all
    ([Installed(0, profile(purpose="ChargePointMaxProfile", periods=((0, 12.0),))), Installed(1, profile(2))],
     1, TX, Limit(12.0)),  # the charge point maximum caps a higher TxProfile
    ([Installed(0, profile(purpose="ChargePointMaxProfile", periods=((0, 20.0),))), Installed(1, profile(2))],
     1, TX, Limit(16.0)),
    ([Installed(0, profile(purpose="ChargePointMaxProfile", periods=((0, 20.0),)))], 0, None, Limit(20.0)),
    ([Installed(1, profile(2))], 0, TX, None),  # connector 0 only knows the charge point maximum
    ([Installed(1, profile(transaction_id=8))], 1, TX, None),  # a TxProfile for another transaction
    ([Installed(1, profile(transaction_id=7))], 1, TX, Limit(16.0)),
    ([Installed(1, profile(unit="W", periods=((0, 11040.0),)))], 1, TX, Limit(16.0)),  # 11040 W / (230 V * 3)
    ([Installed(1, profile(unit="W", periods=((0, 3680.0, 1),)))], 1, TX, Limit(16.0, phases=1)),
    ([Installed(1, profile(periods=((0, 16.0, 1),)))], 1, TX, Limit(16.0, phases=1)),
])
def test_active_limit(installed: list[Installed], connector: int, tx: TxRef | None, expected: Limit | None) -> None:
    assert active_limit(installed, connector, at(10), tx, voltage=230.0, phases=3) == expected


def test_watts_use_the_phases_the_car_draws_on() -> None:
    installed = [Installed(1, profile(unit="W", periods=((0, 3680.0),)))]
    assert active_limit(installed, 1, at(10), TX, voltage=230.0, phases=1) == Limit(16.0)


def test_the_charge_point_maximum_is_shared_between_charging_connectors() -> None:
    installed = [Installed(0, profile(purpose="ChargePointMaxProfile", periods=((0, 32.0),)))]
    assert active_limit(installed, 1, at(10), TX, voltage=230.0, phases=3, sharing=2) == Limit(16.0)


@pytest.mark.parametrize("new, kept_ids", [
    (Installed(1, profile(1, stack=5)), [2, 3, 1]),  # same id replaces
    (Installed(1, profile(9, stack=0)), [2, 3, 9]),  # same connector, purpose and stack level replaces
    (Installed(2, profile(9, stack=0)), [1, 2, 3, 9]),  # other connector: both stay
    (Installed(1, profile(9, stack=0, purpose="TxDefaultProfile")), [1, 3, 9]),  # 2 shares connector 1/default/0
])
def test_install_replaces(new: Installed, kept_ids: list[int]) -> None:
    installed = [Installed(1, profile(1, stack=0)), Installed(1, profile(2, purpose="TxDefaultProfile")),
                 Installed(0, profile(3, purpose="ChargePointMaxProfile"))]
    assert [i.profile.id for i in install(installed, new)] == kept_ids


@pytest.mark.parametrize("criteria, removed, kept_ids", [
    ({"profile_id": 2}, 1, [1, 3]),
    ({"profile_id": 99}, 0, [1, 2, 3]),
    ({}, 3, []),
    ({"connector_id": 1}, 2, [3]),
    ({"connector_id": 0}, 1, [1, 2]),
    ({"purpose": "TxProfile", "stack_level": 0}, 1, [2, 3]),
    ({"purpose": "TxProfile", "stack_level": 4}, 0, [1, 2, 3]),
])
def test_clear(criteria: dict, removed: int, kept_ids: list[int]) -> None:
    installed = [Installed(1, profile(1)), Installed(1, profile(2, purpose="TxDefaultProfile")),
                 Installed(0, profile(3, purpose="ChargePointMaxProfile"))]
    kept, count = clear(installed, **criteria)
    assert (count, [i.profile.id for i in kept]) == (removed, kept_ids)


def test_parse_profile_from_library_payload() -> None:
    data = {"charging_profile_id": 4, "stack_level": 2, "charging_profile_purpose": "TxDefaultProfile",
            "charging_profile_kind": "Recurring", "recurrency_kind": "Daily",
            "charging_schedule": {"charging_rate_unit": "W", "start_schedule": "2026-01-05T08:00:00Z",
                                  "duration": 3600, "charging_schedule_period": [
                                      {"start_period": 1800, "limit": Decimal("7.5")},
                                      {"start_period": 0, "limit": Decimal("11000.0"), "number_phases": 3}]}}
    p = parse_profile(data, received=at(99))
    assert p == ChargingProfile(id=4, stack_level=2, purpose="TxDefaultProfile", kind="Recurring", unit="W",
                                periods=(Period(0, 11000.0, 3), Period(1800, 7.5)), duration=3600,
                                start_schedule=T0, recurrency="Daily")


def test_absolute_profile_without_start_starts_when_received() -> None:
    data = {"charging_profile_id": 1, "stack_level": 0, "charging_profile_purpose": "TxProfile",
            "charging_profile_kind": "Absolute",
            "charging_schedule": {"charging_rate_unit": "A",
                                  "charging_schedule_period": [{"start_period": 0, "limit": 6}]}}
    assert parse_profile(data, received=at(99)).start_schedule == at(99)


@pytest.mark.parametrize("change", [
    {"charging_profile_purpose": "Whatever"},
    {"charging_profile_kind": "Sometimes"},
    {"charging_profile_kind": "Recurring"},  # without recurrencyKind
    {"charging_schedule": {"charging_rate_unit": "A", "charging_schedule_period": []}},
    {"charging_schedule": {"charging_rate_unit": "A", "charging_schedule_period": [{"start_period": 5, "limit": 6}]}},
    {"charging_schedule": {"charging_rate_unit": "kW", "charging_schedule_period": [{"start_period": 0, "limit": 6}]}},
    {"stack_level": None},
])
def test_parse_profile_rejects(change: dict) -> None:
    data = {"charging_profile_id": 1, "stack_level": 0, "charging_profile_purpose": "TxProfile",
            "charging_profile_kind": "Absolute",
            "charging_schedule": {"charging_rate_unit": "A",
                                  "charging_schedule_period": [{"start_period": 0, "limit": 6}]}}
    with pytest.raises(ValueError):
        parse_profile({**data, **change}, received=T0)


def test_composite_merges_the_stack() -> None:
    installed = [
        Installed(0, profile(1, purpose="ChargePointMaxProfile", periods=((0, 32.0), (900, 12.0)))),
        Installed(1, profile(2, purpose="TxDefaultProfile", periods=((0, 16.0), (300, 20.0), (1200, 6.0)))),
    ]
    periods = composite(installed, 1, at(0), 1800, None, voltage=230.0, phases=3, unit="A", ceiling_amps=32.0)
    assert periods == [Period(0, 16.0), Period(300, 20.0), Period(900, 12.0), Period(1200, 6.0)]


def test_composite_falls_back_to_the_charger_maximum_and_converts_to_watts() -> None:
    installed = [Installed(1, profile(2, purpose="TxDefaultProfile", periods=((0, 10.0),), duration=600))]
    periods = composite(installed, 1, at(0), 1200, None, voltage=230.0, phases=3, unit="W", ceiling_amps=16.0)
    assert periods == [Period(0, 6900.0), Period(600, 11040.0)]


def test_composite_of_a_daily_profile_repeats() -> None:
    installed = [Installed(1, profile(purpose="TxDefaultProfile", kind="Recurring", recurrency="Daily",
                                      periods=((0, 6.0),), duration=3600))]
    periods = composite(installed, 1, at(0), 2 * 86400, None, voltage=230.0, phases=3, unit="A", ceiling_amps=32.0)
    assert periods == [Period(0, 6.0), Period(3600, 32.0), Period(86400, 6.0), Period(90000, 32.0)]


purposes = st.sampled_from(["ChargePointMaxProfile", "TxDefaultProfile", "TxProfile"])
schedules = st.lists(st.tuples(st.integers(1, 7200), st.integers(0, 320).map(lambda tenths: tenths / 10)),
                     max_size=4)


@st.composite
def installed_profiles(draw) -> list[Installed]:
    result = []
    for profile_id in range(draw(st.integers(0, 4))):
        purpose = draw(purposes)
        connector = 0 if purpose == "ChargePointMaxProfile" else draw(st.integers(0, 1))
        if purpose == "TxProfile":
            connector = 1
        later = sorted(dict(draw(schedules)).items())
        periods = ((0, draw(st.integers(0, 320)) / 10), *later)
        result.append(Installed(connector, profile(
            profile_id, purpose=purpose, kind=draw(st.sampled_from(["Absolute", "Relative"])),
            stack=draw(st.integers(0, 3)), periods=periods,
            duration=draw(st.one_of(st.none(), st.integers(1, 7200))))))
    return result


@given(installed=installed_profiles(), tx_start=st.integers(-3600, 0), probe=st.integers(0, 7199))
def test_composite_agrees_with_active_limit(installed: list[Installed], tx_start: int, probe: int) -> None:
    """Every moment of the composite schedule says what active_limit says at that moment."""
    tx = TxRef(at(tx_start))
    periods = composite(installed, 1, at(0), 7200, tx, voltage=230.0, phases=3, unit="A", ceiling_amps=32.0)
    in_force = [p for p in periods if p.start <= probe][-1]
    limit = active_limit(installed, 1, at(probe), tx, voltage=230.0, phases=3)
    assert in_force.limit == round(min(32.0, limit.amps) if limit else 32.0, 1)
