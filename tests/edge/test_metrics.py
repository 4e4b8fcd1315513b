"""/metrics during a simulated session: the numbers GET /api/v1/dlm shows; /healthz without a token."""

from __future__ import annotations

import math

import aiohttp
import pytest
from hypothesis import given, strategies as st
from ocpp.exceptions import NotSupportedError
from ocpp.v16 import call
from prometheus_client.parser import text_string_to_metric_families

from edge.config import parse_config
from edge.meters.poller import POLL_SECONDS_BUCKETS
from edge.metrics import Histogram
from tests.edge.conftest import api_call, running_edge, site_toml, wait_for
from tests.edge.dlm.test_closed_loop import charge, closed_loop


async def scrape(edge, token: str | None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{edge.api.bound_port}/metrics", headers=headers) as resp:
            return resp.status, await resp.text()


def samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def histogram(got: dict, name: str, labels: tuple) -> tuple[float, float, list[tuple[float, float]]]:
    """count, sum and the cumulative buckets (le, n) of one labelled histogram in a scrape."""
    buckets = sorted((float(dict(key)["le"]), n) for (series, key), n in got.items()
                     if series == f"{name}_bucket" and tuple(k for k in key if k[0] != "le") == labels)
    return got[(f"{name}_count", labels)], got[(f"{name}_sum", labels)], buckets


async def test_metrics_show_what_the_api_shows_during_a_session(make_edge):
    async with closed_loop(make_edge, wiring={"A": (3, "RST", "L1")}) as (edge, site, meter):
        await charge(site.sims["A"], "TAG-OK")
        await wait_for(lambda: site.sims["A"].offered_current(1) > 10, timeout=10, what="the car charging")
        await wait_for(lambda: any(edge.load_manager.tracks[("A", 1)].measured), timeout=10, what="MeterValues")
        # Steady: the car at its 32 A on top of the 2 A base, so the two reads below see the same meter.
        grid = lambda: edge.load_manager.allocation.circuits["grid"].phases[0].metered or 0  # noqa: E731
        await wait_for(lambda: grid() > 33.5, timeout=10, what="the car drawing its 32 A")
        assert (await scrape(edge, None))[0] == 401
        status, text = await scrape(edge, edge.api._token)
        # The API's view, read right after the scrape; the loop cannot run in between the two reads below.
        dlm = await api_call(edge, "GET", "/dlm")
        assert status == 200
        got = samples(text)
        # Meter readings move between the two reads; compare the fixed numbers exactly and the rest closely.
        circuit = dlm["circuits"][0]
        for phase in circuit["phases"]:
            key = (("circuit", "grid"), ("phase", phase["phase"]))
            assert got[("sitecontroller_circuit_phase_limit_amperes", key)] == circuit["limit"]
            assert abs(got[("sitecontroller_circuit_phase_current_amperes", key)] - phase["metered"]) < 1.0
        connector = dlm["connectors"][0]
        assert got[("sitecontroller_connector_limit_amperes", (("charger", "A"), ("connector", "1")))] \
            == connector["limit"]
        assert got[("sitecontroller_sessions_active", ())] == 1
        assert got[("sitecontroller_circuit_failsafe", (("circuit", "grid"),))] == 0
        assert got[("sitecontroller_charger_connected", (("charger", "A"),))] == 1
        assert got[("sitecontroller_ocpp_commands_total", (("action", "SetChargingProfile"), ("outcome", "ok")))] >= 1
        assert got[("sitecontroller_meter_polls_total", (("meter", "grid-meter"),))] >= 1
        assert got[("sitecontroller_journal_bytes", ())] > 0
        measured = got[("sitecontroller_connector_measured_amperes",
                        (("charger", "A"), ("connector", "1"), ("phase", "L1")))]
        assert measured > 5
        # The session ends: its energy is counted.
        await site.sims["A"].stop_transaction(1)
        await wait_for(lambda: edge.metrics.energy_wh["A"] > 0, what="energy counted")
        got = samples((await scrape(edge, edge.api._token))[1])
        assert got[("sitecontroller_energy_delivered_wh_total", (("charger", "A"),))] == edge.metrics.energy_wh["A"]
        assert got[("sitecontroller_sessions_active", ())] == 0
        # The chargers' own messages, by action and answer: this session's, one each, and a CallError.
        calls = edge.metrics.calls
        for action in ("Authorize", "StartTransaction", "StopTransaction"):
            assert got[("sitecontroller_ocpp_calls_received_total",
                        (("action", action), ("charger", "A"), ("result", "accepted")))] == 1, action
        assert got[("sitecontroller_ocpp_calls_received_total",
                    (("action", "MeterValues"), ("charger", "A"), ("result", "accepted")))] >= 1
        with pytest.raises(NotSupportedError):
            await site.sims["A"].send(call.Reset(type="Soft"))      # a central system's action, from a charger
        await wait_for(lambda: calls[("A", "Reset", "NotSupported")] == 1, what="the CallError counted")
        # The meter's polls: answered ones timed, failed ones counted by kind.
        poller = edge.meters["grid-meter"]
        meter.silent = True
        await wait_for(lambda: poller.errors["no_answer"] >= 1, what="a poll without an answer")
        meter.silent, meter.garbage = False, True
        await wait_for(lambda: poller.errors["refused"] >= 1, what="a refused (NaN) reading")
        meter.garbage = False
        answered = poller.poll_seconds.count
        await wait_for(lambda: poller.failures == 0 and poller.poll_seconds.count > answered, what="answers again")
        errors = dict(poller.errors)
        got = samples((await scrape(edge, edge.api._token))[1])
        assert got[("sitecontroller_ocpp_calls_received_total",
                    (("action", "Reset"), ("charger", "A"), ("result", "NotSupported")))] == 1
        meter_label = (("meter", "grid-meter"),)
        for kind in ("no_answer", "refused"):
            assert got[("sitecontroller_meter_poll_errors_total", (("kind", kind),) + meter_label)] == errors[kind]
        count, total, buckets = histogram(got, "sitecontroller_meter_poll_seconds", meter_label)
        assert answered < count <= poller.poll_seconds.count and buckets[-1] == (float("inf"), count)
        assert total > 0 and [n for _, n in buckets] == sorted(n for _, n in buckets)
        assert [le for le, _ in buckets][:-1] == list(POLL_SECONDS_BUCKETS)
        assert got[("sitecontroller_meter_frequency_hertz", meter_label)] == 50.0


async def test_healthz_needs_no_token_and_metrics_can_be_opened_for_a_scraper(tmp_path):
    for open_metrics in (False, True):
        text = site_toml(tmp_path).replace("[api]\nport = 0", f"[api]\nport = 0\nmetrics_without_token = "
                                                                 f"{str(open_metrics).lower()}")
        async with running_edge(parse_config(text, "t.toml", state_dir=str(tmp_path))) as edge:
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{edge.api.bound_port}/healthz") as resp:
                    assert resp.status == 200 and (await resp.json())["healthy"] is True
            status, text = await scrape(edge, None)
            assert status == (200 if open_metrics else 401)
            # Without the token, only /metrics opens: the API stays closed.
            await api_call(edge, "GET", "/health", token="wrong", expect=401)


def test_the_grafana_dashboard_and_the_docs_name_only_series_the_edge_exports():
    import json
    import re
    from pathlib import Path

    import edge.web.api.metrics as metrics

    root = Path(__file__).resolve().parents[2]
    source = Path(metrics.__file__).read_text()
    exported = {f"sitecontroller_{n}" for n in re.findall(r'PREFIX}_(\w+)"', source)}
    exported |= {f"sitecontroller_{n}" for n in re.findall(r'_gauge\("(\w+)"', source)}
    histograms = {f"sitecontroller_{n}" for n in re.findall(r'HistogramMetricFamily\(f"{PREFIX}_(\w+)"', source)}
    assert histograms, "the meter poll latency is a histogram"
    exported |= {f"{n}_{part}" for n in histograms for part in ("bucket", "sum", "count")}
    exported |= {f"{n}_total" for n in exported}
    dashboard = json.loads((root / "docs" / "grafana-dashboard.json").read_text())
    used = {n for p in dashboard["panels"] for t in p["targets"] for n in re.findall(r"sitecontroller_\w+", t["expr"])}
    assert used and used <= exported, used - exported
    documented = set(re.findall(r"`(sitecontroller_\w+)`", (root / "docs" / "metrics.md").read_text()))
    assert documented <= exported, documented - exported


@given(st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), max_size=50))
def test_a_histogram_counts_each_value_at_or_below_each_bound(values):
    h = Histogram((0.01, 0.1, 1.0, 10.0))
    for v in values:
        h.observe(v)
    assert h.cumulative() == [(b, sum(v <= b for v in values)) for b in (0.01, 0.1, 1.0, 10.0, float("inf"))]
    assert h.count == len(values) and math.isclose(h.sum, sum(values), abs_tol=1e-9)
