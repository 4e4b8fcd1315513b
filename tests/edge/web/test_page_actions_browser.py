"""The installer's actions and the commissioning section of the web page, in a real headless Chromium (Debian's
/usr/bin/chromium via playwright), against a real edge, the real simulated SDM630 grid meter (Modbus TCP) and two
simulated chargers over OCPP: charger B is wired STR while the config says RST (test_commission_e2e's site).

One edge, one browser and one logged-in page for the module (starting them is most of the cost); each test leaves
the chargers as it found them. Screenshots go to a tmp dir (and, with WEB_SCREENSHOTS=DIR, to DIR).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
import pytest_asyncio

from edge.config import parse_config
from edge.journal import Store
from edge.ocpp.security import hash_password
from tests.edge.commission.test_commission_e2e import miswired_site
from tests.edge.conftest import running_edge, site_toml, wait_for
from tests.edge.dlm.test_closed_loop import charge
from tests.edge.web.test_page_browser import CHROMIUM, PASSWORD, shots

playwright_api = pytest.importorskip("playwright.async_api")
pytestmark = [pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed "
                                                                     "(scripts/test installs it)"),
              pytest.mark.asyncio(loop_scope="module")]
INSTALLER = "installer (web page)"


class Page:
    """What the module's tests share: the edge, the simulated site, the logged-in page and its console errors."""

    def __init__(self, edge: Any, site: Any, page: Any, base: str, shot: Any, errors: list[str]):
        self.edge, self.site, self.page, self.base, self.shot, self.errors = edge, site, page, base, shot, errors

    async def actions(self, charger_id: str) -> list[dict[str, Any]]:
        return await self.edge.journal.read(Store.log, "actions", charger_id, 50, None)

    def received(self, charger_id: str, action: str) -> list[dict[str, Any]]:
        """What the simulated charger answered to `action` (its own record of the requests it got)."""
        return [d for name, d in self.site.sims[charger_id].events if name == "request" and d["action"] == action]

    async def act(self, charger_id: str, kind: str, reason: str, *, connector: int = 1, tag: str = "") -> str:
        """Send one action from the page's action form; the result line the page shows."""
        page = self.page
        await page.click("a[href='#chargers']")
        await page.select_option("#action-charger", charger_id)
        await page.fill("#action-connector", str(connector))
        await page.select_option("#action-kind", kind)
        await page.fill("#action-tag", tag)
        await page.fill("#action-reason", reason)
        await page.evaluate("document.querySelector('#action-result').textContent = ''")
        await page.click("#action-form button[type=submit]")
        # (Locators, not wait_for_function: the page's Content-Security-Policy forbids the eval that polls it.)
        await page.locator("#action-result", has_text=re.compile(r": |failed")).wait_for()
        return await page.text_content("#action-result")


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("edge")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def ui(state_dir: Path) -> AsyncIterator[Page]:
    web = f'\n[web]\ninstaller_password_hash = "{hash_password(PASSWORD)}"\n'

    def make_edge(**kw: Any) -> contextlib.AbstractAsyncContextManager:
        kw["extra"] = kw.get("extra", "") + web
        return running_edge(parse_config(site_toml(state_dir, **kw), "test.toml", state_dir=str(state_dir)))

    async with miswired_site(make_edge) as (edge, site), playwright_api.async_playwright() as pw:
        for sim in site.sims.values():
            await sim.wait_online()
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        base = f"http://127.0.0.1:{edge.api.bound_port}"
        context = await browser.new_context(viewport={"width": 1100, "height": 900})
        await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
        page = await context.new_page()
        page.set_default_timeout(8000)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        await page.goto(base + "/")
        await page.fill("#password", PASSWORD)
        await page.click("#login-form button")
        await page.wait_for_selector("#who-text:text-is('installer')")
        # The chargers' list is loaded (the action form's charger choice comes from it).
        await page.wait_for_selector("#action-charger option[value=B]", state="attached")
        try:
            yield Page(edge, site, page, base, shots(state_dir / "screenshots"), errors)
        finally:
            await browser.close()


@pytest.fixture(autouse=True)
def no_page_errors(ui: Page):
    """Every test: no script error and no refused API call on the page (what a test expects to be refused, it
    takes out of the list itself)."""
    ui.errors.clear()
    yield
    assert not ui.errors, ui.errors


async def test_unlock_reaches_the_charger_with_its_reason(ui: Page) -> None:
    result = await ui.act("A", "unlock", "browser test: cable stuck")
    assert result.startswith("UnlockConnector to A: ok"), result
    await wait_for(lambda: ui.received("A", "UnlockConnector"), what="the charger's UnlockConnector")
    assert ui.received("A", "UnlockConnector")[-1] == {"action": "UnlockConnector", "status": "Unlocked",
                                                       "connector_id": 1}
    logged = [a for a in await ui.actions("A") if a["action"] == "UnlockConnector"]
    assert logged[0]["reason"] == "browser test: cable stuck" and logged[0]["actor"] == INSTALLER
    assert logged[0]["outcome"] == "ok"


async def test_an_action_without_a_reason_is_not_sent(ui: Page) -> None:
    before = len(ui.received("A", "UnlockConnector"))
    await ui.page.fill("#action-reason", "")
    await ui.page.click("#action-form button[type=submit]")
    # The browser's own check of the required field stops it: nothing reaches the edge or the charger.
    assert await ui.page.evaluate("document.querySelector('#action-reason').validity.valueMissing")
    assert len(ui.received("A", "UnlockConnector")) == before


async def test_change_availability_both_ways(ui: Page) -> None:
    result = await ui.act("B", "inoperative", "browser test: out of service for repair")
    assert result.startswith("ChangeAvailability to B: ok") and "Accepted" in result, result
    connector = ui.site.sims["B"].connectors[1]
    await wait_for(lambda: not connector.operative, what="B/1 inoperative on the charger")
    # Its StatusNotification says so to the edge, and the page shows it with the next live snapshot
    # (each second), not only at its 10 s list refresh.
    await wait_for_status(ui, "B", "Unavailable")
    await ui.page.wait_for_selector("#connectors tr[data-key='B/1'] td:text-is('Unavailable')", timeout=3000)

    result = await ui.act("B", "operative", "browser test: repaired")
    assert result.startswith("ChangeAvailability to B: ok"), result
    await wait_for(lambda: connector.operative, what="B/1 operative again")
    await wait_for_status(ui, "B", "Available")
    await ui.page.wait_for_selector("#connectors tr[data-key='B/1'] td:text-is('Available')", timeout=3000)
    logged = [a for a in await ui.actions("B") if a["action"] == "ChangeAvailability"][:2]
    assert [a["reason"] for a in logged] == ["browser test: repaired", "browser test: out of service for repair"]
    assert {a["actor"] for a in logged} == {INSTALLER} and {a["outcome"] for a in logged} == {"ok"}


async def wait_for_status(ui: Page, charger_id: str, status: str, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        rows = await ui.edge.journal.read(Store.connectors, charger_id)
        if any(r["connector_id"] == 1 and r["status"] == status for r in rows):
            return
        if loop.time() > deadline:
            raise AssertionError(f"{charger_id}/1 never reported {status}: {rows}")
        await asyncio.sleep(0.05)


async def test_remote_start_then_remote_stop(ui: Page) -> None:
    sim = ui.site.sims["A"]
    result = await ui.act("A", "start", "browser test: driver without a card", tag="TAG-OK")
    assert result.startswith("RemoteStartTransaction to A: ok") and "Accepted" in result, result
    await wait_for(lambda: sim.connectors[1].transaction is not None, what="a transaction on A/1")
    # The running session shows on the page (live, once a second), with its number: the one to stop.
    cell = ui.page.locator("#connectors tr[data-key='A/1'] td", has_text="TAG-OK")
    await cell.wait_for()
    session = int((await cell.text_content()).split()[0].lstrip("#"))
    assert session == sim.connectors[1].transaction.id
    await ui.shot(ui.page.locator("#chargers"), "remote-start")

    result = await ui.act("A", "stop", "browser test: driver asked by phone", tag=str(session))
    assert result.startswith("RemoteStopTransaction to A: ok") and "Accepted" in result, result
    await wait_for(lambda: sim.connectors[1].transaction is None, what="the transaction stopped on A/1")
    rows = await ui.edge.journal.read(Store.transactions, charger_id="A", state="completed", limit=5)
    assert rows[0]["id"] == session and rows[0]["stop_reason"] == "Remote"
    logged = {a["action"]: a for a in await ui.actions("A") if a["actor"] == INSTALLER}
    assert logged["RemoteStartTransaction"]["reason"] == "browser test: driver without a card"
    assert logged["RemoteStopTransaction"]["reason"] == "browser test: driver asked by phone"
    await ui.page.locator("#connectors tr[data-key='A/1'] td", has_text="TAG-OK").wait_for(state="detached")


async def test_add_a_card_then_block_it(ui: Page) -> None:
    page, sim = ui.page, ui.site.sims["A"]
    await page.click("a[href='#authorizations']")
    await page.fill("#token-tag", "04:A2:B3:C4:D5:E6:F7")
    await page.select_option("#token-group", "residents")
    await page.click("#token-form button[type=submit]")
    row = page.locator("#token-list tr[data-tag='04A2B3C4D5E6F7'], #token-list tr[data-tag='04:A2:B3:C4:D5:E6:F7']")
    await row.wait_for()
    assert await row.locator("td").nth(3).text_content() == "Active"
    token = ui.edge.authorizer.model.find("04:A2:B3:C4:D5:E6:F7")
    assert token is not None and token.user_group == "residents" and token.status == "Active"
    assert await sim.authorize("04A2B3C4D5E6F7") == "Accepted"

    await row.locator("button", has_text="block").click()
    await row.locator("td:text-is('Blocked')").wait_for()
    assert ui.edge.authorizer.model.find("04:A2:B3:C4:D5:E6:F7").status == "Blocked"
    assert await sim.authorize("04A2B3C4D5E6F7") == "Blocked"
    await ui.shot(page.locator("#authorizations"), "tokens")


async def test_commissioning_checks_without_consent_step_nothing(ui: Page) -> None:
    page = ui.page
    await page.click("a[href='#commissioning']")
    await page.fill("#commission-reason", "browser test: handover")
    await page.click("#commission-run")
    await page.wait_for_selector("#commission-status:has-text('OK: 0 failure(s)')", timeout=20000)
    statuses = await page.eval_on_selector_all(
        "#commission-checks tbody tr", "rows => Object.fromEntries(rows.map(r => [r.dataset.check, r.dataset.status]))")
    assert statuses["config"] == "pass"
    assert statuses["meter grid-meter: voltage"] == "pass" and statuses["meter grid-meter: reachable"] == "pass"
    for cid in ("A", "B"):
        assert statuses[f"charger {cid}: connected"] == "pass" and statuses[f"charger {cid}: smart charging"] == "pass"
    assert statuses["uplink"] == "skip"
    assert not [name for name in statuses if name.endswith(": rotation")]
    assert await page.locator("#commission-rotation > *").count() == 0
    # The run is in the actions log with who asked and why; no charger was stepped.
    run = (await ui.actions("*"))[0]
    assert (run["action"], run["actor"], run["reason"], run["outcome"]) == (
        "Commission", INSTALLER, "browser test: handover", "ok")
    for cid in ("A", "B"):
        assert not [a for a in await ui.actions(cid) if a["action"] == "SetChargingProfile"
                    and a["actor"] == "edge:commission"]
    await ui.shot(page.locator("#commissioning"), "commissioning-checks")


async def test_commissioning_rotation_names_the_miswired_charger(ui: Page) -> None:
    page = ui.page
    for cid, tag in (("A", "TAG-OK"), ("B", "TAG-2")):
        await charge(ui.site.sims[cid], tag, car_phases=1)      # a 1-phase car shows the rotation
    await page.click("a[href='#commissioning']")
    await page.fill("#commission-reason", "browser test: rotation")
    await page.click("#rotation-ask")
    # The confirm step says what it does; cancelling runs nothing.
    confirm = page.locator("#rotation-confirm")
    await confirm.wait_for()
    assert "0 A" in await confirm.text_content()
    await page.click("#rotation-no")
    await confirm.wait_for(state="hidden")
    await page.click("#rotation-ask")
    await page.click("#rotation-yes")

    # Progress while it runs: the stage, the steps so far.
    await page.wait_for_selector("#commission-progress li:has-text('step to 0 A')")
    assert (await page.text_content("#commission-status")).startswith("Running")
    assert await page.is_disabled("#commission-run")
    await ui.shot(page, "commissioning-running")
    await page.wait_for_selector("#commission-status:has-text('FAILED')", timeout=60000)

    b = page.locator("#commission-rotation .rotation[data-charger=B]")
    assert "verdict-mismatch" in (await b.get_attribute("class")).split()
    assert "configured RST, the meter shows STR" in await b.text_content()
    lines = '[[chargers]]\nid = "B"\nrotation = "STR"'
    assert await b.locator("pre.config-lines").text_content() == lines
    a = page.locator("#commission-rotation .rotation[data-charger=A]")
    assert "verdict-ok" in (await a.get_attribute("class")).split() and await a.locator("pre").count() == 0
    failing = await page.eval_on_selector_all("#commission-checks tbody tr[data-status=fail]",
                                              "rows => rows.map(r => r.dataset.check)")
    assert failing == ["charger B/1: rotation"]
    await b.locator("button.copy").click()
    await b.locator("button.copy:text-is('Copied')").wait_for()
    assert await page.evaluate("navigator.clipboard.readText()") == lines
    await ui.shot(page.locator("#commissioning"), "commissioning")

    # The steps are in the actions log with the installer's reason; the run with who asked.
    steps = [a for a in await ui.actions("B") if a["actor"] == "edge:commission"
             and a["reason"].startswith("commissioning (browser test: rotation)")]
    assert {a["action"] for a in steps} >= {"GetConfiguration", "SetChargingProfile", "ClearChargingProfile"}
    run = (await ui.actions("*"))[0]
    assert (run["actor"], run["reason"]) == (INSTALLER, "browser test: rotation")
    assert '"detect_rotation": true' in run["request"]

    # On a phone the section fits the screen's width.
    await page.set_viewport_size({"width": 390, "height": 844})
    await page.click("a[href='#commissioning']")
    assert await page.evaluate("(() => { const s = document.querySelector('#commissioning');"
                               " return s.scrollWidth <= s.clientWidth + 1; })()")
    await ui.shot(page.locator("#commissioning"), "commissioning-phone")
    await page.set_viewport_size({"width": 1100, "height": 900})
