"""The web page's login over real HTTP (no browser): the password, the session cookie, CSRF, back-off,
read-only access and a box without a password; the bearer token beside it."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from edge.ocpp.security import hash_password
from edge.web.page.logins import COOKIE, Logins, is_loopback, write_password_hash

PASSWORD = "installer pw 1"


def web(read_only: bool = False, password: str | None = PASSWORD) -> str:
    lines = ["[web]", f"read_only_without_login = {str(read_only).lower()}"]
    if password:
        lines.append(f'installer_password_hash = "{hash_password(password)}"')
    return "\n".join(lines) + "\n"


def client() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))   # unsafe: cookies from an IP address


async def login(http: aiohttp.ClientSession, base: str, password: str) -> tuple[int, dict]:
    async with http.post(base + "/web/login", json={"password": password}) as resp:
        return resp.status, await resp.json()


async def test_cookie_session_with_csrf(make_edge) -> None:
    async with make_edge(extra=web()) as edge:
        base = f"http://127.0.0.1:{edge.api.bound_port}"
        async with client() as http:
            async with http.get(base + "/api/v1/tokens") as resp:
                assert resp.status == 401                       # nothing without a login
            assert (await login(http, base, "wrong"))[0] == 401
            async with http.post(base + "/web/login", json={"password": PASSWORD}) as resp:
                assert resp.status == 200
                body, set_cookie = await resp.json(), resp.headers["Set-Cookie"]
            assert body["csrf"] and set_cookie.startswith(COOKIE + "=")
            assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie and "Secure" not in set_cookie
            async with http.get(base + "/api/v1/tokens") as resp:
                assert resp.status == 200
            new = {"id_tag": "WEB-1", "user_group": "residents"}
            async with http.post(base + "/api/v1/tokens", json=new) as resp:
                assert resp.status == 403 and "CSRF" in (await resp.json())["error"]
            async with http.post(base + "/api/v1/tokens", json=new, headers={"X-CSRF-Token": "forged"}) as resp:
                assert resp.status == 403
            assert edge.authorizer.model.find("WEB-1") is None
            async with http.post(base + "/api/v1/tokens", json=new, headers={"X-CSRF-Token": body["csrf"]}) as resp:
                assert resp.status == 200
            assert edge.authorizer.model.find("WEB-1") is not None
            async with http.post(base + "/web/logout", headers={"X-CSRF-Token": body["csrf"]}) as resp:
                assert resp.status == 200
            async with http.get(base + "/api/v1/tokens") as resp:
                assert resp.status == 401
        # edgectl's bearer token is unchanged, and a wrong one is refused even with a cookie.
        async with client() as http:
            async with http.get(base + "/api/v1/tokens", headers={"Authorization": "Bearer nope"}) as resp:
                assert resp.status == 401


async def test_back_off_after_wrong_passwords(make_edge) -> None:
    async with make_edge(extra=web()) as edge:
        base = f"http://127.0.0.1:{edge.api.bound_port}"
        async with client() as http:
            statuses = [(await login(http, base, f"guess {i}"))[0] for i in range(6)]
            assert statuses[:5] == [401] * 5 and statuses[5] == 429
            status, body = await login(http, base, PASSWORD)   # barred: the right password waits too
            assert status == 429 and "try again" in body["error"]


async def test_read_only_only_when_configured(make_edge, tmp_path: Path) -> None:
    async with make_edge(extra=web(read_only=True)) as edge:
        base = f"http://127.0.0.1:{edge.api.bound_port}"
        async with client() as http:
            async with http.get(base + "/api/v1/web/session") as resp:
                assert (await resp.json())["read_only"] is True
            async with http.get(base + "/api/v1/dlm") as resp:
                assert resp.status == 200
            async with http.get(base + "/api/v1/tokens") as resp:
                assert resp.status == 401                       # cards and people are not for viewers
            async with http.post(base + "/api/v1/chargers/CP-1/commands/Reset", json={"reason": "x"}) as resp:
                assert resp.status == 401


async def test_no_password_no_login(make_edge, tmp_path: Path) -> None:
    async with make_edge(extra=web(password=None)) as edge:
        base = f"http://127.0.0.1:{edge.api.bound_port}"
        async with client() as http:
            async with http.get(base + "/") as resp:
                assert resp.status == 200 and "login" in await resp.text()
            status, body = await login(http, base, "anything")
            assert status == 409 and "edgectl web password" in body["error"]
            # `edgectl web password` writes the hash to the state directory: the next login uses it.
            write_password_hash(tmp_path / "web-password", hash_password("from edgectl"))
            assert (await login(http, base, "from edgectl"))[0] == 200


def test_off_loopback_without_password_shows_nothing(tmp_path: Path) -> None:
    logins = Logins(password_file=tmp_path / "none", config_hash=None, session_seconds=60,
                    read_only_without_login=True, loopback=is_loopback("0.0.0.0"))
    assert not logins.read_only
    logins = Logins(password_file=tmp_path / "none", config_hash=None, session_seconds=60,
                    read_only_without_login=True, loopback=is_loopback("127.0.0.1"))
    assert logins.read_only and is_loopback("::1") and is_loopback("localhost") and not is_loopback("192.168.1.5")


async def test_open_live_stream_does_not_hold_up_a_stop(make_edge) -> None:
    """A page left open keeps an SSE stream: stopping the edge must not wait for it (running_edge allows 20 s)."""
    async with client() as http:
        async with make_edge(extra=web(read_only=True)) as edge:
            resp = await http.get(f"http://127.0.0.1:{edge.api.bound_port}/api/v1/web/live")
            assert resp.status == 200
            first = await resp.content.readuntil(b"\n\n")
            assert first.startswith(b"event: snapshot\ndata: {")
        resp.close()
