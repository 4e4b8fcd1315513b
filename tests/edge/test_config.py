"""The site config: every error names the key, the value and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.cli import main
from edge.config import ConfigError, load_config, parse_config

EXAMPLE = Path(__file__).parents[2] / "config" / "example-site.toml"


def test_example_config_is_valid():
    config = load_config(EXAMPLE)
    assert config.site.id == "demo-flats" and [c.id for c in config.chargers] == ["SIM-1", "SIM-2", "SIM-3", "WB-1"]
    assert [c.id for c in config.circuits] == ["grid", "garage"] and config.meters[0].model == "sdm630"


@pytest.mark.parametrize("toml, expected", [
    ('[site]\nid="s"\n[ocpp]\nport=70000', "ocpp.port: Input should be less than or equal to 65535 (got 70000)"),
    ('[site]\nid="s"\n[ocpp]\nhearbeat_interval=60', "ocpp.hearbeat_interval: unknown key"),
    ('[site]\nid="s"\n[ocpp]\nunknown_chargers="maybe"', "ocpp.unknown_chargers: Input should be 'reject' or 'pending' (got 'maybe')"),
    ('[site]\nid="s"\ntimezone="Mars/Olympus"', "site.timezone: not a known IANA time zone"),
    ('[ocpp]\nport=9000', "site: required key is missing"),
    ('[site]\nid="s"\n[[chargers]]\nid="CP 1"', 'chargers[0] (id "CP 1").id: charger id must be'),
    ('[site]\nid="s"\n[[chargers]]\nid="CP-1"\npassword_hash="hunter2"', "not a password hash"),
    ('[site]\nid="s"\n[[chargers]]\nid="A"\n[[chargers]]\nid="A"', "charger id 'A' appears more than once"),
    ('[site]\nid="s"\n[connection]\ntemporarily_unavailable_after=300\nlong_term_unavailable_after=100',
     "long_term_unavailable_after must be greater"),
    ('[site\nid="s"', "not valid TOML"),
])
def test_errors_name_key_value_problem(toml, expected):
    with pytest.raises(ConfigError) as err:
        parse_config(toml, "site.toml")
    assert any(expected in p for p in err.value.problems), err.value.problems
    assert str(err.value).startswith("site.toml: ")


def test_all_errors_reported_at_once():
    with pytest.raises(ConfigError) as err:
        parse_config('[site]\nid="s"\n[ocpp]\nport=-1\nheartbeat_interval=1\n[[chargers]]\nid="A"\nmax_current=0', "x")
    assert len(err.value.problems) == 3


def test_config_check_cli(tmp_path, capsys):
    assert main(["config", "check", str(EXAMPLE)]) == 0
    assert "OK" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text('[site]\nid="s"\n[[chargers]]\nid="CP-1"\nmax_current=-5\n')
    assert main(["config", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert 'chargers[0] (id "CP-1").max_current: Input should be greater than 0 (got -5)' in err
    assert "nothing was started" in err
    assert main(["config", "check", str(tmp_path / "missing.toml")]) == 2
    assert "cannot read the file" in capsys.readouterr().err


def test_edge_does_not_start_on_bad_config(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[site]\nid="s"\n[ocpp]\nport="nine thousand"\n')
    assert main(["run", "--config", str(bad), "--state-dir", str(tmp_path)]) == 2
    assert "ocpp.port" in capsys.readouterr().err
    assert not (tmp_path / "journal.sqlite").exists()


# -- hygiene: secrets, ids, risky settings ------------------------------------------------------------------

SECRET_SITE = """
[site]
id = "s"
[uplink]
enabled = true
host = "mqtt.example.net"
username = "s"
password = "mqtt-Sup3r-Secret"
[[chargers]]
id = "CP-1"
"""


@pytest.mark.parametrize("broken", [
    '[[chargers]]\nid = "CP-1"\n',                                      # a duplicate: a whole-config error
    '[uplink]\n',                                                       # (edited below) a whole-table error
])
def test_errors_never_echo_a_secret(tmp_path, capsys, broken):
    text = SECRET_SITE + broken
    if broken == "[uplink]\n":
        text = SECRET_SITE.replace('host = "mqtt.example.net"', 'host = ""')
    site = tmp_path / "site.toml"
    site.write_text(text)
    assert main(["config", "check", str(site)]) == 2
    err = capsys.readouterr().err
    assert "mqtt-Sup3r-Secret" not in err and "Sup3r" not in err, err
    assert len(err) < 1000, err


def test_a_refused_secret_is_masked():
    with pytest.raises(ConfigError) as err:
        parse_config('[site]\nid="s"\n[uplink]\npassword = 12345678\n', "site.toml")
    assert err.value.problems == ["uplink.password: Input should be a valid string (got '***' (hidden))"]
    with pytest.raises(ConfigError) as err:
        parse_config('[site]\nid="s"\n[[chargers]]\nid="CP-1"\npassword_hash="plain-password-here"', "site.toml")
    assert "plain-password-here" not in str(err.value) and "password_hash: not a password hash" in str(err.value)


def test_long_values_are_cut():
    with pytest.raises(ConfigError) as err:
        parse_config('[site]\nid="s"\ntimezone="' + "x" * 5000 + '"', "site.toml")
    [problem] = err.value.problems
    assert len(problem) < 200 and problem.endswith("... (cut))")


@pytest.mark.parametrize("tables, expected", [
    ('[[chargers]]\nid="CP-1"\n[[chargers]]\nid="cp-1"', "charger id 'CP-1' (as 'cp-1') appears more than once"),
    ('[[meters]]\nid="M"\nmodel="sdm630"\ntransport="tcp"\nhost="10.0.0.1"\n'
     '[[meters]]\nid="m"\nmodel="sdm630"\ntransport="tcp"\nhost="10.0.0.2"',
     "meter id 'M' (as 'm') appears more than once"),
    ('[[circuits]]\nid="grid"\nlimit=63\n[[circuits]]\nid="GRID"\nparent="grid"\nlimit=32',
     "circuits: id 'grid' (as 'GRID') appears more than once"),
    ('[[tariffs]]\nid="Public"\ntype="free"\n[[tariffs]]\nid="public"\ntype="free"',
     'tariffs "Public" (as "public"): defined twice'),
    ('[[user_groups]]\nid="Residents"\n[[user_groups]]\nid="residents"',
     'user_groups "Residents" (as "residents"): defined twice'),
])
def test_ids_are_unique_ignoring_case(tables, expected):
    with pytest.raises(ConfigError) as err:
        parse_config('[site]\nid="s"\n' + tables, "site.toml")
    assert any(expected in p for p in err.value.problems), err.value.problems


@pytest.mark.parametrize("toml, expected", [
    ('[site]\nid="cloud"', "site.id: 'cloud' is reserved"),
    ('[site]\nid="Cloud"', "site.id: 'Cloud' is reserved"),
    ('[site]\nid="cloud-1"', "site.id: 'cloud-1' is reserved"),
    ('[site]\nid=".."', "site.id: '..' is reserved"),
    ('[site]\nid="$SYS"', "site.id: String should match pattern"),
    ('[site]\nid="s"\n[uplink]\nusername="cloud"', "uplink.username: 'cloud' is reserved"),
    ('[site]\nid="s"\n[uplink]\nusername="a/#"', "uplink.username: String should match pattern"),
])
def test_reserved_names_are_refused(toml, expected):
    with pytest.raises(ConfigError) as err:
        parse_config(toml, "site.toml")
    assert any(p.startswith(expected) for p in err.value.problems), err.value.problems


def test_the_edge_reserves_what_the_broker_accounts_reserve():
    from cloud.broker_accounts import RESERVED_PREFIX
    from edge.uplink.config import RESERVED_PREFIX as EDGE_RESERVED_PREFIX

    assert EDGE_RESERVED_PREFIX == RESERVED_PREFIX


def test_an_api_on_the_network_is_warned_about(tmp_path, capsys):
    site = tmp_path / "site.toml"
    site.write_text('[site]\nid="s"\n[api]\nhost="0.0.0.0"\n')
    assert main(["config", "check", str(site)]) == 0
    out = capsys.readouterr().out
    assert "warning: [api] host = '0.0.0.0' is reachable from the network" in out and "plain HTTP" in out
    for loopback in ("127.0.0.1", "::1", "localhost"):
        site.write_text(f'[site]\nid="s"\n[api]\nhost="{loopback}"\n')
        assert main(["config", "check", str(site)]) == 0
        assert "warning" not in capsys.readouterr().out
