"""The bridge's decisions, table by table, and the current limit's safety as a property."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_bridge.decisions import (MIN_CURRENT, Start, Stop, charge_point_status, charging_amps,
                                       connector_status, meter_due, transaction_step, wallbox_command)
from firmware_bridge.drivers.base import Fault, FaultKind, Mode, Pilot

A, B, C, D, E, UNKNOWN = Pilot.A, Pilot.B, Pilot.C, Pilot.D, Pilot.E, Pilot.UNKNOWN
ON, ASLEEP, OFF = Mode.ENABLED, Mode.SLEEPING, Mode.DISABLED
GFCI = Fault(FaultKind.GROUND, "06", "GFCI fault")


@pytest.mark.parametrize("pilot, mode, transaction, finishing, pending, operative, expected", [
    # no vehicle
    (A, ASLEEP, False, False, False, True, "Available"),
    (A, ASLEEP, False, False, True, True, "Preparing"),     # a remote start waits for the vehicle
    (UNKNOWN, ON, False, False, False, True, "Available"),  # the board is still starting up
    (A, OFF, False, False, False, False, "Unavailable"),
    # vehicle plugged in, no transaction
    (B, ASLEEP, False, False, False, True, "Preparing"),
    (C, ASLEEP, False, False, False, True, "Preparing"),
    (B, ASLEEP, False, True, False, True, "Finishing"),     # its transaction ended, it is still there
    (B, OFF, False, False, False, False, "Unavailable"),
    # transaction
    (C, ON, True, False, False, True, "Charging"),
    (D, ON, True, False, False, True, "Charging"),
    (B, ON, True, False, False, True, "SuspendedEV"),       # the vehicle does not want energy (yet)
    (C, ASLEEP, True, False, False, True, "SuspendedEVSE"),  # the limit is below 6 A
    (B, ASLEEP, True, False, False, True, "SuspendedEVSE"),
    (C, ON, True, False, False, False, "Charging"),         # Inoperative is scheduled for its end
    (UNKNOWN, ON, True, False, False, True, "SuspendedEVSE"),  # the board restarts mid-transaction
])
def test_connector_status(pilot, mode, transaction, finishing, pending, operative, expected) -> None:
    status = connector_status(pilot=pilot, mode=mode, fault=None, link_problem=None, operative=operative,
                              transaction=transaction, finishing=finishing, pending_start=pending)
    assert (status.status, status.error_code) == (expected, "NoError")


@pytest.mark.parametrize("kind, code", [
    (FaultKind.GROUND, "GroundFailure"), (FaultKind.RELAY, "PowerSwitchFailure"),
    (FaultKind.OVER_TEMPERATURE, "HighTemperature"), (FaultKind.OVER_CURRENT, "OverCurrentFailure"),
    (FaultKind.VEHICLE, "EVCommunicationError"), (FaultKind.OTHER, "OtherError"),
])
def test_wallbox_faults_map_to_error_codes(kind, code) -> None:
    status = connector_status(pilot=C, mode=ON, fault=Fault(kind, "0B", "over current"), link_problem=None,
                              operative=True, transaction=True, finishing=False, pending_start=False)
    assert (status.status, status.error_code, status.vendor_error_code, status.info) == \
        ("Faulted", code, "0B", "over current")


def test_a_lost_serial_link_beats_everything_and_the_info_fits_ocpp() -> None:
    problem = "no answer to $GS (3 attempts on /dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A50285BI-if00)"
    status = connector_status(pilot=C, mode=ON, fault=GFCI, link_problem=problem, operative=False,
                              transaction=True, finishing=False, pending_start=False)
    assert (status.status, status.error_code, status.vendor_error_code) == ("Faulted", "InternalError", "serial")
    assert status.info == problem[:50]
    assert charge_point_status(link_problem=problem, operative=True).status == "Faulted"


def test_before_the_first_reading_and_without_pilot() -> None:
    common = dict(fault=None, link_problem=None, operative=True, transaction=False, finishing=False,
                  pending_start=False)
    assert connector_status(pilot=None, mode=None, **common).status == "Unavailable"
    assert connector_status(pilot=E, mode=ON, **common).error_code == "EVCommunicationError"
    assert charge_point_status(link_problem=None, operative=False).status == "Unavailable"


@pytest.mark.parametrize("limit, online, expected", [
    (None, True, 32),      # no profile: the installation's maximum
    (None, False, 10),     # offline: the default current
    (16.0, True, 16),
    (10.7, True, 10),      # rounded down, never up
    (15.999999999999998, True, 16),  # a W profile converted to 16 A stays 16 A
    (40.0, True, 32),      # never above the hardware
    (8.0, False, 8),       # offline: the profile, when lower than the default
    (12.0, False, 10),     # offline: the default, when lower than the profile
    (6.0, True, 6),
    (5.99, True, None),    # below the minimum: sleep, not less than 6 A
    (0.0, True, None),
])
def test_charging_amps(limit, online, expected) -> None:
    assert charging_amps(limit, online=online, default_current=10, max_current=32) == expected


@given(limit=st.one_of(st.none(), st.floats(min_value=0, max_value=1000, allow_nan=False)),
       online=st.booleans(), default=st.floats(min_value=6, max_value=80), maximum=st.floats(min_value=6, max_value=80))
def test_the_current_offered_never_exceeds_any_limit(limit, online, default, maximum) -> None:
    amps = charging_amps(limit, online=online, default_current=default, max_current=maximum)
    if amps is None:
        return
    assert isinstance(amps, int) and amps >= MIN_CURRENT
    assert amps <= maximum + 1e-6
    if limit is not None:
        assert amps <= limit + 1e-6
    if not online:
        assert amps <= default + 1e-6
    # and it is the largest whole amp that keeps to all of them
    assert amps + 1 > min(x for x in (limit, maximum, None if online else default) if x is not None) - 1e-6
    assert not math.isnan(amps)


@pytest.mark.parametrize("operative, transaction, limit, online, mode, amps", [
    (True, False, None, True, ASLEEP, None),   # waits for authorization
    (False, False, None, True, OFF, None),
    (True, True, None, True, ON, 32),
    (True, True, 12.5, True, ON, 12),
    (True, True, 3.0, True, ASLEEP, None),
    (True, True, None, False, ON, 10),
    (False, True, None, True, ON, 32),         # Inoperative waits for the transaction's end
])
def test_wallbox_command(operative, transaction, limit, online, mode, amps) -> None:
    command = wallbox_command(operative=operative, transaction=transaction, limit=limit, online=online,
                              default_current=10, max_current=32)
    assert (command.mode, command.amps) == (mode, amps)
    assert command.reason


@pytest.mark.parametrize("pilot, transaction, tag, stop, expected", [
    (A, False, None, None, None),
    (B, False, None, None, None),             # plugged in, not authorized
    (A, False, "TAG", None, None),            # authorized, no vehicle yet
    (B, False, "TAG", None, Start("TAG")),
    (C, False, "TAG", None, Start("TAG")),
    (C, True, None, None, None),
    (A, True, None, None, Stop("EVDisconnected")),
    (B, True, None, "Remote", Stop("Remote")),
    (A, True, None, "HardReset", Stop("HardReset")),  # the reason asked for wins
    # A board that cannot tell yet (starting after a power cut): nothing starts or stops.
    (UNKNOWN, True, None, None, None),
    (UNKNOWN, False, "TAG", None, None),
    (UNKNOWN, True, None, "Remote", None),
])
def test_transaction_step(pilot, transaction, tag, stop, expected) -> None:
    assert transaction_step(pilot=pilot, transaction=transaction, authorized_tag=tag, stop_reason=stop) == expected


@pytest.mark.parametrize("last, now, interval, due", [
    (None, 5.0, 60, True), (0.0, 59.9, 60, False), (0.0, 60.0, 60, True), (None, 5.0, 0, False),
])
def test_meter_due(last, now, interval, due) -> None:
    assert meter_due(last, now, interval) is due
