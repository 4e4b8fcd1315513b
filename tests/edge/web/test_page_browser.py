"""The web page in a real headless Chromium (Debian's /usr/bin/chromium, driven by playwright) against a real
edge: a real pymodbus grid meter whose base load the test changes, and a simulated charger over OCPP.

One browser and one page for the module's flow; screenshots go to the test's tmp_path (and, with
WEB_SCREENSHOTS=DIR, to DIR: that is how docs/images/ was made).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import aiohttp
import pytest

from edge.journal import Store
from edge.ocpp.security import hash_password
from simulator.charge_point import SimulatedChargePoint
from simulator.meter import SimulatedMeter
from tests.edge.dlm.test_closed_loop import Site, config

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "correct horse 7"
playwright_api = pytest.importorskip("playwright.async_api")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed "
                                                                  "(scripts/test installs it)")


def shots(tmp_path: Path):
    """shot(page or locator, name): a screenshot kept in tmp_path (and copied to $WEB_SCREENSHOTS when set)."""
    extra = os.environ.get("WEB_SCREENSHOTS")
    tmp_path.mkdir(parents=True, exist_ok=True)

    async def shot(target, name: str, **kw) -> None:
        path = tmp_path / f"{name}.png"
        await target.screenshot(path=str(path), **kw)
        if extra:
            Path(extra).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(extra) / path.name)
    return shot


async def live_value(page, circuit: str, phase: str) -> float | None:
    text = await page.text_content(f"#circuit-{circuit} svg.live text.now[data-phase={phase}]")
    try:
        return float(text.split()[1])
    except (AttributeError, IndexError, ValueError):
        return None


async def test_installer_page(make_edge, tmp_path: Path) -> None:
    shot = shots(tmp_path)
    wiring = {"CP-A": (3, "RST", "L1")}
    site = Site(wiring)
    site.base = [8.0, 5.0, 3.0]
    meter = SimulatedMeter(site.currents)
    port = await meter.start_tcp()
    extra, chargers = config(f'transport = "tcp"\nhost = "127.0.0.1"\nport = {port}', wiring, limit=40)
    extra += f'\n[web]\ninstaller_password_hash = "{hash_password(PASSWORD)}"\n'
    try:
        async with make_edge(extra=extra, chargers=chargers) as edge, \
                playwright_api.async_playwright() as pw:
            sim = SimulatedChargePoint("CP-A", f"ws://127.0.0.1:{edge.ocpp.bound_port}/ocpp", reconnect_delay=0.1,
                                       meter_interval=0.3, ramp_seconds=0.2, phases=3)
            sim_task = asyncio.create_task(sim.run())
            try:
                await sim.wait_accepted()
                await sim.wait_online()
                site.sims = {"CP-A": sim}
                assert await sim.authorize("DE:AD:BE:EF") == "Invalid"    # an unknown card, to learn
                assert sim._latest["authorize"]["source"] == "central system", sim._latest["authorize"]
                base = f"http://127.0.0.1:{edge.api.bound_port}"
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                context = await browser.new_context(viewport={"width": 1100, "height": 900}, accept_downloads=True)
                page = await context.new_page()
                page.set_default_timeout(8000)
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
                page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
                await page.goto(base + "/")

                # A wrong password is refused, and says so.
                await page.fill("#password", "not the password")
                await page.click("#login-form button")
                await page.wait_for_selector("#login-error:has-text('wrong password')")
                await shot(page, "login-refused")

                await page.fill("#password", PASSWORD)
                await page.click("#login-form button")
                await page.wait_for_selector("#circuit-grid svg.live polyline[data-phase=L1]", state="attached")
                # A locator, not wait_for_function: the page's CSP forbids the eval wait_for_function polls with.
                await page.wait_for_selector("#who-text:text-is('installer')")

                # The live chart follows the meter: the building's L1 goes from 8 A to 23 A.
                await wait_for_value(page, "grid", "L1", lambda v: abs(v - 8.0) < 0.6)
                before = await page.get_attribute("#circuit-grid svg.live polyline[data-phase=L1]", "points")
                site.base = [23.0, 5.0, 3.0]
                await wait_for_value(page, "grid", "L1", lambda v: abs(v - 23.0) < 0.6)
                after = await page.get_attribute("#circuit-grid svg.live polyline[data-phase=L1]", "points")
                assert before != after
                await shot(page, "site", full_page=False)

                # Learn the unknown card into a group, with one click.
                await page.click("a[href='#authorizations']")
                learn = page.locator("button.learn[data-tag='DE:AD:BE:EF']")
                await learn.wait_for()
                await page.select_option("#learn-group", "residents")
                await learn.click()
                await page.wait_for_selector("#token-list tr[data-tag='DEADBEEF'], "
                                             "#token-list tr[data-tag='DE:AD:BE:EF']")
                token = edge.authorizer.model.find("DE:AD:BE:EF")
                assert token is not None and token.user_group == "residents"
                await page.locator("#authorizations").screenshot(path=str(tmp_path / "cards.png"))

                # Reset the charger from the page, with a reason: the simulated charger receives a soft Reset.
                await page.select_option("#action-charger", "CP-A")
                await page.select_option("#action-kind", "soft")
                await page.fill("#action-reason", "browser test: soft reset")
                await page.click("#action-form button")
                await page.wait_for_selector("#action-result:has-text('Reset to CP-A: ok')")
                assert (await sim.wait_event("reset"))["type"] == "Soft"
                await page.locator("#chargers").screenshot(path=str(tmp_path / "chargers.png"))
                actions = await edge.journal.read(Store.log, "actions", "CP-A", 10, None)
                assert any(a["action"] == "Reset" and "browser test" in (a.get("reason") or "") for a in actions)

                # Download the charge records as CSV.
                async with page.expect_download() as info:
                    await page.click("#csv")
                download = await info.value
                csv_path = tmp_path / "charge-records.csv"
                await download.save_as(str(csv_path))
                assert csv_path.read_text().splitlines()[0].startswith(("id", "cdr", "record", "site"))

                # A state change with the session cookie but without the CSRF token is refused.
                status = await page.evaluate("""async () => (await fetch('/api/v1/tokens', {method: 'POST',
                    headers: {'Content-Type': 'application/json'},
                    body: JSON.stringify({id_tag: 'NO-CSRF', user_group: 'residents'})})).status""")
                assert status == 403
                assert edge.authorizer.model.find("NO-CSRF") is None

                # A phone screen: the page reflows (nothing wider than the screen but the tables' own scroll).
                await page.set_viewport_size({"width": 390, "height": 844})
                await page.click("a[href='#site']")
                await shot(page, "phone")
                await browser.close()
                # Only the refused login, the CSRF probe (and the absent favicon) may show as errors in the console.
                assert not [e for e in errors if ("/api/" in e and "403" not in e) or "Uncaught" in e], errors
            finally:
                sim_task.cancel()
                await asyncio.gather(sim_task, return_exceptions=True)

            # edgectl's bearer token still works, and without it nothing is shown.
            async with aiohttp.ClientSession() as http:
                async with http.get(base + "/api/v1/dlm") as resp:
                    assert resp.status == 401
                async with http.get(base + "/api/v1/dlm", headers={"Authorization": f"Bearer {edge.api._token}"}) as r:
                    assert r.status == 200
    finally:
        await meter.stop()


async def wait_for_value(page, circuit: str, phase: str, ok, timeout: float = 10.0) -> float:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    value = None
    while loop.time() < deadline:
        value = await live_value(page, circuit, phase)
        if value is not None and ok(value):
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"the live chart's {phase} of {circuit} stayed at {value}")
