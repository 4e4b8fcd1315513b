"""Building a record costs little whatever it is built from: any charger time
datetime can hold (year 1 to 9999), any tariff number. It returns a record or
raises (the service quarantines it); it never runs for seconds on the event
loop, which is what kept an edge from answering SIGTERM."""

from __future__ import annotations

import time as clock
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import given, settings, strategies as st

from edge.cdr.pricing import Unpriceable, day_night_parts
from edge.cdr.plausibility import Thresholds
from edge.cdr.record import Pricing, build_cdr
from edge.cdr.tariffs import Rates, Tariff
from edge.cdr.watch import Running, Timeouts, due
from edge.clock import iso

BERLIN = ZoneInfo("Europe/Berlin")
PRICING = Pricing("EUR", Decimal(19), Thresholds(), BERLIN)
NOW = datetime(2026, 6, 1, 7, tzinfo=timezone.utc)
# Well above what one record takes (about a millisecond), well below what a blocked event loop costs.
BUDGET_S = 0.5

instants = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59),
                        timezones=st.just(timezone.utc))
near_now = st.datetimes(min_value=datetime(2026, 5, 1), max_value=datetime(2026, 7, 1), timezones=st.just(timezone.utc))
huge = st.decimals(min_value=0, max_value=Decimal("1e15"), allow_nan=False, allow_infinity=False, places=2)


def _tx(start: datetime, stop: datetime, meter_stop: int) -> dict:
    return dict(id=1, charger_id="CP-1", connector_id=1, id_tag="T", user_group=None, start_time=iso(start),
                stop_time=iso(stop), start_received_at=iso(NOW), stop_received_at=iso(NOW), meter_start=0,
                meter_stop=meter_stop, stop_reason=None, flag=None, edge_stop=None)


def _build(tx: dict, tariff: Tariff, samples: list[dict] = ()):
    return build_cdr(site_id="s", tx=tx, samples=list(samples), kind="token", user="", group=None, tariff=tariff,
                     evse_max_power_w=22_000.0, pricing=PRICING, duplicate_of=None, now=NOW)


@st.composite
def tariffs(draw):
    kind = draw(st.sampled_from(["flat", "duration-energy", "duration-energy-tod"]))
    return Tariff("t", kind, per_session=draw(huge), rates=Rates(draw(huge), draw(huge)),
                  night_rates=Rates(draw(huge), draw(huge)), blocking_per_minute=draw(huge),
                  blocking_after_minutes=draw(huge))


@settings(max_examples=60, deadline=None)
@given(start=st.one_of(instants, near_now), stop=st.one_of(instants, near_now), sample=st.one_of(instants, near_now),
       tariff=tariffs(), meter_stop=st.integers(-10**6, 10**9))
def test_a_record_is_built_or_refused_quickly_whatever_the_times_and_tariff(start, stop, sample, tariff, meter_stop):
    samples = [{"timestamp": iso(sample), "measurand": "Energy.Active.Import.Register", "phase": None,
                "value": 500.0, "unit": "Wh", "context": None, "location": None}]
    began = clock.perf_counter()
    try:
        cdr = _build(_tx(start, stop, meter_stop), tariff, samples)
    except (Unpriceable, OverflowError):
        pass            # quarantined by the service, with this error
    else:
        assert Decimal(cdr.price_gross) >= 0 and len(cdr.price_components) <= 2 * 400 * 2 + 4
    assert clock.perf_counter() - began < BUDGET_S


def test_a_year_one_start_under_a_time_of_day_tariff_is_refused_at_once():
    tod = Tariff("tod", "duration-energy-tod", rates=Rates(Decimal("0.3"), Decimal("0.01")),
                 night_rates=Rates(Decimal("0.2")))
    began = clock.perf_counter()
    try:
        _build(_tx(datetime(1, 1, 3, tzinfo=timezone.utc), NOW, 1000), tod)
    except Unpriceable as exc:
        assert "time-of-day tariff prices at most 400 days" in str(exc)
    else:
        raise AssertionError("a 2025-year session was priced day by day")
    # It took 26 s (and 2.2 million price components) before the split was bounded.
    assert clock.perf_counter() - began < 0.05
    # Up to the bound a split is still made, one part per day and night.
    assert len(day_night_parts(NOW - timedelta(days=399), NOW, tod.day_starts, tod.night_starts, BERLIN)) == 799


def test_huge_blocking_and_session_limits_do_not_overflow():
    blocking = Tariff("b", "duration-energy", rates=Rates(per_kwh=Decimal("0.5")), blocking_per_minute=Decimal("0.1"),
                      blocking_after_minutes=Decimal("1e10"), max_minutes=Decimal("1e13"))
    cdr = _build(_tx(NOW - timedelta(hours=1), NOW, 1000), blocking)
    assert cdr.price_gross == "0.50" and [c["kind"] for c in cdr.price_components] == ["energy"]
    run = Running(1, "CP-1", 1, "T", None, NOW - timedelta(hours=1), 0, NOW, 0)
    assert due(run, blocking, NOW, Timeouts(), None, None) is None
