"""The edge owns its chargers' keys: rotation through real WebSockets, the old key
accepted until the new one is used, keys masked everywhere, security profiles
the edge cannot serve refused before anything is sent."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import pytest
from ocpp.routing import on
from ocpp.v16 import call_result
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from edge.cli import main
from edge.ocpp import credentials as keys_module
from edge.ocpp.security_words import authorization_key_value
from tests.edge.conftest import PASSWORD, Charger, api_call, basic, charger, ocpp_url, site_toml


class KeyedCharger(Charger):
    """A charger as the 1.6 Security Whitepaper has it: ChangeConfiguration(AuthorizationKey)
    stores the hex digits, and it presents the bytes they stand for at its next connection.
    Its GetConfiguration returns the key in clear (some real ones do)."""

    authorization_key: str | None = None
    close_before_answer = False

    @on("ChangeConfiguration")
    async def on_change_configuration(self, key: str, value: str, **kwargs):
        self.received.append(("ChangeConfiguration", {"key": key, "value": value}))
        if key == "AuthorizationKey":
            type(self).authorization_key = value   # kept across connections, like a charger's flash
            if self.close_before_answer:
                # Power cut right after the key was written: the answer never leaves.
                await self._connection.close()
                await asyncio.sleep(5)
        return call_result.ChangeConfiguration(status="Accepted")

    @on("GetConfiguration")
    def on_get_configuration(self, **kwargs):
        return call_result.GetConfiguration(configuration_key=[
            {"key": "AuthorizationKey", "readonly": False, "value": type(self).authorization_key or ""},
            {"key": "HeartbeatInterval", "readonly": False, "value": "300"}])


@contextlib.asynccontextmanager
async def keyed(edge, password: str, charger_id: str = "CP-1", *, close_before_answer: bool = False):
    async with connect(ocpp_url(edge, charger_id), subprotocols=["ocpp1.6"],
                       additional_headers=basic(charger_id, password)) as ws:
        cp = KeyedCharger(charger_id, ws)
        cp.close_before_answer = close_before_answer
        task = asyncio.create_task(cp.start())
        try:
            yield cp
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def _status(edge, password: str, charger_id: str = "CP-1") -> int:
    """The HTTP status of a handshake with this password (101: let in)."""
    try:
        async with connect(ocpp_url(edge, charger_id), subprotocols=["ocpp1.6"],
                           additional_headers=basic(charger_id, password)):
            return 101
    except InvalidStatus as err:
        return err.response.status_code


def _the_key() -> tuple[str, str]:
    """(the hex digits sent, the password they stand for)."""
    value = KeyedCharger.authorization_key
    assert value is not None
    return value, bytes.fromhex(value).decode("ascii")


@pytest.fixture(autouse=True)
def _fresh_charger_memory():
    KeyedCharger.authorization_key = None


async def test_TC_073_update_charge_point_password_for_http_basic_authentication(make_edge):
    """OCA TC_073 (CSMS): the central system sets a new AuthorizationKey with ChangeConfiguration; the
    charger reconnects with it. End to end, with the whitepaper's key format, the old key kept until
    the new one is used, and the new key surviving a restart of the edge."""
    async with make_edge() as edge:
        async with keyed(edge, PASSWORD):
            result = await api_call(edge, "POST", "/chargers/CP-1/password", body={"rotate": True})
        assert result["stored"] and result["command"]["outcome"] == "ok"
        assert result["command"]["response"] == {"status": "Accepted"}
        hex_value, new = _the_key()
        # The whitepaper's key: 20 bytes as 40 hex digits; the charger presents the 20 bytes.
        assert len(hex_value) == 40 and len(new) == 20
        state = await api_call(edge, "GET", "/chargers/CP-1/password")
        assert state["source"] == "journal" and len(state["new_keys"]) == 1
        assert state["new_keys"][0]["answer"] == "Accepted"

        # A charger that did not persist the change comes back with the old key: not locked out.
        assert await _status(edge, PASSWORD) == 101
        assert await _status(edge, new) == 101
        # Used once: the old key is gone, the new one is the charger's key.
        assert await _status(edge, PASSWORD) == 401
        assert await _status(edge, new) == 101
        state = await api_call(edge, "GET", "/chargers/CP-1/password")
        assert state["new_keys"] == [] and state["current_key"]["origin"] == "rotated"
        assert state["current_key"]["first_used_at"] and state["config_password_hash_ignored"]
        assert "key set by the edge, in use" == state["state"]
        assert "hash" not in str(state).replace("password_hash_ignored", "")

    # The journal's key wins over the config's after a restart too.
    async with make_edge() as edge:
        assert await _status(edge, new) == 101
        assert await _status(edge, PASSWORD) == 401


async def test_a_charger_presenting_the_hex_digits_is_let_in_too(edge):
    async with keyed(edge, PASSWORD):
        await api_call(edge, "POST", "/chargers/CP-1/password", body={"rotate": True})
    hex_value, _ = _the_key()
    assert await _status(edge, hex_value) == 101
    assert await _status(edge, PASSWORD) == 401


async def test_an_answer_lost_with_the_connection_still_lets_the_new_key_in(edge):
    """The charger wrote the key and lost power before answering: the edge cannot know
    which key it holds, so both are accepted until one of them proves it."""
    async with keyed(edge, PASSWORD, close_before_answer=True):
        result = await api_call(edge, "POST", "/chargers/CP-1/password", body={"rotate": True}, expect=409)
    assert result["command"]["outcome"] == "not-connected" and result["stored"]
    assert result["credentials"]["new_keys"][0]["answer"] == "unanswered"
    _, new = _the_key()
    assert await _status(edge, new) == 101
    assert await _status(edge, PASSWORD) == 401


class RefusingCharger(Charger):
    @on("ChangeConfiguration")
    def on_change_configuration(self, key: str, value: str, **kwargs):
        return call_result.ChangeConfiguration(status="Rejected")


async def test_a_rejected_key_changes_nothing(edge):
    async with connect(ocpp_url(edge, "CP-1"), subprotocols=["ocpp1.6"],
                       additional_headers=basic("CP-1", PASSWORD)) as ws:
        task = asyncio.create_task(RefusingCharger("CP-1", ws).start())
        result = await api_call(edge, "POST", "/chargers/CP-1/password", body={"rotate": True})
        task.cancel()
    assert result["command"]["outcome"] == "rejected" and not result["stored"]
    state = await api_call(edge, "GET", "/chargers/CP-1/password")
    assert state["source"] == "config" and state["new_keys"] == []
    assert await _status(edge, PASSWORD) == 101


async def test_rotation_needs_the_charger_online_and_known(edge):
    answer = await api_call(edge, "POST", "/chargers/CP-1/password", body={"rotate": True}, expect=409)
    assert "not connected" in answer["error"]
    await api_call(edge, "POST", "/chargers/NOPE/password", body={"rotate": True}, expect=404)
    answer = await api_call(edge, "POST", "/chargers/CP-1/password", body={"value": "mine"}, expect=400)
    assert "never takes a key" in answer["error"]


async def test_the_key_is_in_no_log_no_api_answer_and_not_in_the_journal_file(edge, caplog):
    caplog.set_level(logging.DEBUG)
    async with keyed(edge, PASSWORD):
        rotation = await api_call(edge, "POST", "/chargers/CP-1/password", body={"rotate": True})
    hex_value, new = _the_key()
    async with keyed(edge, new):
        # The charger answers GetConfiguration with the key in clear; the edge must not keep or show it.
        got = await api_call(edge, "POST", "/chargers/CP-1/commands/GetConfiguration",
                             body={"params": {"key": ["AuthorizationKey"]}, "reason": "audit"})
        assert got["outcome"] == "ok"
        [entry] = [e for e in got["response"]["configurationKey"] if e["key"] == "AuthorizationKey"]
        assert entry["value"] == "********"
    answers = [rotation, got]
    for log_name in ("communication", "actions", "network"):
        answers.append(await api_call(edge, "GET", f"/chargers/CP-1/logs/{log_name}?limit=1000"))
    answers.append(await api_call(edge, "GET", "/chargers/CP-1/password"))
    answers.append(await api_call(edge, "GET", "/chargers/CP-1"))
    text = str(answers)
    assert "ChangeConfiguration" in text and "********" in text   # the logs are there, masked
    journal = Path(edge.journal_path)
    stored = b"".join(p.read_bytes() for p in journal.parent.glob(journal.name + "*"))
    # Process logs, but the ocpp and websockets libraries', which print frames and headers and which
    # edge/logs.py holds at WARNING.
    own_logs = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith(("ocpp", "websockets")))
    for form in (hex_value, new, hex_value.upper()):
        assert form not in text
        assert form.encode() not in stored
        assert form not in own_logs


async def test_an_operator_cannot_type_a_key_or_a_profile_the_edge_cannot_serve(edge):
    async with charger(edge) as cp:
        for params, words in (({"key": "AuthorizationKey", "value": "00112233445566778899aabbccddeeff"},
                               "chargers password CP-1 --rotate"),
                              ({"key": "authorizationkey", "value": "00112233445566778899aabbccddeeff"},
                               "chargers password CP-1 --rotate"),
                              ({"key": "SecurityProfile", "value": "2"}, "needs TLS"),
                              ({"key": "SecurityProfile", "value": "3"}, "needs TLS"),
                              ({"key": "SecurityProfile", "value": "0"}, "refused at every connection"),
                              ({"key": "SecurityProfile", "value": "two"}, "must be a number")):
            result = await api_call(edge, "POST", "/chargers/CP-1/commands/ChangeConfiguration",
                                    body={"params": params, "reason": "test"}, expect=400)
            assert result["outcome"] == "invalid" and words in result["response"], result
        assert [r for r in cp.received if r[0] == "ChangeConfiguration"] == []   # nothing was sent
        ok = await api_call(edge, "POST", "/chargers/CP-1/commands/ChangeConfiguration",
                            body={"params": {"key": "SecurityProfile", "value": "1"}, "reason": "test"})
        assert ok["outcome"] == "ok"
        actions = await api_call(edge, "GET", "/chargers/CP-1/logs/actions")
        assert "00112233445566778899aabbccddeeff" not in str(actions)


async def test_profile_0_is_fine_for_a_charger_without_password(edge):
    async with charger(edge, "CP-2", password=None):
        ok = await api_call(edge, "POST", "/chargers/CP-2/commands/ChangeConfiguration",
                            body={"params": {"key": "SecurityProfile", "value": "0"}, "reason": "test"})
        assert ok["outcome"] == "ok"


async def test_a_charger_without_password_gets_one(edge):
    """CP-2 has no password_hash: rotating gives it a key, and no password is needed until the key is used."""
    async with keyed(edge, "anything", charger_id="CP-2"):
        result = await api_call(edge, "POST", "/chargers/CP-2/password", body={"rotate": True})
    assert result["stored"]
    _, new = _the_key()
    assert await _status(edge, "still-anything", "CP-2") == 101
    assert await _status(edge, new, "CP-2") == 101
    assert await _status(edge, "still-anything", "CP-2") == 401
    await api_call(edge, "POST", "/chargers/CP-2/password", body={"forget": True})
    assert await _status(edge, "anything-again", "CP-2") == 101


async def test_edgectl_rotates_and_shows_the_state_never_the_key(make_edge, tmp_path, capsys):
    async with make_edge() as edge:
        (tmp_path / "site.toml").write_text(
            site_toml(tmp_path).replace("[api]\nport = 0", f"[api]\nport = {edge.api.bound_port}"))
        run = lambda *args: asyncio.to_thread(main, [args[0], "--config", str(tmp_path / "site.toml"),   # noqa: E731
                                                     "--state-dir", str(tmp_path), *args[1:]])
        async with keyed(edge, PASSWORD):
            capsys.readouterr()
            assert await run("chargers", "password", "CP-1", "--rotate", "--reason", "yearly") == 0
        out = capsys.readouterr().out
        hex_value, new = _the_key()
        assert "Accepted" in out and "waiting for its first use" in out
        assert await run("chargers", "show", "CP-1", "--json") == 0
        shown = capsys.readouterr().out
        assert '"source": "journal"' in shown and "waiting for its first use" in shown
        assert hex_value not in out + shown and new not in out + shown
        assert await run("log", "CP-1", "--kind", "actions") == 0
        actions = capsys.readouterr().out
        assert "yearly" in actions and hex_value not in actions


def test_new_keys_are_whitepaper_keys():
    for _ in range(200):
        password = keys_module.new_password()
        value = authorization_key_value(password)
        assert len(password) == 20 and password.isalnum() and len(value) == 40
        assert keys_module.login_form(value, "rotated") == password
        assert keys_module.login_form(password, "rotated") == password
        assert keys_module.login_form(value, "config") == value   # an operator's own password is taken as is
