"""Golden values for every tariff type, time-of-day splits (DST days in
Europe/Berlin included), tariff-group ordering and the blocking fee."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest

from edge.cdr.energy import Reading, energy_curve
from edge.cdr.pricing import day_night_parts, price, split_energy
from edge.cdr.tariffs import FREE, PowerLevel, Rates, Restrictions, Tariff, TariffGroup, select_tariff

BERLIN = ZoneInfo("Europe/Berlin")
UTC = timezone.utc
T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


def session(kw: float, hours: float, start: datetime = T0, meter_start: int = 1000):
    """A constant-power session: only meterStart and meterStop, as many chargers send."""
    stop = start + timedelta(hours=hours)
    return energy_curve(start, meter_start, stop, meter_start + round(kw * hours * 1000), [], 22_000 * 50)


def total(tariff: Tariff, curve, average_kw: float | None = None, tz=BERLIN, vat=D(19)):
    if average_kw is None:
        hours = (curve.stop - curve.start).total_seconds() / 3600
        average_kw = float(curve.energy_wh) / 1000 / hours if hours else 0
    return price(tariff, curve, D(repr(average_kw)), tz, "EUR", vat)


def test_free_costs_nothing():
    assert total(FREE, session(11, 2)).gross == D("0.00")


def test_flat_rate_and_the_vat_split():
    p = total(Tariff("flat", "flat", per_session=D("5.00")), session(11, 3))
    assert (p.gross, p.net, p.vat) == (D("5.00"), D("4.20"), D("0.80"))


def test_duration_and_energy_with_a_connection_fee():
    tariff = Tariff("de", "duration-energy", connection_fee=D("1.00"), rates=Rates(D("0.39"), D("0.02")))
    p = total(tariff, session(kw=6.6667, hours=1.5))      # 10.000 kWh in 90 min
    assert [(c.kind, c.quantity) for c in p.components] == [
        ("connection-fee", D(1)), ("energy", D("10.000000")), ("time", D("90.0000"))]
    assert p.gross == D("6.70")                             # 1.00 + 3.90 + 1.80


@pytest.mark.parametrize("kw, expected", [
    (22, "9.00"),      # seed 004: a 22 kW car for 1 h at 0.15/min
    (7.4, "6.00"),     # seed 004: a 7.4 kW car pays the first level
    (11, "7.20"),      # a level's max is inclusive
    (11.001, "9.00"),
    (3, "6.00"),
    (50, "9.00"),      # above every level: the highest level's price
])
def test_power_levels_seed_004_example(kw, expected):
    tariff = Tariff("pl", "power-levels", power_levels=(
        PowerLevel(D("7.4"), D("0.10")), PowerLevel(D("11"), D("0.12")), PowerLevel(D("22"), D("0.15"))))
    assert total(tariff, session(kw, 1)).gross == D(expected)


TOD = Tariff("tod", "duration-energy-tod", connection_fee=D("0.50"), rates=Rates(D("0.40"), D("0.01")),
             night_rates=Rates(D("0.25"), D("0")), day_starts=time(7), night_starts=time(22))


def test_time_of_day_splits_at_the_night_boundary():
    start = datetime(2026, 6, 1, 20, 0, tzinfo=BERLIN)     # 20:00-24:00 local at 11 kW
    p = total(TOD, session(11, 4, start=start))
    parts = [(c.kind, c.period, c.quantity) for c in p.components]
    assert parts == [("connection-fee", None, 1), ("energy", "day", D("22")), ("time", "day", D("120")),
                     ("energy", "night", D("22"))]
    assert p.gross == D("16.00")                            # 0.50 + 8.80 + 1.20 + 5.50


def test_time_of_day_over_two_boundaries_and_a_whole_day():
    start = datetime(2026, 6, 1, 21, 0, tzinfo=BERLIN)      # 21:00 to 08:00 the next day
    parts = day_night_parts(start, start + timedelta(hours=11), time(7), time(22), BERLIN)
    assert [(p, b - a) for p, a, b in parts] == [
        ("day", timedelta(hours=1)), ("night", timedelta(hours=9)), ("day", timedelta(hours=1))]
    parts = day_night_parts(start, start + timedelta(hours=48), time(7), time(22), BERLIN)
    assert [p for p, _, _ in parts] == ["day", "night", "day", "night", "day"]


def test_time_of_day_energy_follows_the_meter_readings():
    # 2 kWh before 22:00, 8 kWh after: the split follows the curve, not the clock.
    start = datetime(2026, 6, 1, 21, 0, tzinfo=BERLIN)
    readings = [Reading(start + timedelta(hours=1), 3000)]
    curve = energy_curve(start, 1000, start + timedelta(hours=2), 11000, readings, 22_000)
    assert [(p, e) for p, _, _, e in split_energy(curve, TOD, BERLIN)] == [("day", D("2000")), ("night", D("8000"))]


PER_MINUTE_TOD = Tariff("t", "duration-energy-tod", rates=Rates(per_minute=D("0.05")),
                        night_rates=Rates(per_minute=D("0.01")), day_starts=time(6), night_starts=time(22))


def test_dst_spring_day_in_berlin_counts_real_minutes():
    # 2026-03-29: 02:00 CET becomes 03:00 CEST. 23:00 CET to 08:00 CEST is 8 real hours:
    # night until 06:00 CEST (6 h, not the 7 a wall clock shows), then 2 h of day.
    p = total(PER_MINUTE_TOD, session(3.7, 8, start=datetime(2026, 3, 28, 22, 0, tzinfo=UTC)))
    assert [(c.period, c.quantity) for c in p.components] == [("night", D("360")), ("day", D("120"))]
    assert p.gross == D("9.60")


def test_dst_autumn_day_in_berlin_counts_the_repeated_hour():
    # 2026-10-25: 03:00 CEST becomes 02:00 CET. 22:00 CEST to 07:00 CET is 10 real hours.
    p = total(PER_MINUTE_TOD, session(3.7, 10, start=datetime(2026, 10, 24, 20, 0, tzinfo=UTC)))
    assert [(c.period, c.quantity) for c in p.components] == [("night", D("540")), ("day", D("60"))]
    assert p.gross == D("8.40")


def test_a_boundary_inside_the_skipped_hour_still_cuts_once():
    parts = day_night_parts(datetime(2026, 3, 28, 12, tzinfo=UTC), datetime(2026, 3, 29, 12, tzinfo=UTC),
                            time(2, 30), time(22), BERLIN)
    assert [p for p, _, _ in parts] == ["day", "night", "day"]


def test_blocking_fee_after_240_minutes_seed_003():
    tariff = Tariff("b", "duration-energy", rates=Rates(D("0.30")), blocking_per_minute=D("0.10"),
                    blocking_after_minutes=D(240))
    p = total(tariff, session(2, 5))                        # 10 kWh, 300 minutes plugged in
    assert [(c.kind, c.quantity) for c in p.components] == [("energy", D("10")), ("blocking", D("60"))]
    assert p.gross == D("9.00")
    assert total(tariff, session(2, 4)).gross == D("2.40")   # exactly 240 minutes: no blocking fee


def test_rounding_to_cents_happens_once_at_the_end():
    tariff = Tariff("r", "duration-energy", connection_fee=D("0.004"), rates=Rates(D("0.004"), D("0.004")))
    p = total(tariff, session(60, 1 / 60))                  # 1 kWh in 1 min
    assert [c.amount for c in p.components] == [D("0.004"), D("0.004"), D("0.004")]
    assert p.gross == D("0.01")                             # not 0.00 + 0.00 + 0.00


def test_zero_vat_and_no_energy():
    p = total(Tariff("de", "duration-energy", rates=Rates(D("0.39"))), session(0, 1), vat=D(0))
    assert (p.gross, p.net, p.vat) == (D("0.00"), D("0.00"), D("0.00"))


# Seed 004 "Tariff Ordering": base on top (for everybody), the corporate tariff
# second (less restrictive), the partner users' free tariff at the bottom.
BASE = Tariff("base", "duration-energy", rates=Rates(D("0.20"), D("0.20")))
CORPORATE = Tariff("corporate", "duration-energy", rates=Rates(D("0.03"), D("0.03")),
                   restrictions=Restrictions(frozenset({"corporate", "partners"})))
PARTNER = Tariff("partner", "free", restrictions=Restrictions(frozenset({"partners"})))
ADHOC = Tariff("adhoc", "flat", per_session=D("9"), restrictions=Restrictions(ad_hoc=True, free_vend=True))
GROUP = TariffGroup("ac", BASE, (CORPORATE, PARTNER))


@pytest.mark.parametrize("group, kind, user_group, expected", [
    (GROUP, "token", "partners", "partner"),          # in both restricted tariffs: the lower one wins
    (GROUP, "token", "corporate", "corporate"),
    (GROUP, "token", "visitors", "base"),             # no restricted tariff matches: the base
    (GROUP, "ad-hoc", None, "base"),
    (GROUP, "free-vend", None, "base"),
    (TariffGroup("ac", BASE, (PARTNER, CORPORATE)), "token", "partners", "corporate"),   # order decides
    (TariffGroup("x", BASE, (CORPORATE, ADHOC)), "ad-hoc", None, "adhoc"),
    (TariffGroup("x", BASE, (CORPORATE, ADHOC)), "free-vend", None, "adhoc"),
    (TariffGroup("x", BASE, (CORPORATE, ADHOC)), "token", "corporate", "corporate"),
    (None, "token", "corporate", "free"),              # an EVSE in no tariff group is free
])
def test_tariff_group_ordering(group, kind, user_group, expected):
    assert select_tariff(group, kind, user_group).id == expected


def test_a_user_groups_tariff_key_counts_as_a_restriction():
    group = TariffGroup("x", BASE, (Tariff("tenants", "flat", per_session=D(1)), PARTNER))
    assert select_tariff(group, "token", "residents", {"residents": "tenants"}).id == "tenants"
    assert select_tariff(group, "token", "partners", {"partners": "tenants"}).id == "partner"   # lower wins
    assert select_tariff(group, "token", "residents", {"residents": "base"}).id == "base"
    assert select_tariff(group, "ad-hoc", None, {"": "tenants"}).id == "base"
