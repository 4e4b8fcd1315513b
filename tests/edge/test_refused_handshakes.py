"""Refused handshakes leave a trace: a network-log entry with the reason, a log
line, and `edgectl chargers` says why a charger is not there."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from edge.cli import main
from edge.journal import Store
from edge.ocpp import refusals, strangers
from edge.ocpp.refusals import Seen, subprotocol_refusal, to_note
from tests.edge.conftest import api_call, charger, ocpp_url, site_toml


async def _refused(edge, charger_id: str, subprotocols: list[str] | None) -> InvalidStatus:
    with pytest.raises(InvalidStatus) as err:
        async with connect(ocpp_url(edge, charger_id), subprotocols=subprotocols):
            pass
    return err.value


async def _network(edge, charger_id: str) -> list[dict]:
    await edge.presence.flush()
    return await edge.journal.read(Store.log, "network", charger_id)


async def test_a_charger_offering_only_an_unserved_version_is_told_why_and_shows_in_edgectl(make_edge, tmp_path, capsys, caplog):
    async with make_edge() as edge:
        (tmp_path / "site.toml").write_text(
            site_toml(tmp_path).replace("[api]\nport = 0", f"[api]\nport = {edge.api.bound_port}"))
        err = await _refused(edge, "CP-2", ["ocpp2.1"])
        assert err.response.status_code == 400
        assert b"offers only ocpp2.1" in err.response.body and b"ocpp1.6" in err.response.body
        assert "handshake refused charger=CP-2: offers only ocpp2.1" in caplog.text

        [row] = [r for r in await _network(edge, "CP-2") if r["event"] == "refused"]
        assert row["detail"].startswith("offers only ocpp2.1")

        capsys.readouterr()
        assert await asyncio.to_thread(main, ["chargers", "--config", str(tmp_path / "site.toml"),
                                              "--state-dir", str(tmp_path)]) == 0
        out = capsys.readouterr().out
        cp2 = next(line for line in out.splitlines() if line.startswith("CP-2"))
        assert "never-connected" not in cp2
        assert "refused: offers only ocpp2.1" in cp2 and row["at"] in cp2

        assert await asyncio.to_thread(main, ["chargers", "show", "CP-2", "--json", "--config",
                                              str(tmp_path / "site.toml"), "--state-dir", str(tmp_path)]) == 0
        shown = json.loads(capsys.readouterr().out)
        assert shown["last_refusal"]["reason"].startswith("offers only ocpp2.1")

        # Once it connects right, the list no longer shows the old refusal.
        async with charger(edge, "CP-2", password=None):
            pass
        assert await asyncio.to_thread(main, ["chargers", "--config", str(tmp_path / "site.toml"),
                                              "--state-dir", str(tmp_path)]) == 0
        cp2 = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("CP-2"))
        assert "refused" not in cp2


async def test_no_subprotocol_and_a_wrong_case_say_so(edge):
    err = await _refused(edge, "CP-2", None)
    assert err.response.status_code == 400 and b"offers no subprotocol" in err.response.body
    err = await _refused(edge, "CP-2", ["OCPP1.6"])
    assert b"case-sensitive" in err.response.body
    details = [r["detail"] for r in await _network(edge, "CP-2") if r["event"] == "refused"]
    assert len(details) == 2 and any("no subprotocol" in d for d in details)


async def test_ocpp16_among_others_is_served(edge):
    async with connect(ocpp_url(edge, "CP-2"), subprotocols=["ocpp2.0.1", "ocpp1.6"]) as ws:
        assert ws.subprotocol == "ocpp1.6"


async def test_a_charger_retrying_with_the_same_fault_is_one_entry_a_minute(edge):
    for _ in range(5):
        await _refused(edge, "CP-2", ["ocpp2.1"])
    assert len([r for r in await _network(edge, "CP-2") if r["event"] == "refused"]) == 1


def test_coalescing_rule():
    assert to_note(None, "x", 0.0)
    assert not to_note(Seen("x", 0.0), "x", refusals.REPEAT_EVERY - 1)
    assert to_note(Seen("x", 0.0), "x", refusals.REPEAT_EVERY)
    assert to_note(Seen("x", 0.0), "y", 1.0)
    served = ["ocpp1.6", "ocpp2.0.1"]
    assert subprotocol_refusal(["ocpp1.6"], served) is None
    assert subprotocol_refusal(["ocpp2.1", "ocpp2.0.1"], served) is None
    assert subprotocol_refusal(["ocpp2.0", "ocpp2.1"], served) == \
        "offers only ocpp2.0, ocpp2.1 (the subprotocols this central system speaks are ocpp1.6 and ocpp2.0.1)"
    assert "case-sensitive" in subprotocol_refusal(["OCPP2.0.1"], served)


async def test_an_unknown_id_rejected_at_boot_is_noted(make_edge):
    async with make_edge(unknown="reject") as edge:
        async with charger(edge, "NEW-1", password=None, boot=False) as cp:
            from ocpp.v16 import call
            answer = await cp.call(call.BootNotification(charge_point_vendor="Acme", charge_point_model="X"))
            assert answer.status == "Rejected"
        [row] = [r for r in await _network(edge, "NEW-1") if r["event"] == "refused"]
        assert "unknown charge point id" in row["detail"]
        listed = await api_call(edge, "GET", "/refused-handshakes")
        assert [r["charger_id"] for r in listed] == ["NEW-1"]


async def test_refused_strangers_cost_a_bounded_record(make_edge):
    """300 unknown ids each offering the wrong subprotocol: notes are rate-limited and
    trimmed like any stranger's logs."""
    async with make_edge(unknown="pending") as edge:
        for i in range(300):
            await _refused(edge, f"BAD-{i:03d}", ["ocpp2.1"])
        await edge.presence.flush()
        await edge.ocpp.tidy()
        rows = await edge.journal.read(
            lambda store: store.conn.execute("SELECT count(*), count(DISTINCT charger_id) FROM network_log "
                                             "WHERE charger_id LIKE 'BAD-%'").fetchone())
        assert rows[0] <= strangers.STRANGERS_KEPT and rows[1] <= strangers.STRANGERS_KEPT
        assert edge.ocpp.refusals.count == 300
