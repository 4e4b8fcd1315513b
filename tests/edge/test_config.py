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
