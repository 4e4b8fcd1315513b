"""Golden values for every tariff type, time-of-day splits (DST days in
Europe/Berlin included), tariff-group ordering and the blocking fee."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest

from edge.cdr.energy import Reading, Usage, energy_curve
from edge.cdr.pricing import auto_stop_reached, day_night_parts, price, price_so_far, split_energy
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


# -- issue 14: billing features, each computed by hand ------------------------------------------

def priced(tariff: Tariff, curve, currency: str = "EUR", vat=D(19)):
    """Priced with the session's usage (its charging intervals), as a record is."""
    return price(tariff, curve, Usage.of(curve), BERLIN, currency, vat)


def test_minimum_price_per_session():
    tariff = Tariff("min", "duration-energy", rates=Rates(D("0.30")), min_price=D("2.00"))
    p = priced(tariff, session(3, 1))                       # 3 kWh x 0.30 = 0.90, below the minimum 2.00
    assert [(c.kind, c.amount) for c in p.components] == [("energy", D("0.90")), ("minimum-price", D("1.10"))]
    assert p.gross == D("2.00")                             # 0.90 + 1.10
    assert priced(tariff, session(10, 1)).gross == D("3.00")     # 10 x 0.30 = 3.00 >= 2.00: no minimum line


def test_maximum_price_per_session():
    tariff = Tariff("max", "duration-energy", rates=Rates(D("0.30"), D("0.05")), max_price=D("10.00"))
    p = priced(tariff, session(22 / 3, 3))                  # 22 kWh x 0.30 = 6.60 + 180 min x 0.05 = 9.00
    assert [(c.kind, c.amount) for c in p.components][-1] == ("maximum-price", D("-5.60"))   # 15.60 -> 10.00
    assert p.gross == D("10.00") and (p.net, p.vat) == (D("8.40"), D("1.60"))               # 10.00 / 1.19 = 8.40


def test_time_billed_per_started_minute_and_per_started_quarter_hour():
    per_minute = Tariff("m", "duration-energy", rates=Rates(per_minute=D("0.10")), time_step_minutes=D(1))
    curve = energy_curve(T0, 0, T0 + timedelta(minutes=90, seconds=20), 10_000, [], 22_000)
    p = priced(per_minute, curve)                           # 90 min 20 s = 90.3333 min -> 91 started minutes
    assert [(c.kind, c.quantity) for c in p.components] == [("time", D("91"))]
    assert p.gross == D("9.10")                             # 91 x 0.10
    quarter = Tariff("q", "duration-energy", rates=Rates(per_minute=D("0.10")), time_step_minutes=D(15))
    assert priced(quarter, curve).gross == D("10.50")       # 90.33 -> 105 min (7 quarters) x 0.10


def test_energy_billed_per_started_step():
    tariff = Tariff("e", "duration-energy", rates=Rates(D("0.40")), energy_step_kwh=D("0.5"))
    p = priced(tariff, energy_curve(T0, 0, T0 + timedelta(hours=1), 10_200, [], 22_000))
    assert [(c.kind, c.quantity) for c in p.components] == [("energy", D("10.5"))]   # 10.2 kWh -> 21 x 0.5
    assert p.gross == D("4.20")                             # 10.5 x 0.40


def test_a_billing_step_rounds_the_session_not_each_time_of_day_part():
    # 20:30 to 22:30:30 local: 90 min of day, 30.5 min of night = 120.5 min -> 121 started minutes;
    # the extra half minute goes onto the last part: day 90 x 0.05 = 4.50, night 31 x 0.01 = 0.31.
    start = datetime(2026, 6, 1, 20, 30, tzinfo=BERLIN)
    stepped = Tariff("s", "duration-energy-tod", rates=Rates(per_minute=D("0.05")),
                     night_rates=Rates(per_minute=D("0.01")), day_starts=time(6), night_starts=time(22),
                     time_step_minutes=D(1))
    p = priced(stepped, energy_curve(start, 0, start + timedelta(minutes=120, seconds=30), 5000, [], 22_000))
    assert [(c.period, c.quantity) for c in p.components] == [("day", D("90")), ("night", D("31"))]
    assert p.gross == D("4.81")


def test_idle_fee_starts_when_the_car_stops_drawing():
    # 11 kWh in the first hour (a reading at 60 min), then the car sits full until 3 h. Idle from
    # 60 min + 30 min grace = 90 min to 180 min: 90 min x 0.10 = 9.00; energy 11 x 0.30 = 3.30.
    tariff = Tariff("i", "duration-energy", rates=Rates(D("0.30")), idle_per_minute=D("0.10"),
                    idle_grace_minutes=D(30))
    curve = energy_curve(T0, 0, T0 + timedelta(hours=3), 11_000, [Reading(T0 + timedelta(hours=1), 11_000)], 22_000)
    p = priced(tariff, curve)
    idle = p.components[-1]
    assert (idle.kind, idle.quantity, idle.start, idle.end) == ("idle", D(90), T0 + timedelta(minutes=90),
                                                                T0 + timedelta(hours=3))
    assert p.gross == D("12.30")                            # 3.30 + 9.00
    # Leaving within the grace time costs no idle fee: stop at 80 min.
    short = energy_curve(T0, 0, T0 + timedelta(minutes=80), 11_000, [Reading(T0 + timedelta(hours=1), 11_000)],
                         22_000)
    assert [c.kind for c in priced(tariff, short).components] == ["energy"]


def test_power_levels_with_a_trickle_take_the_average_of_the_charging_intervals():
    # 11 kWh in 1 h, then 45 W for 30 h (hourly readings): 11 kW, level 2: 1,860 min x 0.12 = 223.20.
    levels = Tariff("pl", "power-levels", power_levels=(
        PowerLevel(D("7.4"), D("0.10")), PowerLevel(D("11"), D("0.12")), PowerLevel(D("22"), D("0.15"))))
    readings = [Reading(T0 + timedelta(hours=h), 11_000 + 45 * (h - 1)) for h in range(1, 31)]
    curve = energy_curve(T0, 0, T0 + timedelta(hours=31), 11_000 + 45 * 30, readings, 11_000)
    assert priced(levels, curve).gross == D("223.20")


@pytest.mark.parametrize("currency, per_kwh, gross, net, vat", [
    # 11.111 kWh x price, VAT 10 %: net = gross / 1.10 rounded to the currency's minor unit.
    ("JPY", "45", "500", "455", "45"),            # 499.995 -> 500 (no minor unit); 454.545 -> 455
    ("EUR", "0.45", "5.00", "4.55", "0.45"),      # 4.99995 -> 5.00; 4.5454 -> 4.55
    ("KWD", "0.0125", "0.139", "0.126", "0.013"),  # 0.1388875 -> 0.139 (fils); 0.12636 -> 0.126
])
def test_currency_minor_units(currency, per_kwh, gross, net, vat):
    p = priced(Tariff("c", "duration-energy", rates=Rates(D(per_kwh))),
               energy_curve(T0, 0, T0 + timedelta(hours=1), 11_111, [], 22_000), currency, D(10))
    assert (str(p.gross), str(p.net), str(p.vat)) == (gross, net, vat)


def test_component_numbers_are_plain_decimals():
    # No energy at a per-kWh price: 0 x 0.01 was written '0E-8'.
    p = priced(Tariff("z", "duration-energy", rates=Rates(D("0.01"), D("0.02"))), session(0, 1))
    assert [(c["quantity"], c["unit_price"], c["amount"]) for c in (x.as_dict() for x in p.components)] == [
        ("0", "0.01", "0.00"), ("60", "0.02", "1.20")]


def test_price_so_far_and_the_auto_stop():
    # 1.00 connection fee + 0.40/kWh, auto-stop at 10.00: at 22.5 kWh 1.00 + 9.00 = 10.00 (reached);
    # at 22.48 kWh 1.00 + 8.992 = 9.992 -> 9.99 (not yet).
    tariff = Tariff("a", "duration-energy", connection_fee=D("1.00"), rates=Rates(D("0.40")),
                    auto_stop_price=D("10.00"), min_price=D("20"))
    at = T0 + timedelta(hours=2)
    so_far = price_so_far(tariff, T0, at, 1000, 1000 + 22_500, BERLIN, "EUR", D(19))
    assert so_far == D("10.00") and auto_stop_reached(tariff, so_far)
    almost = price_so_far(tariff, T0, at, 1000, 1000 + 22_480, BERLIN, "EUR", D(19))
    assert almost == D("9.99") and not auto_stop_reached(tariff, almost)   # the minimum (20) is not "reached"
    assert not auto_stop_reached(Tariff("n", "flat", per_session=D(50)), D(50))   # no auto-stop amount
