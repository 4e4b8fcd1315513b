"""Property-based robustness of the OCPP endpoint: hypothesis drives the real
edge with generated frames (schema-valid extremes, invalid payloads, huge and
deep frames, absurd times and integers, garbage) and after each one checks
what a site operator relies on:

- the edge answered per OCPP-J: one CALLRESULT or CALLERROR with the frame's
  unique id for a Call, at most a CALLERROR for anything else, never an
  InternalError (that would be a bug of ours meeting the frame);
- a second, well-behaved charger is still served (a Heartbeat round trip);
- the edge's task is still running;
and at the end that the journal passes `PRAGMA integrity_check` and holds
every StartTransaction and StopTransaction the edge acknowledged.

The edge runs on its own event loop in a thread for the whole test, so
hypothesis' examples (plain functions) share it and stay cheap.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from edge.app import Edge
from edge.config import parse_config
from edge.journal import Store
from tests.edge.conftest import PASSWORD, basic, site_toml

V16_ERROR_CODES = {"NotImplemented", "NotSupported", "InternalError", "ProtocolError", "SecurityError",
                   "FormationViolation", "PropertyConstraintViolation", "OccurenceConstraintViolation",
                   "TypeConstraintViolation", "GenericError"}
# A deeper run: OCPP_ROBUSTNESS_EXAMPLES=5000 pytest tests/edge/ocpp_boundary/test_robustness.py
EXAMPLES = int(os.environ.get("OCPP_ROBUSTNESS_EXAMPLES", "300"))


class EdgeInThread:
    """A real edge (real SQLite, real WebSockets) on its own loop in a thread."""

    def __init__(self, tmp_path: Path):
        self.config = parse_config(site_toml(tmp_path), "test.toml", state_dir=str(tmp_path))
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.edge: Any = None
        self.task: asyncio.Task | None = None

    def _run(self) -> None:
        try:
            self.loop.run_until_complete(self._main())
        finally:
            # What the edge left running (a command waiting for a charger that
            # hung up) is cancelled, as pytest-asyncio does for other tests.
            pending = asyncio.all_tasks(self.loop)
            for task in pending:
                task.cancel()
            if pending:   # gather() of nothing looks for a current loop, which this thread has not
                self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        self.edge = Edge(self.config)
        self.task = await self.edge.start(timeout=20)
        self.ready.set()
        await self._stop.wait()
        self.edge.stop()
        await asyncio.wait_for(self.task, 20)

    def __enter__(self) -> "EdgeInThread":
        self.thread.start()
        assert self.ready.wait(30), "the edge did not start"
        return self

    def __exit__(self, *exc: Any) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(30)

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def url(self, charger_id: str) -> str:
        return f"ws://127.0.0.1:{self.edge.ocpp.bound_port}/ocpp/{charger_id}"

    def connect(self, charger_id: str, password: str | None = None) -> ClientConnection:
        return connect(self.url(charger_id), subprotocols=["ocpp1.6"], proxy=None, compression=None,
                       additional_headers=basic(charger_id, password) if password else None, open_timeout=5)


def answer(ws: ClientConnection, unique_id: str, action: str, payload: dict) -> list:
    ws.send(json.dumps([2, unique_id, action, payload]))
    return json.loads(ws.recv(timeout=5))


# -- generated frames ------------------------------------------------------------

EXTREME_INTS = [0, 1, -1, 100, 101, 2 ** 31 - 1, 2 ** 31, -(2 ** 31), -(2 ** 31) - 1, 2 ** 53, 2 ** 63 - 1,
                2 ** 63, 2 ** 64, 2 ** 70, -(2 ** 70), 10 ** 30]
INTS = st.one_of(st.sampled_from(EXTREME_INTS), st.integers(-(2 ** 31), 2 ** 31 - 1), st.integers())
CONNECTORS = st.one_of(st.integers(0, 3), INTS)
TIMES = st.one_of(
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)).map(lambda d: d.isoformat() + "Z"),
    st.datetimes().map(lambda d: d.isoformat() + "Z"),                   # year 1 to year 9999
    st.sampled_from(["0001-01-01T00:00:00Z", "1970-01-01T00:00:00Z", "2000-01-01T00:00:00Z",
                     "9999-12-31T23:59:59Z", "9999-12-31T23:59:59-23:59", "0000-01-01T00:00:00Z",
                     "2026-02-30T10:00:00Z", "2026-06-30T23:59:60Z", "2026-11-23T10:00:00.123456789+14:00",
                     "2026-11-23T10:00:00", "2026-11-23", "now", ""]),
    st.text(max_size=45),
    st.integers(1_000, 140_000).map(lambda n: "2026-11-23T10:00:00" + "9" * n + "Z"),
)
SURROGATES = st.sampled_from(["\ud800", "a\udfffb", "\udc00" * 3])
STRINGS = st.one_of(st.text(max_size=25), st.text(min_size=19, max_size=52), SURROGATES)
ID_TAGS = st.one_of(st.sampled_from(["TAG-OK", "TAG-2", "TAG-BLOCKED", "NOBODY"]), STRINGS)
VALUES = st.one_of(st.floats().map(repr), st.integers().map(str), st.sampled_from(["NaN", "1e400", "1,5", "", "-0"]),
                   st.text(max_size=20), st.integers(100, 20_000).map(lambda n: "9" * n))
SAMPLED = st.fixed_dictionaries({"value": VALUES}, optional={
    "measurand": st.sampled_from(["Energy.Active.Import.Register", "Power.Active.Import", "SoC", "Bogus"]),
    "unit": st.sampled_from(["Wh", "kWh", "W", "kW", "Percent"]),
    "format": st.sampled_from(["Raw", "SignedData"]),
    "phase": st.sampled_from(["L1", "L2", "N"])})
METER_VALUES = st.lists(st.fixed_dictionaries({"timestamp": TIMES, "sampledValue": st.lists(SAMPLED, max_size=4)}),
                        max_size=3)
JSON = st.recursive(st.none() | st.booleans() | INTS | st.floats() | st.text(max_size=10),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=8)
FIELDS: dict[str, dict[str, st.SearchStrategy]] = {
    "StartTransaction": {"connectorId": CONNECTORS, "idTag": ID_TAGS, "meterStart": INTS, "timestamp": TIMES,
                         "reservationId": INTS},
    "StopTransaction": {"meterStop": INTS, "timestamp": TIMES, "transactionId": INTS, "idTag": ID_TAGS,
                        "reason": st.sampled_from(["Local", "EVDisconnected", "Bogus"]),
                        "transactionData": METER_VALUES},
    "MeterValues": {"connectorId": CONNECTORS, "transactionId": INTS, "meterValue": METER_VALUES},
    "StatusNotification": {"connectorId": CONNECTORS, "errorCode": st.sampled_from(["NoError", "OtherError", "Bad"]),
                           "status": st.sampled_from(["Available", "Charging", "Faulted", "Sleeping"]),
                           "info": STRINGS, "timestamp": TIMES, "vendorId": STRINGS, "vendorErrorCode": STRINGS},
    "Authorize": {"idTag": ID_TAGS},
    "BootNotification": {"chargePointVendor": STRINGS, "chargePointModel": STRINGS, "firmwareVersion": STRINGS,
                         "iccid": STRINGS},
    "Heartbeat": {},
    "DataTransfer": {"vendorId": st.one_of(st.just("com.example"), STRINGS), "messageId": STRINGS,
                     "data": st.one_of(st.text(max_size=50), st.integers(0, 200_000).map(lambda n: "D" * n))},
    "DiagnosticsStatusNotification": {"status": st.sampled_from(["Idle", "Uploaded", "Bogus"])},
    "FirmwareStatusNotification": {"status": st.sampled_from(["Downloaded", "Installed", "Bogus"])},
    "Reset": {"type": st.just("Soft")},
    "FlyToTheMoon": {},
}
UNIQUE_IDS = st.one_of(
    st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=36),
    st.text(min_size=1, max_size=36).filter(lambda u: not u.startswith("probe")),
    st.sampled_from(["", "x" * 37]), st.integers())


PLAUSIBLE_TIMES = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)).map(
    lambda d: d.isoformat() + "Z")
VALID_VALUES = st.one_of(st.integers(0, 10 ** 6).map(str), st.floats(0, 1e6).map(lambda f: f"{f:.3f}"))
VALID_METER_VALUES = st.lists(st.fixed_dictionaries({"timestamp": PLAUSIBLE_TIMES, "sampledValue": st.lists(
    st.fixed_dictionaries({"value": VALID_VALUES}), min_size=1, max_size=3)}), min_size=1, max_size=2)
TX_IDS = st.integers(1, 2 ** 31 - 1)
# What a well-behaved charger sends: the start of every generated Call.
VALID: dict[str, dict[str, st.SearchStrategy]] = {
    "StartTransaction": {"connectorId": st.integers(1, 2), "idTag": st.sampled_from(["TAG-OK", "TAG-2"]),
                         "meterStart": st.integers(0, 10 ** 6), "timestamp": PLAUSIBLE_TIMES},
    "StopTransaction": {"meterStop": st.integers(0, 10 ** 6), "timestamp": PLAUSIBLE_TIMES, "transactionId": TX_IDS},
    "MeterValues": {"connectorId": st.integers(0, 2), "meterValue": VALID_METER_VALUES},
    "StatusNotification": {"connectorId": st.integers(0, 2), "errorCode": st.just("NoError"),
                           "status": st.sampled_from(["Available", "Preparing", "Charging"])},
    "Authorize": {"idTag": st.sampled_from(["TAG-OK", "NOBODY"])},
    "BootNotification": {"chargePointVendor": st.just("V"), "chargePointModel": st.just("M")},
    "Heartbeat": {},
    "DataTransfer": {"vendorId": st.just("com.example"), "data": st.text(max_size=20)},
    "DiagnosticsStatusNotification": {"status": st.just("Idle")},
    "FirmwareStatusNotification": {"status": st.just("Installed")},
    "Reset": {"type": st.just("Soft")},
    "FlyToTheMoon": {},
}
MUTATIONS = ["none", "extreme", "extreme", "extreme", "missing", "extra", "wrong type", "not an object"]


@st.composite
def calls(draw: Any) -> str:
    """A valid Call, then perhaps one change: a field at an extreme (of the
    kind real chargers or attackers send), missing, extra, of the wrong type,
    or no object at all."""
    action = draw(st.sampled_from(sorted(FIELDS)))
    payload: Any = draw(st.fixed_dictionaries(VALID[action]))
    mutation = draw(st.sampled_from(MUTATIONS))
    if mutation == "extreme" and FIELDS[action]:
        name = draw(st.sampled_from(sorted(FIELDS[action])))
        payload[name] = draw(FIELDS[action][name])
    elif mutation == "missing" and payload:
        del payload[draw(st.sampled_from(sorted(payload)))]
    elif mutation == "extra":
        payload[draw(st.text(max_size=10))] = draw(JSON)
    elif mutation == "wrong type" and FIELDS[action]:
        payload[draw(st.sampled_from(sorted(FIELDS[action])))] = draw(JSON)
    elif mutation == "not an object":
        payload = draw(JSON)
    unique_id = draw(st.one_of(st.uuids().map(str), UNIQUE_IDS))
    return json.dumps([2, unique_id, action, payload])


@st.composite
def deep(draw: Any) -> str:
    depth = draw(st.one_of(st.integers(1, 30), st.integers(900, 6_000)))
    opener = draw(st.sampled_from(["[", "{\"a\":", "[{\"a\":"]))
    closer = {"[": "]", "{\"a\":": "}", "[{\"a\":": "}]"}[opener]
    body = opener * depth + "1" + closer * draw(st.sampled_from([depth, 0]))
    unique_id = draw(st.text("abc", min_size=1, max_size=8))
    return f'[2,"{unique_id}","DataTransfer",{{"vendorId":"com.example","data":{body}}}]'


FRAMES = st.one_of(
    calls(), calls(), calls(), calls(), calls(), calls(),
    deep(),
    st.builds(lambda u, p: json.dumps([3, u, p]), UNIQUE_IDS, JSON),                          # answers nobody asked for
    st.builds(lambda u, c: json.dumps([4, u, c, "d", {}]), UNIQUE_IDS, st.text(max_size=30)),
    st.text(max_size=200),                                                                     # garbage
    st.binary(max_size=100),
    st.integers(200_000, 300_000).map(lambda n: '[2,"huge","DataTransfer",{"vendorId":"x","data":"' + "A" * n + '"}]'),
)


# -- what the edge must do with a frame -------------------------------------------------

def expected_unique_id(frame: str | bytes) -> str | None:
    """The unique id the answer must carry (a well-formed Call), '' for 'at most
    one CALLERROR' (an answer or a non-Call), None for 'exactly one CALLERROR'."""
    try:
        message = json.loads(frame)
    except (ValueError, RecursionError):
        return None
    if isinstance(message, list) and len(message) == 4 and message[0] == 2 and isinstance(message[1], str) \
            and 1 <= len(message[1]) <= 36:
        return message[1]
    if isinstance(message, list) and message and message[0] in (3, 4):
        return ""
    return None


class Run:
    def __init__(self, edge: EdgeInThread):
        self.edge = edge
        self.good = edge.connect("CP-1", PASSWORD).__enter__()
        self.probes = 0
        self.acked_starts: set[int] = set()
        self.acked_stops: set[int] = set()

    def one(self, frame: str | bytes) -> None:
        self.probes += 1
        probe = f"probe-{self.probes}"
        too_big = len(frame.encode() if isinstance(frame, str) else frame) > self.edge.config.ocpp.max_frame_bytes
        with self.edge.connect("CP-2") as ws:
            ws.send(frame)
            if too_big:
                try:
                    ws.recv(timeout=5)
                    raise AssertionError("a frame over the size limit was answered")
                except ConnectionClosed as closed:
                    assert closed.rcvd is not None and closed.rcvd.code == 1009
            else:
                ws.send(json.dumps([2, probe, "Heartbeat", {}]))
                answers = []
                while (reply := json.loads(ws.recv(timeout=5)))[1] != probe:
                    # The edge's own requests (a central system may ask a ready charger anything, e.g. its
                    # meter key once it is seen to sign) are not answers to the frame.
                    if not (isinstance(reply, list) and reply and reply[0] == 2):
                        answers.append(reply)
                self.check(frame, answers)
        # Someone else is still served, and the edge still runs. (A new
        # connection now and then: the flood guard allows 20 frames/s, burst 200.)
        if self.probes % 150 == 0:
            self.good.__exit__(None, None, None)
            self.good = self.edge.connect("CP-1", PASSWORD).__enter__()
        beat = answer(self.good, probe, "Heartbeat", {})
        assert beat[:2] == [3, probe], beat
        assert self.edge.task is not None and not self.edge.task.done()

    def check(self, frame: str | bytes, answers: list[list]) -> None:
        unique_id = expected_unique_id(frame)
        for reply in answers:
            assert isinstance(reply, list) and reply[0] in (3, 4), reply
            if reply[0] == 4:
                assert len(reply) == 5 and reply[2] in V16_ERROR_CODES and isinstance(reply[3], str), reply
                assert reply[2] != "InternalError", (reply, frame[:300])
                assert len(json.dumps(reply)) < 2_000, "an error echoed the frame back"
        if unique_id == "":
            assert len(answers) <= 1 and all(a[0] == 4 for a in answers), answers
            return
        assert len(answers) == 1, (answers, frame[:300])
        if unique_id is None:
            assert answers[0][0] == 4, answers
            return
        assert answers[0][1] == unique_id, (answers, frame[:300])
        if answers[0][0] == 3:
            action = json.loads(frame)[2]
            if action == "StartTransaction":
                self.acked_starts.add(answers[0][2]["transactionId"])
            elif action == "StopTransaction":
                self.acked_stops.add(json.loads(frame)[3]["transactionId"])


def test_generated_frames_never_hurt_the_edge_or_other_chargers(tmp_path):
    with EdgeInThread(tmp_path) as edge:
        run = Run(edge)
        # The well-behaved charger charges through the whole run.
        started = answer(run.good, "s", "StartTransaction", {"connectorId": 1, "idTag": "TAG-OK", "meterStart": 0,
                                                             "timestamp": "2026-11-23T10:00:00Z"})
        good_tx = started[2]["transactionId"]

        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(FRAMES)
        def example(frame: str | bytes) -> None:
            run.one(frame)

        example()
        print(f"{run.probes} frames, {len(run.acked_starts)} starts and {len(run.acked_stops)} stops acknowledged")
        assert run.probes >= EXAMPLES
        stopped = answer(run.good, "e", "StopTransaction", {"transactionId": good_tx, "meterStop": 1000,
                                                            "timestamp": "2026-11-23T11:00:00Z"})
        assert stopped[:2] == [3, "e"]
        run.good.__exit__(None, None, None)
        transactions = {t["id"]: t for t in edge.run(edge.edge.journal.read(Store.transactions, limit=1_000_000))}
        unmatched = {u["charger_transaction_id"] for u in edge.run(edge.edge.journal.read(Store.unmatched_stops))}
        path = edge.edge.journal.path
    # Nothing acknowledged is missing.
    assert transactions[good_tx]["state"] == "completed"
    assert run.acked_starts <= set(transactions)
    for tx in run.acked_stops:
        assert (tx in transactions and transactions[tx]["state"] == "completed") or tx in unmatched, tx
    # Every stored time is one the core can compute on.
    for row in transactions.values():
        for stamp in (row["start_time"], row["stop_time"]):
            assert stamp is None or (len(stamp) <= 40 and 2015 <= int(stamp[:4]) < 2100), stamp
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
