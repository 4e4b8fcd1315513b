"""The authorization part of the config: a broken item is refused with an error
that names it, whether the model arrives in the site's TOML (`parse_config`) or
as a document from the journal or the API (`model_from_document`)."""

from __future__ import annotations

import tomllib
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from edge.auth.config import model_from_document, to_opening_hours
from edge.auth.decide import decide
from edge.auth.model import Evse, ModelError, build_model
from edge.config import ConfigError, parse_config

SITE = """
[site]
id = "test-site"
timezone = "Europe/Berlin"

[authorization]
default_policy = "closed"

[[chargers]]
id = "CP-1"
connectors = 2

[[chargers]]
id = "CP-2"
connectors = 2

[[user_groups]]
id = "tenants"
charge_groups = ["garage"]

[[user_groups]]
id = "staff"
charge_groups = ["office"]
allow_concurrent = true

[[charge_groups]]
id = "garage"
policy = "private"
evses = ["CP-1", {charger = "CP-2", connector = 1}]

[[charge_groups]]
id = "office"
policy = "all-known"
evses = ["CP-2"]
opening_hours = { "mon-fri" = "07:00-19:00", sat = ["08:00-12:00", "14:00-18:00"] }
outside_hours = "operative-private"

[[tokens]]
uid = "04:a2:b3:c4"
user_group = "tenants"
user = "alice"
expiry = 2027-01-31T23:59:59+01:00

[[tokens]]
id_tag = "app-17"
user_group = "staff"
"""


def edited(old: str, new: str) -> str:
    assert SITE.count(old) == 1, old
    return SITE.replace(old, new)


def document_of(text: str) -> dict:
    data = tomllib.loads(text)
    return {"default_policy": data.get("authorization", {}).get("default_policy", "all-known"),
            **{k: data.get(k, []) for k in ("user_groups", "charge_groups", "tokens")}}


def problems_at(level: str, text: str) -> list[str]:
    """The error lines an operator sees for this config, at this level."""
    if level == "config":
        with pytest.raises(ConfigError) as error:
            parse_config(text, source="site.toml")
        return error.value.problems
    data = tomllib.loads(text)
    chargers = [c["id"] for c in data.get("chargers", [])]
    with pytest.raises((ModelError, ValidationError)) as error:
        model_from_document(3, document_of(text), known_chargers=chargers)
    if isinstance(error.value, ModelError):
        return error.value.problems
    return [str(error.value)]


def names(line: str, expected: list[str | tuple[str, ...]]) -> bool:
    """Every expected piece is in the line (a tuple: any one of its alternatives)."""
    return all(any(a in line for a in (e if isinstance(e, tuple) else (e,))) for e in expected)


TOKEN_0 = ("tokens[0]", "04:a2:b3:c4")  # the first token, by position or by its uid

BROKEN = [
    pytest.param('user_group = "tenants"\nuser = "alice"', 'user_group = "tenant"\nuser = "alice"',
                 [TOKEN_0, '"tenant"', "does not exist"], id="token-with-unknown-user-group"),
    pytest.param('charge_groups = ["garage"]', 'charge_groups = ["garage", "garrage"]',
                 ['"tenants"', '"garrage"', "does not exist"], id="user-group-names-missing-charge-group"),
    pytest.param('evses = ["CP-1", {', 'evses = ["CP-1", "CP-9", {',
                 ['"garage"', '"CP-9"', "not a charger"], id="charge-group-names-unconfigured-charger"),
    pytest.param('{charger = "CP-2", connector = 1}', '{charger = "CP-7", connector = 1}',
                 ['"garage"', '"CP-7"', "not a charger"], id="charge-group-names-unconfigured-charger-connector"),
    pytest.param('id_tag = "app-17"', 'uid = "C4-B3-A2-04"',
                 [("tokens[1]", "C4-B3-A2-04"), "same card"], id="same-card-in-reversed-byte-order"),
    pytest.param('id_tag = "app-17"', 'uid = "04A2B3C4"',
                 [("tokens[1]", "04A2B3C4"), "same card"], id="same-card-spelled-differently"),
    pytest.param('id_tag = "app-17"', 'id_tag = "app-17"\nuid = "01:02:03:04"',
                 [("tokens[1]",), "exactly one"], id="token-with-uid-and-id-tag"),
    pytest.param('id_tag = "app-17"\n', '',
                 [("tokens[1]",), "exactly one"], id="token-with-neither-uid-nor-id-tag"),
    pytest.param('uid = "04:a2:b3:c4"', 'uid = "04:g2:b3:c4"',
                 [TOKEN_0, "not hex"], id="token-uid-not-hex"),
    pytest.param('"mon-fri" = "07:00-19:00"', '"mon-fri" = "7-19"',
                 ['office', "'7-19'"], id="opening-hours-without-minutes"),
    pytest.param('"mon-fri" = "07:00-19:00"', '"mon-fri" = "25:00-26:00"',
                 ['office', "'25:00-26:00'"], id="opening-hours-not-a-time-of-day"),
    pytest.param('"14:00-18:00"]', '"14:00-18:60"]',
                 ['office', "'14:00-18:60'"], id="opening-hours-second-window-bad-minutes"),
    pytest.param('"mon-fri" = "07:00-19:00"', 'funday = "07:00-19:00"',
                 ['office', "'funday'"], id="opening-hours-day-funday"),
    pytest.param("expiry = 2027-01-31T23:59:59+01:00", "expiry = 2027-01-31T23:59:59",
                 [TOKEN_0, "time zone"], id="expiry-without-time-zone"),
    pytest.param("expiry = 2027-01-31T23:59:59+01:00", 'expiry = "2027-01-31T23:59:59"',
                 [TOKEN_0, "time zone"], id="expiry-string-without-time-zone"),
    pytest.param('[[user_groups]]\nid = "staff"', '[[user_groups]]\nid = "tenants"',
                 ['"tenants"', "defined twice"], id="user-group-defined-twice"),
    pytest.param('id = "office"', 'id = "garage"',
                 ['"garage"', "defined twice"], id="charge-group-defined-twice"),
]


@pytest.mark.parametrize("level", ["document", "config"])
@pytest.mark.parametrize(("old", "new", "expected"), BROKEN)
def test_a_broken_item_is_named(level: str, old: str, new: str, expected: list) -> None:
    problems = problems_at(level, edited(old, new))
    assert any(names(line, expected) for line in problems), problems


def test_the_site_config_is_valid() -> None:
    config = parse_config(SITE)
    model = model_from_document(5, config.auth_document(), known_chargers=[c.id for c in config.chargers])
    assert model.version == 5
    assert model.default_policy == "closed"
    assert model.charge_groups["garage"].evses == (Evse("CP-1"), Evse("CP-2", 1))
    assert model.charge_groups["office"].outside_hours == "operative-private"
    assert model.user_groups["tenants"].charge_groups == frozenset({"garage"})
    assert model.user_groups["staff"].allow_concurrent
    alice = model.find("C4B3A204")
    assert alice is not None and alice.id_tag == "04A2B3C4" and alice.user == "alice" and alice.is_uid
    assert alice.expiry == datetime(2027, 1, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=1)))
    app = model.find("APP-17")
    assert app is not None and app.id_tag == "APP-17" and not app.is_uid
    hours = model.charge_groups["office"].opening_hours
    assert hours is not None
    assert hours.windows["mon"] == hours.windows["fri"] == ((time(7), time(19)),)
    assert hours.windows["sat"] == ((time(8), time(12)), (time(14), time(18)))
    assert "sun" not in hours.windows


def test_the_document_round_trips_through_the_journal_form() -> None:
    """What the journal stores (auth_document, JSON-able) builds the same model as the TOML tables."""
    config = parse_config(SITE)
    from_config = model_from_document(1, config.auth_document(), known_chargers=["CP-1", "CP-2"])
    from_tables = model_from_document(1, document_of(SITE), known_chargers=["CP-1", "CP-2"])
    assert from_config == from_tables


def test_the_config_decides_as_written() -> None:
    config = parse_config(SITE)
    model = model_from_document(1, config.auth_document(), known_chargers=None)
    saturday_18 = datetime(2026, 6, 6, 16, 0, tzinfo=timezone.utc)  # Saturday 18:00 in Berlin: office closed

    def ask(charger: str, connector: int, tag: str, now: datetime = saturday_18) -> str:
        return decide(model, charger_id=charger, connector_id=connector, id_tag=tag, now=now,
                      tz=ZoneInfo(config.site.timezone)).status

    assert ask("CP-2", 1, "04A2B3C4") == "Accepted"          # garage holds CP-2 connector 1
    assert ask("CP-2", 2, "04A2B3C4") == "Invalid"           # office, after hours, private to staff
    assert ask("CP-2", 2, "app-17") == "Accepted"            # staff list office
    assert ask("CP-2", 2, "04A2B3C4", saturday_18 - timedelta(hours=3)) == "Accepted"  # 15:00: open to all known
    assert ask("CP-3", 1, "04A2B3C4") == "Invalid"           # default closed


def test_every_problem_is_reported_not_only_the_first() -> None:
    text = edited('user_group = "tenants"\nuser', 'user_group = "nobody"\nuser')
    text = text.replace('evses = ["CP-1", {', 'evses = ["CP-9", {')
    problems = problems_at("config", text)
    assert any('"nobody"' in p for p in problems), problems
    assert any('"CP-9"' in p for p in problems), problems


def test_a_misspelt_key_in_a_token_is_named() -> None:
    problems = problems_at("config", edited('user = "alice"', 'usr = "alice"'))
    assert any("tokens[0]" in p and "usr" in p for p in problems), problems


def test_without_known_chargers_any_charger_may_be_named() -> None:
    document = document_of(edited('evses = ["CP-2"]', 'evses = ["CP-99"]'))
    model = model_from_document(1, document, known_chargers=None)
    assert model.charge_groups["office"].evses == (Evse("CP-99"),)


def test_validity_does_not_depend_on_token_order() -> None:
    """A card 78:56:34:12 and an app id '12345678' are different tokens. Whether
    the pair is accepted or refused, it must not depend on which is listed first."""
    card = {"uid": "78:56:34:12", "user_group": "tenants"}
    app = {"id_tag": "12345678", "user_group": "tenants"}

    def valid(tokens: list[dict]) -> bool:
        try:
            build_model(1, tokens=tokens, user_groups=[{"id": "tenants"}], charge_groups=[])
        except ModelError:
            return False
        return True

    assert valid([card, app]) == valid([app, card]), (valid([card, app]), valid([app, card]))


@pytest.mark.parametrize(
    ("spec", "day", "expected"),
    [
        pytest.param({"mon-fri": "07:00-19:00"}, "wed", ((time(7), time(19)),), id="range"),
        pytest.param({"mon-fri": "07:00-19:00"}, "sat", None, id="range-excludes-weekend"),
        pytest.param({"fri-mon": "10:00-12:00"}, "sun", ((time(10), time(12)),), id="range-wraps-the-week"),
        pytest.param({"fri-mon": "10:00-12:00"}, "tue", None, id="wrapped-range-excludes-tuesday"),
        pytest.param({"daily": "22:00-06:00"}, "sun", ((time(22), time(6)),), id="daily-overnight"),
        pytest.param({"Sat": "7:30-9:00"}, "sat", ((time(7, 30), time(9)),), id="capitalised-day-one-digit-hour"),
        pytest.param({"sun": "00:00-24:00"}, "sun", ((time(0), time(0)),), id="whole-day"),
        pytest.param({"mon": ["08:00-12:00", "13:00-17:00"]}, "mon", ((time(8), time(12)), (time(13), time(17))),
                     id="two-windows"),
    ],
)
def test_opening_hours_spec(spec: dict, day: str, expected: tuple | None) -> None:
    assert to_opening_hours(spec).windows.get(day) == expected


def test_a_whole_day_window_is_open_all_day() -> None:
    hours = to_opening_hours({"sun": "00:00-24:00"})
    for hour in (0, 12, 23):
        assert hours.is_open(datetime(2026, 6, 7, hour, 59)), hour   # a Sunday
    assert not hours.is_open(datetime(2026, 6, 8, 0, 0))             # Monday


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param({"mon": "7-19"}, id="no-minutes"),
        pytest.param({"mon": "25:00-26:00"}, id="hour-25"),
        pytest.param({"mon": "24:00-24:00"}, id="opens-at-24"),
        pytest.param({"mon": "07:00-24:30"}, id="past-24"),
        pytest.param({"mon": "07:60-08:00"}, id="minute-60"),
        pytest.param({"mon": "07:00 to 19:00"}, id="words"),
        pytest.param({"mon": ""}, id="empty"),
        pytest.param({"funday": "07:00-19:00"}, id="funday"),
        pytest.param({"mon-funday": "07:00-19:00"}, id="range-to-funday"),
        pytest.param({"-fri": "07:00-19:00"}, id="range-without-start"),
    ],
)
def test_opening_hours_spec_refused(spec: dict) -> None:
    with pytest.raises(ValueError) as error:
        to_opening_hours(spec)
    (key, value), = spec.items()
    assert repr(value) in str(error.value) or repr(key.lower()) in str(error.value), str(error.value)
