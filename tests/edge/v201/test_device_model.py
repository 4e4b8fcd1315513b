"""OCPP 2.0.1 block B at the edge: the device model kept per station (GetBaseReport -> NotifyReport,
GetVariables/SetVariables answers) and the variables the site sets after boot, against the simulated
2.0.1 station over real WebSockets; hypothesis for the NotifyReport parts a station sends."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from ocpp.messages import Call, _validate_payload
from websockets.asyncio.client import connect

from edge.journal import Store
from edge.journal import device_model as journal_model
from edge.journal.store import connect as journal_connect
from edge.ocpp.v201 import device_model
from edge.stations.model import Setting
from tests.edge.conftest import api_call, eventually, ocpp_url, wait_for
from tests.edge.v201.conftest import SITE_CHARGERS, STATION, station


async def stored(edge, component: str, variable: str, **kwargs) -> str | None:
    return await edge.journal.read(Store.device_variable, STATION, component, variable, **kwargs)


async def poll(edge, fn, *args, timeout: float = 20.0, **kwargs):
    """Until the journal read `fn` gives something true (reads are cheap; the edge works meanwhile)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await edge.journal.read(fn, *args, **kwargs)
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {fn.__name__}{args}")
        await asyncio.sleep(0.02)


async def test_TC_B_13_CSMS_full_inventory_after_boot_is_stored(make_edge):
    """B07 (TC_B_13: GetBaseReport FullInventory, requestId >= 0): after the accepted boot the edge asks for the
    whole device model; every NotifyReport part (tbc) is stored, so every variable the station has is readable."""
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        async with station(edge, report_items=7) as sim:
            asked = await sim.wait_event("notify_report", timeout=20)
            [report] = await poll(edge, Store.device_reports, STATION)
            report = await poll(edge, lambda s: (r := s.device_report(STATION, asked["request_id"])) and
                                r["status"] == "complete" and r)
            assert report["report_base"] == "FullInventory" and report["request_id"] >= 0
            assert report["parts"] == asked["parts"] == math.ceil(len(sim.device.variables) / 7) > 1
            rows = await edge.journal.read(Store.device_variables, STATION)
            assert report["items"] == len(rows) == len(sim.device.variables)
            # Per EVSE, with its characteristics: what the edge needs to know of the station.
            power = [r for r in rows if (r["component"], r["evse_id"], r["variable"]) == ("EVSE", 2, "Power")]
            assert [(p["value"], p["unit"], p["mutability"], p["data_type"]) for p in power] == \
                [(sim.device.get("EVSE", "Power", evse=2), "W", "ReadOnly", "decimal")]
            # A write-only variable's value is never reported, and never made up.
            [password] = [r for r in rows if r["variable"] == "BasicAuthPassword"]
            assert password["value"] is None and password["mutability"] == "WriteOnly"
            assert await stored(edge, "DeviceDataCtrlr", "ItemsPerMessage", instance="GetReport") == "7"


def requests(sim, action: str) -> list[dict]:
    return [d for n, d in sim.events if n == "request" and d["action"] == action]


async def test_TC_B_10_CSMS_site_variables_set_after_boot_in_as_many_requests_as_the_station_takes(make_edge):
    """B05 (TC_B_10: SetVariables, several values): after the report the edge sets TxCtrlr and AuthCtrlr as the
    site's sessions expect, no more per request than DeviceDataCtrlr.ItemsPerMessage[SetVariables] says; the
    results are kept in the device model."""
    def taking_two(device):
        device.put("DeviceDataCtrlr", "ItemsPerMessage", "2", instance="SetVariables")
        device.put("TxCtrlr", "TxStartPoint", "EVConnected")
        device.put("AuthCtrlr", "LocalPreAuthorize", "false")
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        async with station(edge, configure=taking_two) as sim:
            await wait_for(lambda: len(requests(sim, "SetVariables")) == 3, timeout=20, what="three SetVariables")
            sets = requests(sim, "SetVariables")
            assert [len(d["results"]) for d in sets] == [2, 2, 1]
            assert all(r == "Accepted" for d in sets for r in d["results"])
            assert sim.device.get("TxCtrlr", "TxStartPoint") == "PowerPathClosed"
            assert sim.device.get("TxCtrlr", "TxStopPoint") == "EVConnected,Authorized"
            assert sim.device.get("AuthCtrlr", "LocalPreAuthorize") == "true"
            # Kept: the report had the station's old values, the SetVariables answers the edge's.
            await poll(edge, lambda s: s.device_variable(STATION, "AuthCtrlr", "AuthorizeRemoteStart") == "false"
                       and s.device_variable(STATION, "TxCtrlr", "TxStartPoint") == "PowerPathClosed")
            rows = await edge.journal.read(Store.device_variables, STATION, component="AuthCtrlr")
            [pre] = [r for r in rows if r["variable"] == "LocalPreAuthorize"]
            assert (pre["value"], pre["status"], pre["source"], pre["data_type"]) == \
                ("true", "Accepted", "SetVariables", "boolean")


async def test_rejected_or_unknown_variables_are_logged_and_the_station_still_charges(make_edge, caplog):
    """A station that refuses a variable (read-only) or does not have one keeps its own value: logged as a
    warning, and the station is used as it is: a whole session is recorded."""
    caplog.set_level(logging.INFO, logger="edge.ocpp.v201.device_model")

    def stubborn(device):
        key = ("AuthCtrlr", None, "LocalPreAuthorize", None)
        device.variables[key] = replace(device.variables[key], value="true", mutability="ReadOnly")
        del device.variables[("AuthCtrlr", None, "AuthorizeRemoteStart", None)]   # read on remote starts only
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        async with station(edge, configure=stubborn, tx_updated_interval=1) as sim:
            await wait_for(lambda: "AuthCtrlr.LocalPreAuthorize: Rejected" in caplog.text, timeout=20,
                           what="the refusal logged")
            assert "AuthCtrlr.AuthorizeRemoteStart: UnknownVariable" in caplog.text
            assert sim.device.get("TxCtrlr", "TxStartPoint") == "PowerPathClosed"   # the others are set
            sim.local_auth.remember("ISO14443:TAG-OK", "Accepted")
            await sim.plug_in(1)
            assert await sim.present_token(1, "TAG-OK") == "Accepted"
            await sim.wait_event("transaction_started")
            await sim.stop(1)
            await sim.wait_event("transaction_ended")
            await sim.flush()
            [tx] = await poll(edge, lambda s: [t for t in s.transactions(charger_id=STATION)
                                               if t["state"] == "completed"])
            assert tx["id_tag"] == "TAG-OK"
        warnings = [r.getMessage() for r in caplog.records
                    if r.levelno == logging.WARNING and r.getMessage().startswith("configure")]
        assert len(warnings) == 2 and all("is used as it is" in w for w in warnings), warnings


async def test_TC_B_06_CSMS_get_variables_answer_updates_the_device_model(make_edge):
    """B06 (TC_B_06: GetVariables): what the core reads (read_settings) lands in the device model too, with
    the station's current value, not the report's older one."""
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        async with station(edge) as sim:
            await sim.wait_event("notify_report", timeout=20)
            await wait_for(lambda: len([1 for n, d in sim.events if n == "request" and d["action"] == "SetVariables"])
                           >= 1, timeout=20, what="the site's variables set")
            sim.device.put("AuthCacheCtrlr", "Enabled", "false")
            result = await edge.control.read_settings(STATION, [Setting.AUTHORIZATION_CACHE_ENABLED], actor="test",
                                                      reason="test")
            assert result.outcome == "ok"
            assert await stored(edge, "AuthCacheCtrlr", "Enabled") == "false"
            [row] = [r for r in await edge.journal.read(Store.device_variables, STATION, component="AuthCacheCtrlr")
                     if r["variable"] == "Enabled"]
            assert (row["source"], row["status"], row["data_type"]) == ("GetVariables", "Accepted", "boolean")


async def test_a_bad_report_part_is_refused_and_what_was_stored_stays(make_edge):
    """A NotifyReport part the edge cannot store (an EVSE beyond any station's, one variable twice) is refused
    with PropertyConstraintViolation naming it; the parts before it stay stored; the connection serves on."""
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        async with connect(ocpp_url(edge, STATION), subprotocols=["ocpp2.0.1"]) as ws:
            async def exchange(frame):
                await ws.send(json.dumps(frame))
                while True:
                    answer = json.loads(await ws.recv())
                    if answer[0] != 2:      # the edge's own requests after the boot go unanswered here
                        return answer
            boot = await exchange([2, "b", "BootNotification", {
                "chargingStation": {"model": "M", "vendorName": "V"}, "reason": "PowerUp"}])
            assert boot[2]["status"] == "Accepted"
            good = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "OfflineThreshold"},
                    "variableAttribute": [{"type": "Actual", "value": "60", "mutability": "ReadWrite"}],
                    "variableCharacteristics": {"dataType": "integer", "supportsMonitoring": True}}
            ok = await exchange([2, "r0", "NotifyReport", {"requestId": 5, "generatedAt": "2026-12-07T00:00:00Z",
                                                          "seqNo": 0, "tbc": True, "reportData": [good]}])
            assert ok[0] == 3
            far = {**good, "component": {"name": "EVSE", "evse": {"id": 5000}}}
            refused = await exchange([2, "r1", "NotifyReport", {"requestId": 5, "generatedAt": "2026-12-07T00:00:00Z",
                                                               "seqNo": 1, "tbc": True, "reportData": [far]}])
            assert refused[2] == "PropertyConstraintViolation" and "evse.id 5000" in refused[3], refused
            twice = await exchange([2, "r2", "NotifyReport", {"requestId": 5, "generatedAt": "2026-12-07T00:00:00Z",
                                                             "seqNo": 2, "tbc": False, "reportData": [good, good]}])
            assert twice[2] == "PropertyConstraintViolation" and "reported twice" in twice[3], twice
            assert (await exchange([2, "h", "Heartbeat", {}]))[0] == 3
        [row] = await edge.journal.read(Store.device_variables, STATION)
        assert (row["component"], row["variable"], row["value"], row["source"]) == \
            ("OCPPCommCtrlr", "OfflineThreshold", "60", "NotifyReport 5")
        assert (await edge.journal.read(Store.device_report, STATION, 5))["parts"] == 1


# -- hypothesis: the NotifyReport parts a station sends ---------------------------------------------------

NAMES = st.sampled_from(["OCPPCommCtrlr", "EVSE", "Connector", "TxCtrlr", "Vendor_X", "Ünïcode"])
ATTRIBUTE = st.fixed_dictionaries(
    {"type": st.sampled_from(["Actual", "Target", "MinSet", "MaxSet"])},
    optional={"value": st.text(max_size=40), "mutability": st.sampled_from(["ReadOnly", "WriteOnly", "ReadWrite"])})
REPORT_DATA = st.fixed_dictionaries(
    {"component": st.fixed_dictionaries(
        {"name": NAMES},
        optional={"instance": st.text(min_size=1, max_size=5),
                  "evse": st.fixed_dictionaries({"id": st.integers(0, 2000)},
                                                optional={"connectorId": st.integers(0, 2000)})}),
     "variable": st.fixed_dictionaries({"name": st.sampled_from(["Enabled", "Power", "Available", "X"])},
                                       optional={"instance": st.text(min_size=1, max_size=5)}),
     "variableAttribute": st.lists(ATTRIBUTE, min_size=1, max_size=4)},
    optional={"variableCharacteristics": st.fixed_dictionaries(
        {"dataType": st.sampled_from(["string", "decimal", "integer", "boolean", "MemberList"]),
         "supportsMonitoring": st.booleans()},
        optional={"unit": st.text(max_size=8), "minLimit": st.floats(allow_nan=False, allow_infinity=False),
                  "maxLimit": st.floats(allow_nan=False, allow_infinity=False),
                  "valuesList": st.text(min_size=1, max_size=20)})})


def _snake(value):
    from ocpp.charge_point import camel_to_snake_case
    return camel_to_snake_case(value)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(REPORT_DATA, max_size=12), min_size=1, max_size=4), st.integers(1, 30))
def test_report_parts_are_stored_bounded_or_refused_whole(parts, cap):
    """Whatever schema-valid parts a station sends: each is stored whole (every attribute of every variable,
    new ones up to the station's cap, the rest counted as dropped) or refused whole with a message saying
    why, leaving what earlier parts stored; the station never holds more than the cap."""
    conn = journal_connect(":memory:")
    store = Store(conn)
    real_cap, journal_model.MAX_VARIABLES = journal_model.MAX_VARIABLES, cap
    try:
        for seq_no, part in enumerate(parts):
            payload = {"requestId": 1, "generatedAt": "2026-12-07T00:00:00Z", "seqNo": seq_no,
                       "tbc": seq_no < len(parts) - 1, **({"reportData": part} if part else {})}
            _validate_payload(Call("1", "NotifyReport", json.loads(json.dumps(payload))), "2.0.1")
            before = store.device_variables("S")
            try:
                rows = device_model.report_rows(_snake(part))
            except device_model.ReportRefused as refused:
                assert "reportData[" in str(refused)
                assert store.device_variables("S") == before
                continue
            assert len(rows) == sum(len(item["variableAttribute"]) for item in part)
            counts = store.store_report_part("S", 1, seq_no, seq_no == len(parts) - 1, rows, "g", "t")
            after = store.device_variables("S")
            keys = {tuple(r[k] for k in journal_model._KEY) for r in before}
            new = {tuple(r[k] for k in journal_model._KEY) for r in rows} - keys
            assert counts["stored"] + counts["dropped"] == len(rows)
            assert len(after) == min(cap, len(before) + len(new)) if len(before) <= cap else len(after) == len(before)
            for row in rows:
                key = tuple(row[k] for k in journal_model._KEY)
                match = [r for r in after if tuple(r[k] for k in journal_model._KEY) == key]
                assert not match or match[0]["value"] == row["value"] or row["value"] is None
            assert len(after) <= cap
    finally:
        journal_model.MAX_VARIABLES = real_cap
        conn.close()


async def test_a_stations_variables_read_through_the_local_api(make_edge):
    """GET /api/v1/chargers/{id}/variables: what the edge keeps of a station's device model, by component, paged;
    an unknown station is a 404, a bad page a 400."""
    from tests.edge.conftest import api_call

    async with make_edge(chargers=SITE_CHARGERS) as edge:
        async with station(edge) as sim:
            asked = await sim.wait_event("notify_report", timeout=20)
            await poll(edge, lambda s: (r := s.device_report(STATION, asked["request_id"])) and
                       r["status"] == "complete")
            body = await api_call(edge, "GET", f"/chargers/{STATION}/variables?component=TxCtrlr")
            assert {v["variable"] for v in body["variables"]} == \
                {k[2] for k in sim.device.variables if k[0] == "TxCtrlr"}
            assert body["reports"][0]["status"] == "complete"
            page = await api_call(edge, "GET", f"/chargers/{STATION}/variables?limit=5&offset=5")
            assert len(page["variables"]) == 5
            await api_call(edge, "GET", "/chargers/NOPE/variables", expect=404)
            await api_call(edge, "GET", f"/chargers/{STATION}/variables?limit=x", expect=400)


def _set_results(sim) -> int:
    """How many variables were written to the station so far, by anyone."""
    return sum(len(d["results"]) for d in requests(sim, "SetVariables"))


async def _configured(caplog, times: int) -> None:
    """Until the edge has finished setting the station's variables `times` times (its boots)."""
    await wait_for(lambda: caplog.text.count(f"configure charger={STATION} done") >= times, timeout=20,
                   what=f"configuration {times} done")


async def test_B05_an_operators_value_survives_station_and_edge_restarts_and_a_fresh_station_gets_the_edges(
        make_edge, caplog):
    """B05 through the edge: the edge sets its TxCtrlr/AuthCtrlr values the first time it meets a station. An
    operator's SetVariables through the local API wins: the station's restart and the edge's restart keep it.
    A value changed on the station itself (not through the edge) is set back at the next boot, and nothing else
    is written again. Before, every boot wrote all five back over the operator's."""
    caplog.set_level(logging.INFO, logger="edge.ocpp.v201.device_model")
    operator = {"set": [{"component": "TxCtrlr", "variable": "TxStartPoint", "value": "Authorized"}],
                "reason": "this site starts a transaction at authorization"}
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        async with station(edge) as sim:
            await _configured(caplog, 1)
            assert _set_results(sim) == len(device_model.EDGE_VARIABLES)     # a fresh station gets all five
            assert sim.device.get("AuthCtrlr", "LocalPreAuthorize") == "true"
            answer = await api_call(edge, "POST", f"/chargers/{STATION}/variables", body=operator)
            assert answer["outcome"] == "ok", answer
            assert sim.device.get("TxCtrlr", "TxStartPoint") == "Authorized"
            sim.device.put("AuthCtrlr", "LocalPreAuthorize", "false")           # changed on the station's panel
            written = _set_results(sim)

            await sim.reboot()
            await sim.wait_accepted()
            await _configured(caplog, 2)
            assert sim.device.get("TxCtrlr", "TxStartPoint") == "Authorized"     # the operator's, kept
            assert sim.device.get("AuthCtrlr", "LocalPreAuthorize") == "true"    # set back: not the edge's
            assert _set_results(sim) == written + 1                              # and nothing else written
            body = await api_call(edge, "GET", f"/chargers/{STATION}/variables?component=TxCtrlr")
            [start] = [s for s in body["settings"] if s["variable"] == "TxStartPoint"]
            assert (start["wanted"], start["set_status"], start["operator_value"], start["operator_status"]) == (
                "PowerPathClosed", "Accepted", "Authorized", "Accepted")
            saved = dict(sim.device.variables)

    async with make_edge(chargers=SITE_CHARGERS) as edge:
        async with station(edge, configure=lambda device: device.variables.update(saved)) as sim:
            await _configured(caplog, 3)
            assert sim.device.get("TxCtrlr", "TxStartPoint") == "Authorized"
            assert _set_results(sim) == 0                                        # all as the edge left them
        # A station the edge has never met gets the edge's values, whatever it had.
        async with station(edge, "CP-2") as fresh:
            await wait_for(lambda: "configure charger=CP-2 done" in caplog.text, timeout=20, what="CP-2 done")
            assert _set_results(fresh) == len(device_model.EDGE_VARIABLES)
            assert fresh.device.get("AuthCtrlr", "LocalPreAuthorize") == "true"


@pytest.mark.parametrize("setting, reported, due", [
    (None, None, True),                                                          # never met: set it
    ({"wanted": "true", "set_status": "Accepted"}, "true", False),              # as the edge left it
    ({"wanted": "true", "set_status": "Accepted"}, None, False),                # not in this boot's report
    ({"wanted": "true", "set_status": "Accepted"}, "false", True),              # changed on the station
    ({"wanted": "false", "set_status": "Accepted"}, "false", True),             # the edge's value changed
    ({"wanted": "true", "set_status": "Rejected"}, "false", False),             # refused: not asked again
    ({"wanted": None, "operator_value": "false", "operator_at": "t"}, "false", False),  # an operator's
    ({"wanted": "false", "set_status": "Accepted", "operator_value": "false", "operator_at": "t"}, "x", False),
])
def test_B05_when_the_edge_sets_a_variable_it_manages(setting, reported, due):
    """The rule per variable (wanted "true"): the operator's choice wins over everything, also over a change of
    the edge's own value; otherwise first meeting, a changed wanted value, or a report that differs."""
    go, why = device_model.decide("true", setting, reported)
    assert go == due and why


async def test_B05_operator_set_variables_through_the_api_errors_say_what_is_wrong(make_edge):
    """POST /api/v1/chargers/{id}/variables: a bad body is a 400 naming the field; an unknown station a 404; a
    1.6 charger a 409 (it has no variables); a value the station refuses leaves the edge managing the variable."""
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        async with station(edge) as sim:
            await sim.wait_online()
            path = f"/chargers/{STATION}/variables"
            bad = await api_call(edge, "POST", path, body={"set": [{"component": "TxCtrlr"}], "reason": "r"},
                                 expect=400)
            assert "set[0].variable" in bad["error"]
            assert "reason" in (await api_call(edge, "POST", path, body={"set": []}, expect=400))["error"]
            await api_call(edge, "POST", "/chargers/NOPE/variables", body={}, expect=404)
            await api_call(edge, "POST", "/chargers/CP-1/variables",
                           body={"set": [{"component": "C", "variable": "V", "value": "1"}], "reason": "r"},
                           expect=409)
            refused = await api_call(edge, "POST", path, expect=200, body={
                "set": [{"component": "TxCtrlr", "variable": "TxStartPoint", "value": "NoSuchPoint"}], "reason": "r"})
            assert refused["outcome"] == "rejected"
            settings_ = (await api_call(edge, "GET", f"{path}?component=TxCtrlr"))["settings"]
            assert all(s["operator_at"] is None for s in settings_)


async def test_reports_and_reads_survive_an_edge_restart_and_say_when_each_value_was_read(make_edge):
    """The device model is the journal's: after the edge restarts, GET .../variables gives every variable of the
    report, the GetVariables answer, and `read_at`: when the value was read from the station (a report, a
    GetVariables), not when a SetVariables answer last changed the row (`updated_at`)."""
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        async with station(edge) as sim:
            await sim.wait_event("notify_report", timeout=20)
            await wait_for(lambda: _set_results(sim) >= len(device_model.EDGE_VARIABLES), timeout=20,
                           what="the site's variables set")
            sim.device.put("AuthCacheCtrlr", "Enabled", "false")
            assert (await edge.control.read_settings(STATION, [Setting.AUTHORIZATION_CACHE_ENABLED], actor="test",
                                                     reason="test")).outcome == "ok"
            await poll(edge, lambda s: s.device_variable(STATION, "TxCtrlr", "TxStartPoint") == "PowerPathClosed"
                       and s.device_variable(STATION, "AuthCacheCtrlr", "Enabled") == "false")

            async def settled():
                # The edge stores what it set once the station's answer is in: wait for all five.
                answer = await api_call(edge, "GET", f"/chargers/{STATION}/variables?limit=2000")
                return answer if len(answer["settings"]) == len(device_model.EDGE_VARIABLES) else None
            before = await eventually(settled, "the edge's settings stored")
            count = len(sim.device.variables)
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        after = await api_call(edge, "GET", f"/chargers/{STATION}/variables?limit=2000")
    assert after == before and len(after["variables"]) == count
    assert after["reports"][0]["status"] == "complete"
    rows = {(r["component"], r["variable"], r["variable_instance"], r["evse_id"]): r for r in after["variables"]}
    cache = rows[("AuthCacheCtrlr", "Enabled", "", 0)]
    assert (cache["value"], cache["source"], cache["read_at"]) == ("false", "GetVariables", cache["updated_at"])
    point = rows[("TxCtrlr", "TxStartPoint", "", 0)]
    assert point["source"] == "SetVariables" and point["read_at"] is not None and point["read_at"] <= point["updated_at"]
    reported = rows[("OCPPCommCtrlr", "HeartbeatInterval", "", 0)]
    assert reported["source"].startswith("NotifyReport") and reported["read_at"] == reported["updated_at"]
    assert all(r["read_at"] for r in after["variables"])     # every one came with the report


# -- hypothesis: an operator's SetVariables body (the local API's boundary) -----------------------------------

TEXTS = st.one_of(st.text(max_size=60), st.integers(-3, 3), st.none(), st.booleans())
OPERATOR_ITEM = st.one_of(
    st.dictionaries(st.sampled_from(["component", "variable", "value", "evse", "connector", "component_instance",
                                     "variable_instance", "attribute_type", "other"]),
                    st.one_of(TEXTS, st.integers(-5, 2000), st.sampled_from(["Actual", "Target", "MaxSet", "Bad"])),
                    max_size=9),
    st.fixed_dictionaries({"component": st.text(min_size=1, max_size=50), "variable": st.text(min_size=1, max_size=50),
                           "value": st.one_of(st.text(max_size=1000), st.booleans(), st.integers())},
                          optional={"evse": st.integers(0, 1000), "connector": st.integers(0, 1000),
                                    "attribute_type": st.sampled_from(["Actual", "Target", "MinSet", "MaxSet"])}))


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.fixed_dictionaries({"set": st.lists(OPERATOR_ITEM, max_size=4)},
                                       optional={"reason": st.one_of(st.text(max_size=10), st.integers())}),
                 st.dictionaries(st.text(max_size=6), TEXTS, max_size=3), st.lists(st.integers(), max_size=2)))
def test_any_operator_body_is_a_valid_set_variables_or_says_what_is_wrong(body):
    """Whatever the body: SetVariables data the 2.0.1 schema takes, one per item asked, or a ValueError naming
    what is wrong (the API's 400); never anything else."""
    from ocpp.charge_point import snake_to_camel_case
    try:
        data, reason = device_model.operator_request(body)
    except ValueError as exc:
        assert str(exc)
        return
    assert reason.strip() and len(data) == len(body["set"])
    _validate_payload(Call("1", "SetVariables", snake_to_camel_case({"set_variable_data": data})), "2.0.1")


async def test_B05_a_new_edge_value_is_set_once_but_not_over_an_operators(make_edge, caplog, monkeypatch):
    """A new release that wants other values (EDGE_VARIABLES changed between two runs of the edge, the journal
    kept): at the station's next boot the edge sets the changed one, once; a variable an operator had set through
    the edge stays the operator's even though the edge's own value for it changed too."""
    caplog.set_level(logging.INFO, logger="edge.ocpp.v201.device_model")
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        async with station(edge) as sim:
            await _configured(caplog, 1)
            answer = await api_call(edge, "POST", f"/chargers/{STATION}/variables", body={
                "set": [{"component": "TxCtrlr", "variable": "TxStopPoint", "value": "EVConnected"}],
                "reason": "stop only when the cable is out"})
            assert answer["outcome"] == "ok", answer
            saved = dict(sim.device.variables)
    new_release = tuple((c, v, {"LocalPreAuthorize": "false", "TxStopPoint": "Authorized"}.get(v, value))
                        for c, v, value in device_model.EDGE_VARIABLES)
    monkeypatch.setattr(device_model, "EDGE_VARIABLES", new_release)
    async with make_edge(chargers=SITE_CHARGERS) as edge:
        async with station(edge, configure=lambda device: device.variables.update(saved)) as sim:
            await _configured(caplog, 2)
            assert sim.device.get("AuthCtrlr", "LocalPreAuthorize") == "false"      # the new value, set
            assert sim.device.get("TxCtrlr", "TxStopPoint") == "EVConnected"        # the operator's, kept
            assert _set_results(sim) == 1
            await sim.reboot()
            await sim.wait_accepted()
            await _configured(caplog, 3)
            assert _set_results(sim) == 1                                           # once, not at every boot
