"""edgectl against a running edge, through the local API."""

from __future__ import annotations

import asyncio
import json

from ocpp.v16 import call

from edge.cli import main, parse_params
from tests.edge.conftest import charger, site_toml


async def edgectl(tmp_path, *args: str) -> int:
    # edgectl is synchronous (urllib); run it off the loop the edge runs on.
    return await asyncio.to_thread(main, [args[0], "--config", str(tmp_path / "site.toml"),
                                          "--state-dir", str(tmp_path), *args[1:]])


async def test_chargers_sessions_log_and_cmd(make_edge, tmp_path, capsys):
    async with make_edge() as edge:
        # edgectl reads the API address from the config: write the real ports into it.
        (tmp_path / "site.toml").write_text(
            site_toml(tmp_path).replace("[api]\nport = 0", f"[api]\nport = {edge.api.bound_port}"))
        async with charger(edge) as cp:
            await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Charging"))
            await cp.call(call.StartTransaction(connector_id=1, id_tag="TAG-OK", meter_start=0,
                                                timestamp="2026-11-23T10:00:00Z"))
            capsys.readouterr()

            assert await edgectl(tmp_path, "chargers") == 0
            out = capsys.readouterr().out
            assert out.splitlines()[0].split()[:3] == ["ID", "REGISTRATION", "CONNECTION_STATUS"]
            cp1 = next(line for line in out.splitlines() if line.startswith("CP-1"))
            assert "Available" in cp1 and "1:Charging" in cp1

            assert await edgectl(tmp_path, "sessions", "--state", "active", "--json") == 0
            [session] = json.loads(capsys.readouterr().out)
            assert (session["charger_id"], session["id_tag"]) == ("CP-1", "TAG-OK")

            assert await edgectl(tmp_path, "cmd", "CP-1", "reset", "type=Hard", "--reason", "cli test") == 0
            lines = capsys.readouterr().out.splitlines()   # a line and a table, not JSON
            assert lines[0].startswith("CP-1 Reset: ok (actions log #")
            assert lines[1].split() == ["FIELD", "VALUE"] and lines[2].split() == ["status", "Accepted"]
            assert cp.received[-1] == ("Reset", {"type": "Hard"})
            assert await edgectl(tmp_path, "cmd", "CP-1", "Reset", "type=Soft", "--reason", "x", "--json") == 0
            assert json.loads(capsys.readouterr().out)["outcome"] == "ok"

            assert await edgectl(tmp_path, "chargers", "show", "CP-1") == 0
            out = capsys.readouterr().out
            assert "{" not in out and out.splitlines()[0].split() == ["FIELD", "VALUE"]
            assert "connectors:" in out and "running sessions:" in out and "TAG-OK" in out


            assert await edgectl(tmp_path, "log", "CP-1", "--kind", "actions") == 0
            actions = capsys.readouterr().out
            assert "edgectl:" in actions and "cli test" in actions

            assert await edgectl(tmp_path, "log", "CP-1", "--limit", "4") == 0
            frames = capsys.readouterr().out.splitlines()
            assert len(frames) == 5 and "Reset" in frames[-2]

            # This test charger has no RemoteStopTransaction handler: an error (exit 1), the reason logged.
            assert await edgectl(tmp_path, "stop", str(session["id"]), "--reason", "driver asked") == 1
            assert capsys.readouterr().out.startswith("CP-1 RemoteStopTransaction: error (actions log #")
            assert await edgectl(tmp_path, "log", "CP-1", "--kind", "actions", "--json") == 0
            assert json.loads(capsys.readouterr().out)[-1]["reason"] == "driver asked"

        assert await edgectl(tmp_path, "cmd", "CP-2", "Reset", "type=Soft", "--reason", "x", "--json") == 1
        assert json.loads(capsys.readouterr().out)["outcome"] == "not-connected"
        # An unknown charger is an error, not an empty log or a "not connected".
        for args in (("log", "NOPE"), ("cmd", "NOPE", "Reset", "type=Soft", "--reason", "x"),
                     ("start", "NOPE", "1", "TAG-OK")):
            assert await edgectl(tmp_path, *args) == 1
            assert "no charger 'NOPE' at this site" in capsys.readouterr().err


def test_cells_round_and_name_the_phases():
    from edge.ctl import cell as _cell

    assert _cell(12.3456) == "12.3" and _cell([1.04, None, 16.0]) == "L1 1.0 L2 - L3 16.0"
    assert _cell({"a": 1, "b": None}) == "a=1 b=-" and _cell(None) == "" and _cell(7) == "7" and _cell([]) == "-"


async def test_cli_reports_unreachable_edge(tmp_path, capsys):
    (tmp_path / "site.toml").write_text(site_toml(tmp_path).replace("[api]\nport = 0", "[api]\nport = 1"))
    (tmp_path / "api-token").write_text("t")
    assert await edgectl(tmp_path, "chargers") == 1
    assert "cannot reach the edge" in capsys.readouterr().err


def test_parse_params():
    assert parse_params(["connectorId=1", "idTag=04AB", "flag=true"], None) == {
        "connectorId": 1, "idTag": "04AB", "flag": True}
    assert parse_params(["a=1"], '{"b": {"c": 2}}') == {"b": {"c": 2}, "a": 1}


async def test_learn_an_unknown_tag_and_block_it(make_edge, tmp_path, capsys):
    async with make_edge() as edge:
        (tmp_path / "site.toml").write_text(
            site_toml(tmp_path).replace("[api]\nport = 0", f"[api]\nport = {edge.api.bound_port}"))
        async with charger(edge) as cp:
            assert (await cp.call(call.Authorize(id_tag="c0ffee01"))).id_tag_info["status"] == "Invalid"
            capsys.readouterr()
            assert await edgectl(tmp_path, "tags", "learn") == 0
            out = capsys.readouterr().out
            assert "c0ffee01" in out and "CP-1" in out
            assert await edgectl(tmp_path, "tags", "learn", "C0:FF:EE:01", "--group", "residents",
                                 "--user", "Flat 9") == 0
            assert "version 2" in capsys.readouterr().out
            # Accepted now, also when the reader reports the bytes reversed.
            assert (await cp.call(call.Authorize(id_tag="01EEFFC0"))).id_tag_info == {
                "status": "Accepted", "parent_id_tag": "residents"}
            assert await edgectl(tmp_path, "tags", "block", "c0ffee01") == 0
            capsys.readouterr()
            assert (await cp.call(call.Authorize(id_tag="c0ffee01"))).id_tag_info["status"] == "Blocked"
            assert await edgectl(tmp_path, "tags", "add", "X", "--group", "nobody") == 1
            err = capsys.readouterr().err
            assert 'user group "nobody" does not exist' in err
            assert await edgectl(tmp_path, "authorizations", "--status", "Blocked") == 0
            assert "C0FFEE01" in capsys.readouterr().out.upper()
