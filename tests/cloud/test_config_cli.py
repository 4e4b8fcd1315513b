"""Settings from the environment, the database URL, and the admin CLI on both databases."""

from __future__ import annotations

import asyncio

import pytest

from cloud.cli import main
from cloud.config import ConfigError, settings_from
from cloud.db import Database
from cloud.db.connection import DatabaseUrlError, check_url, sqlite_path
from cloud.db.migrations import MIGRATIONS
from cloud.tokens import token_hash


def test_settings_come_from_environment_variables():
    settings = settings_from({"DATABASE_URL": "postgresql://cloud@db/cloud", "CLOUD_MQTT_HOST": "broker",
                              "CLOUD_MQTT_PORT": "8883", "CLOUD_MQTT_CA_FILE": "/etc/ca.pem",
                              "CLOUD_HTTP_PORT": "9000"}, http_port=9001)
    assert settings.database_url == "postgresql://cloud@db/cloud" and settings.http_port == 9001
    assert (settings.mqtt.host, settings.mqtt.port, settings.mqtt.ca_file) == ("broker", 8883, "/etc/ca.pem")
    assert settings_from({}).database_url == "sqlite:///cloud.db"


@pytest.mark.parametrize("env, named", [
    ({"CLOUD_MQTT_PORT": "eighty"}, "CLOUD_MQTT_PORT='eighty'"),
    ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL='mysql://x/y'"),
    ({"CLOUD_MQTT_RECEIVE_MAXIMUM": "0"}, "CLOUD_MQTT_RECEIVE_MAXIMUM='0'"),
])
def test_a_bad_setting_is_named_with_its_value(env, named):
    with pytest.raises(ConfigError, match=named.replace("(", r"\(")):
        settings_from(env)


def test_database_urls():
    assert sqlite_path("sqlite:///cloud.db") == "cloud.db"
    assert sqlite_path("sqlite:////var/lib/cloud/cloud.db") == "/var/lib/cloud/cloud.db"
    assert check_url("postgres://u@h/d") == "postgresql"
    with pytest.raises(DatabaseUrlError, match="three slashes"):
        sqlite_path("sqlite://cloud.db")


async def test_migrations_run_once_and_a_newer_schema_is_refused(database_url):
    async with Database(database_url) as db:
        row = await db.write(lambda c: c.one("SELECT max(version) AS v FROM schema_version"))
        assert row["v"] == len(MIGRATIONS)
        await db.write(lambda c: c.run("INSERT INTO schema_version (version) VALUES (?)", (len(MIGRATIONS) + 1,)))
    with pytest.raises(RuntimeError, match="newer than this release"):
        async with Database(database_url):
            pass


def test_operators_tokens_and_sites_from_the_command_line(database_url, capsys):
    def cloud(*args: str) -> tuple[int, str, str]:
        code = main(["--database-url", database_url, *args])
        out, err = capsys.readouterr()
        return code, out, err

    assert cloud("operators", "add", "acme")[0] == 0
    assert cloud("operators", "add", "acme")[:1] == (1,)
    code, out, err = cloud("tokens", "add", "acme", "--label", "billing export")
    token = out.strip()
    assert code == 0 and token.startswith("sct_") and "shown only now" in err
    assert cloud("tokens", "add", "nobody")[2].startswith("error: no operator 'nobody'")
    assert cloud("sites", "assign", "site-17", "acme") == (0, "site site-17 -> acme\n", "")
    assert cloud("sites", "assign", "bad site", "acme")[0] == 1
    code, out, _ = cloud("tokens", "list")
    assert token[:12] in out and token not in out and "billing export" in out
    code, out, _ = cloud("operators", "list")
    assert "acme" in out and "1" in out

    async def stored() -> list:
        async with Database(database_url) as db:
            return await db.read(lambda c: c.all("SELECT token_hash FROM api_tokens"))
    assert [r["token_hash"] for r in asyncio.run(stored())] == [token_hash(token)]
    assert cloud("tokens", "revoke", token[:12])[0] == 0
    assert "(none)" in cloud("tokens", "list", "acme")[1]
    assert cloud("sites", "unassign", "site-17")[1] == "site site-17 unassigned\n"
    assert cloud("operators", "remove", "acme")[0] == 0


def test_the_example_settings_file_is_valid_and_every_variable_is_documented():
    from pathlib import Path

    from cloud.config import ENV
    repo = Path(__file__).resolve().parents[2]
    example = (repo / "config" / "cloud.example.env").read_text()
    env = dict(line.split("=", 1) for line in example.splitlines() if line and not line.startswith("#"))
    settings_from(env)
    docs = (repo / "docs" / "cloud.md").read_text()
    for name in ENV:
        assert name in example, f"{name} is not in config/cloud.example.env"
        assert name in docs, f"{name} is not in docs/cloud.md"
