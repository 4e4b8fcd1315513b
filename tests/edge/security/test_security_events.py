"""SecurityEventNotification (OCA TC_077/TC_078 end with one): stored before the answer, critical ones alerted."""

from __future__ import annotations

from ocpp.v16 import call

from edge.journal import Store
from edge.ocpp.security_events import is_critical
from edge.security_cli import render
from tests.edge.conftest import api_call, charger


def test_the_whitepapers_critical_events():
    assert is_critical("TamperDetectionActivated") and is_critical("FirmwareUpdated")
    assert not is_critical("InvalidChargePointCertificate") and not is_critical("InvalidTLSVersion")


async def test_TC_077_078_security_events_are_stored_and_critical_ones_alerted(edge):
    events = edge.bus.subscribe()
    async with charger(edge) as cp:
        for kind in ("InvalidChargePointCertificate", "InvalidCentralSystemCertificate", "TamperDetectionActivated"):
            answer = await cp.call(call.SecurityEventNotification(type=kind, timestamp="2026-01-01T00:00:00Z",
                                                                  tech_info="lid opened" if "Tamper" in kind else None))
            assert answer is not None
    stored = await edge.journal.read(Store.security_events, "CP-1")
    assert [e["type"] for e in stored] == ["TamperDetectionActivated", "InvalidCentralSystemCertificate",
                                           "InvalidChargePointCertificate"]
    assert [e["critical"] for e in stored] == [True, False, False] and stored[0]["tech_info"] == "lid opened"
    alerted = []
    while not events.queue.empty():
        event = events.queue.get_nowait()
        if event.kind == "security.critical":
            alerted.append(event.data["type"])
    assert alerted == ["TamperDetectionActivated"]
    listed = await api_call(edge, "GET", "/security?charger=CP-1")
    assert [e["type"] for e in listed["security_events"]][0] == "TamperDetectionActivated"
    assert "TamperDetectionActivated" in render(listed)
