"""The pure functions that turn message bodies into the API's views."""

from __future__ import annotations

import pytest

from cloud import projections as p
from contract.v1 import Message

AT = "2026-03-01T10:00:00.000Z"


def msg(type: str, body: dict, seq: int = 1) -> Message:
    return Message(id="m", seq=seq, at=AT, type=type, body=body)


@pytest.mark.parametrize("text, expected", [
    ("2026-03-01T10:00:00Z", "2026-03-01T10:00:00.000Z"),
    ("2026-03-01T11:00:00+01:00", "2026-03-01T10:00:00.000Z"),
    ("2026-03-01T10:00:00", "2026-03-01T10:00:00.000Z"),      # no offset: UTC, as chargers mean it
    ("yesterday", None), (None, None), (12, None),
])
def test_times_are_made_comparable_as_text(text, expected):
    assert p.when(text) == expected


def test_status_messages_as_the_edge_sends_them():
    connector = p.status(msg("connector.status", {"charger_id": "CP-1", "connector_id": 2, "status": "Faulted",
                                                  "error_code": "GroundFailure", "info": None}), AT)
    assert connector == p.ConnectorStatus("CP-1", 2, "Faulted", "GroundFailure", None, AT)
    presence = p.status(msg("charger.presence", {"charger_id": "CP-1", "status": "LongTermUnavailable"}), AT)
    assert presence == p.ChargerConnection("CP-1", "LongTermUnavailable", AT)
    boot = p.status(msg("charger.booted", {"charger_id": "CP-1", "vendor": "V", "model": "M",
                                           "firmware_version": "1"}), AT)
    assert boot == p.ChargerBoot("CP-1", "V", "M", None, "1", AT)
    assert p.status(msg("connector.status", {"status": "Available"}), AT) is None        # whose?
    assert p.status(msg("connector.status", {"charger_id": "CP-1", "connector_id": "x"}), AT) is None


def test_session_events_tolerate_what_they_cannot_use():
    started = p.session(msg("session.started", {"transaction_id": 7, "charger_id": "CP-1", "connector_id": 1,
                                                "meter_start": 100, "start_time": "2026-03-01T09:00:00Z"}), AT)
    assert started.session_id == "7" and started.started and started.meter_wh == 100.0
    assert started.at == "2026-03-01T09:00:00.000Z"
    stopped = p.session(msg("session.stopped", {"transaction_id": 7, "meter_stop": 900, "meter_start": 100,
                                                "start_time": "2026-03-01T09:00:00Z", "stop_reason": "Local"}), AT)
    assert not stopped.started and stopped.meter_wh == 900.0 and stopped.start_at == "2026-03-01T09:00:00.000Z"
    assert stopped.at == AT                                      # no stop_time: the message's time
    assert p.session(msg("session.unmatched_stop", {"charger_id": "CP-1"}), AT) is None
    assert p.session(msg("session.started", {"charger_id": "CP-1"}), AT) is None          # no key
    odd = p.session(msg("session.started", {"transaction_id": 1, "meter_start": True, "connector_id": 2**70}), AT)
    assert odd.meter_wh is None and odd.connector_id is None


def test_cdr_rows_keep_the_record_as_sent():
    row = p.cdr(msg("cdr", {"id": "c-1", "charger_id": "CP-1", "start_time": "2026-03-01T09:00:00+01:00",
                            "energy_kwh": "1.500", "status": "Successful", "extra": [1]}), AT)
    assert row.id == "c-1" and row.start_time == "2026-03-01T08:00:00.000Z" and row.energy_kwh == "1.500"
    assert p.cdr(msg("cdr", {"charger_id": "CP-1"}), AT) is None


def test_text_fields_are_bounded_and_free_of_nul():
    assert p.text("a\x00b") == "ab"
    assert len(p.text("x" * 1000)) == 256
    assert p.text({"a": 1}) is None and p.text(None) is None
