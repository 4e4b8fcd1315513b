"""The tariff part of the site config: what is refused, with errors that name
the item, and what the edge builds from it."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest

from edge.cdr.tariffs import select_tariff
from edge.cdr.config import tariff_book
from edge.config import ConfigError, load_config, parse_config

SITE = '''
[site]
id = "s"
[[chargers]]
id = "CP-1"
connectors = 2
evses = [{ connector = 2, max_current = 16, phases = 1 }]
[[user_groups]]
id = "staff"
[[user_groups]]
id = "guests"
tariff = "guest"
'''
GOOD = SITE + '''
[[tariffs]]
id = "base"
type = "duration-energy"
price_per_kwh = 0.3
[[tariffs]]
id = "guest"
type = "duration-energy-tod"
price_per_kwh = "0.45"
night_price_per_kwh = "0.25"
day_starts = "06:30"
night_starts = "22:00"
[[tariffs]]
id = "staff"
type = "free"
user_groups = ["staff"]
[[tariff_groups]]
id = "ac"
base = "base"
tariffs = ["guest", "staff"]
evses = ["CP-1"]
'''


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "site.toml")
    return caught.value.problems


def test_a_good_config_builds_the_tariff_book():
    config = parse_config(GOOD, "site.toml")
    book = tariff_book(config.tariffs, config.tariff_groups)
    group = book.group_for("CP-1", 2)
    assert group.id == "ac" and [t.id for t in group.ordered] == ["guest", "staff"]
    assert group.base.rates.per_kwh == D("0.3")           # a TOML float read as the decimal it shows
    assert select_tariff(group, "token", "staff").id == "staff"
    assert select_tariff(group, "token", "guests", {"guests": "guest"}).id == "guest"
    assert book.group_for("CP-2", 1) is None
    assert config.charge_records.evse_max_power_w(config.charger("CP-1"), 1) == 32 * 3 * 230
    assert config.charge_records.evse_max_power_w(config.charger("CP-1"), 2) == 16 * 1 * 230
    assert config.charge_records.evse_max_power_w(None, 1) == 32 * 3 * 230


@pytest.mark.parametrize("tariff, expected", [
    ('type = "flat"\nprice_per_kwh = 0.3', "price_per_kwh do(es) not apply to a flat tariff"),
    ('type = "duration-energy-tod"\nprice_per_kwh = 0.3', "needs day_starts and night_starts"),
    ('type = "duration-energy-tod"\nday_starts = "7:00"\nnight_starts = "07:00"', "must differ"),
    ('type = "duration-energy-tod"\nday_starts = "25:00"\nnight_starts = "07:00"', "not a time of day"),
    ('type = "power-levels"\npower_levels = [{ max_kw = 22, price_per_minute = 0.1 }, '
     '{ max_kw = 11, price_per_minute = 0.1 }]', "in rising max_kw"),
    ('type = "power-levels"', "at least one level"),
    ('type = "duration-energy"\nprice_per_kwh = -0.3', "greater than or equal to 0"),
    ('type = "hourly"', "Input should be"),
])
def test_bad_tariffs_are_refused_naming_the_item(tariff, expected):
    found = problems(SITE + f'[[tariffs]]\nid = "t1"\n{tariff}\n')
    assert any(p.startswith('tariffs[0] (id "t1")') and expected in p for p in found), found


@pytest.mark.parametrize("change, expected", [
    (('base = "base"', 'base = "nope"'), 'tariff_groups "ac": base tariff "nope" does not exist'),
    (('base = "base"', 'base = "staff"'), 'tariff_groups "ac": base tariff "staff" has restrictions'),
    (('tariffs = ["guest", "staff"]', 'tariffs = ["guest", "base"]'), 'tariff "base" is listed twice'),
    (('user_groups = ["staff"]', 'user_groups = ["ghosts"]'), 'tariffs "staff": user group "ghosts" does not exist'),
    (('user_groups = ["staff"]\n', ''), 'tariff "staff" has no restrictions, so it would never apply'),
    (('tariff = "guest"', 'tariff = "gest"'), 'user_groups "guests": tariff "gest" does not exist'),
    (('evses = ["CP-1"]', 'evses = ["CP-9"]'), 'charger "CP-9" is not a charger of this site'),
    (('evses = ["CP-1"]', 'evses = ["CP-1", "CP-1"]'), "CP-1 is already in tariff group"),
    (('id = "staff"\ntype', 'id = "base"\ntype'), 'tariffs "base": defined twice'),
])
def test_cross_references_are_checked(change, expected):
    old, new = change
    assert old in GOOD
    found = problems(GOOD.replace(old, new, 1))
    assert any(expected in p for p in found), found


def test_a_user_group_may_name_a_base_tariff():
    parse_config(GOOD.replace('tariff = "guest"', 'tariff = "base"')
                 .replace('night_starts = "22:00"', 'night_starts = "22:00"\nad_hoc = true'), "site.toml")


def test_a_user_groups_tariff_label_without_any_tariffs_is_still_accepted():
    parse_config(SITE, "site.toml")         # configs from before tariffs existed keep working


def test_the_example_config_prices_its_sessions():
    config = load_config(Path(__file__).parents[3] / "config" / "example-site.toml")
    assert config.tariffs and config.tariff_groups
    assert config.session_timeouts.finish_after_inactivity == 120
