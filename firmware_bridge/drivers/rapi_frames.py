"""OpenEVSE RAPI frames as plain data: encoding, checksums, parsing (pure).

A frame is one line: `$`, a two-letter command or reply, space-separated
parameters, optionally a sequence id token `:ss`, then `^xk` where xk is the
XOR of every byte before the `^` as two hex digits, and a carriage return.
Replies are `$OK ...` or `$NK ...`; the wallbox also sends frames on its own
(`$AT` state transitions, `$ST` on older firmware, `$AB` after a boot).

Replies without a checksum (firmware older than RAPI 2) are refused: on a
noisy line an unchecked frame could set a current nobody asked for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from firmware_bridge.drivers.base import DriverError, Fault, FaultKind, Mode, Pilot

ASYNC = frozenset({"AT", "ST", "AB", "AN", "WF"})
_FRAME = re.compile(r"^\$(?P<body>[A-Z0-9]{2}(?: [^\s^]*)*?)(?: ?:(?P<seq>[0-9A-Fa-f]{2}))?\^(?P<sum>[0-9A-Fa-f]{2})$")


class FrameError(DriverError):
    """A line that is not a valid RAPI frame (garbled, checksum wrong) or a value that makes no sense."""


@dataclass(frozen=True)
class Frame:
    code: str                 # OK, NK, AT, ... or a command such as SC
    params: tuple[str, ...]
    seq: int | None = None

    @property
    def is_async(self) -> bool:
        return self.code in ASYNC


def checksum(text: str) -> int:
    value = 0
    for byte in text.encode("ascii"):
        value ^= byte
    return value


def encode(code: str, *params: str | int, seq: int | None = None) -> bytes:
    """The bytes of one frame, e.g. encode("SC", 16, "V", seq=7) -> b"$SC 16 V :07^xx\\r"."""
    text = "$" + " ".join([code, *(str(p) for p in params)])
    if seq is not None:
        if not 1 <= seq <= 255:
            raise ValueError("a RAPI sequence id is 1..255 (0 means none)")
        text += f" :{seq:02X}"
    return f"{text}^{checksum(text):02X}\r".encode("ascii")


def decode(line: bytes) -> Frame:
    """One received line, without its carriage return. Raises FrameError."""
    try:
        text = line.decode("ascii").strip()
    except UnicodeDecodeError:
        raise FrameError(f"not ASCII: {line[:40]!r}") from None
    match = _FRAME.match(text)
    if match is None:
        raise FrameError(f"not a checksummed RAPI frame: {text[:40]!r}")
    given = int(match["sum"], 16)
    expected = checksum(text[: text.rindex("^")])
    if given != expected:
        raise FrameError(f"checksum {given:02X} is wrong, expected {expected:02X}: {text[:40]!r}")
    code, *params = match["body"].split(" ")
    seq = int(match["seq"], 16) if match["seq"] else None
    return Frame(code, tuple(params), seq)


# --- what the parameters mean -------------------------------------------------

# The EVSE state numbers of the OpenEVSE firmware (hex in $GS and $AT).
_PILOT_STATES = {0x01: Pilot.A, 0x02: Pilot.B, 0x03: Pilot.C, 0x04: Pilot.D}
SLEEPING, DISABLED = 0xFE, 0xFF
_FAULTS = {
    0x05: (FaultKind.VEHICLE, "diode check failed"),
    0x06: (FaultKind.GROUND, "GFCI fault"),
    0x07: (FaultKind.GROUND, "no ground"),
    0x08: (FaultKind.RELAY, "stuck relay"),
    0x09: (FaultKind.GROUND, "GFI self test failed"),
    0x0A: (FaultKind.OVER_TEMPERATURE, "over temperature"),
    0x0B: (FaultKind.OVER_CURRENT, "over current"),
    0x0E: (FaultKind.RELAY, "relay closure fault"),
}


def pilot_of(pilot_state: int) -> Pilot:
    return _PILOT_STATES.get(pilot_state, Pilot.UNKNOWN)


def interpret_state(evse_state: int, pilot_state: int) -> tuple[Pilot, Mode, Fault | None]:
    """$GS / $AT states -> what the vehicle does, whether the wallbox may supply, its fault.

    While the wallbox sleeps or has a fault, its own state says so and the
    separate pilot state still tells whether a vehicle is plugged in.
    """
    if evse_state in _PILOT_STATES:
        return _PILOT_STATES[evse_state], Mode.ENABLED, None
    pilot = pilot_of(pilot_state)
    if evse_state == SLEEPING:
        return pilot, Mode.SLEEPING, None
    if evse_state == DISABLED:
        return pilot, Mode.DISABLED, None
    if evse_state in _FAULTS:
        kind, info = _FAULTS[evse_state]
        return pilot, Mode.ENABLED, Fault(kind, f"{evse_state:02X}", info)
    if evse_state == 0x00:  # still starting up: no verdict yet
        return Pilot.UNKNOWN, Mode.ENABLED, None
    return pilot, Mode.ENABLED, Fault(FaultKind.OTHER, f"{evse_state:02X}", "unknown wallbox state")


def number(text: str, *, base: int = 10) -> int:
    try:
        return int(text, base)
    except ValueError:
        raise FrameError(f"{text!r} is not a number") from None
