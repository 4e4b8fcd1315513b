"""The OCPP 1.6 payload boundary (pure): what a charger's frame must satisfy,
beyond the JSON schema, before any handler stores or computes on it.

The `ocpp` library checks each Call against the 1.6 JSON schemas, which say
"integer" without bounds, "date-time" without checking it (jsonschema ignores
`format`) and "string" without a length for a few fields. This module adds the
bounds, as data (the table RULES) and small functions, so the core only ever
meets clean values: no year 1, no 2**70, no 140 KB timestamp.

Two kinds of outcome (docs/robustness/ocpp-boundary.md explains the choice):

- **Refused**: a value that is not OCPP (outside the 32-bit integer type, a
  time that is not an RFC 3339 date-time, a string the field cannot hold) or
  that means nothing (connector 1000, a negative meter register). The frame
  gets the OCPP-J CALLERROR that names the field and the value; nothing of it
  is stored.
- **Repaired**: what real chargers get wrong while the record is still worth
  keeping. A well-formed time outside the plausible range (a charger whose
  clock was never set sends 0001-01-01 or 1970-01-01) becomes the time the
  frame arrived; a meter sample whose value is not a sane decimal is left out.
  Refusing a StopTransaction would make the charger retry until it gives up,
  and the session would be lost; the repaired record keeps the bill true
  (the edge's arrival time is the best estimate there is) and each repair
  is logged.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from ocpp.exceptions import (
    FormationViolationError,
    OCPPError,
    PropertyConstraintViolationError,
    TypeConstraintViolationError,
)

# No OCPP 1.6 PDU nests deeper than 6 (Call array > MeterValues payload >
# meterValue list > entry > sampledValue list > sample); 16 leaves room and
# stays far from Python's recursion limit in json and jsonschema.
MAX_DEPTH = 16
# OCPP's "integer" is 32-bit (OCPP 2.0.1 part 2 says so outright; 1.6
# chargers' firmware uses 32-bit fields). Outside it a value is not an integer
# of the protocol at all.
INT32_MIN, INT32_MAX = -(2 ** 31), 2 ** 31 - 1
# What any integer must fit, whatever it means: SQLite's INTEGER, and every JSON reader's int64.
INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1
# A Wh register: a busy DC charger passes 2**31 Wh (2.1 GWh) within its life; 2**53 is exact as a double.
MAX_METER_WH = 2 ** 53 - 1
# Connectors of one charge point: 0 is the charge point as a whole.
MAX_CONNECTOR_ID = 100
# Times a charger may plausibly mean. OCPP 1.6 was published in October 2015,
# so no 1.6 session started before 2015; an RTC that lost power reads 2000-01-01,
# 1970-01-01 or 0001-01-01, and none of those may reach the bill.
EARLIEST = datetime(2015, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(2100, 1, 1, tzinfo=timezone.utc)
FAR_PAST = datetime(1, 1, 1, tzinfo=timezone.utc)
FAR_FUTURE = datetime(9999, 12, 31, tzinfo=timezone.utc)
# "2026-11-23T10:00:00.123456789+01:00" is 35 characters.
MAX_DATE_TIME_CHARS = 40
# A sampled value in its "Raw" format: a decimal, e.g. "1234.5" (Wh, W, A, V,
# Percent...). A trillion is beyond any register or power a charger measures.
MAX_RAW_VALUE_CHARS = 40
MAX_SAMPLE_MAGNITUDE = 1e12
# "SignedData" values (OCMF and similar) are a few hundred bytes to a few KiB.
MAX_SIGNED_VALUE_CHARS = 8192
# Error details echo at most this much of a bad value.
ECHO_CHARS = 40

_DATE_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,9})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})?")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?")
# Strings in a JSON text (with their escapes), and what is left that nests.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_INNERMOST_PAIR = re.compile(r"\[\]|\{\}")
_UNIQUE_ID = re.compile(r'\s*\[\s*[0-9]+\s*,\s*("(?:[^"\\]|\\.){0,200}?")')


# -- the raw frame -----------------------------------------------------------

def nesting_depth_exceeds(frame: str | bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether a JSON text nests arrays/objects deeper than `limit`, found
    without parsing it (json and jsonschema recurse per level and fail with
    RecursionError on a few thousand). Brackets inside strings do not count.

    O(limit * n), every pass in the regex engine's C loop: strings are cut
    out, then innermost pairs are removed `limit` times; what remains of a
    well-formed text nested no deeper than `limit` is nothing."""
    text = frame.decode("utf-8", "replace") if isinstance(frame, (bytes, bytearray)) else frame
    if text.count("[") + text.count("{") <= limit:
        return False                    # every frame a charger really sends: one C pass, no regex
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    passes = 0
    while brackets and passes < limit:
        shorter = _INNERMOST_PAIR.sub("", brackets)
        if shorter == brackets:
            break                       # nothing innermost left: not well-formed
        brackets, passes = shorter, passes + 1
    # Each pass took one level off. What remains nests `passes` levels less
    # than the text did, or is not well-formed; its start tells which (short:
    # the balanced runs are gone).
    stack: list[str] = []
    for char in brackets:
        if char in "[{":
            stack.append(char)
            if len(stack) + passes > limit:
                return True
        elif not stack or "[{"["]}".index(char)] != stack.pop():
            return False        # not well-formed: the JSON parser will say so, from a shallow depth
    return False


def unique_id_of(frame: str | bytes) -> str:
    """The unique id of a frame we will not parse ('-1' when none is found:
    the charger cannot match it, but it sees the error). A regex over the
    frame's start, never a parse: the frame may be the thing that breaks parsers."""
    text = frame.decode("utf-8", "replace") if isinstance(frame, (bytes, bytearray)) else frame
    found = _UNIQUE_ID.match(text[:512])
    if found is None:
        return "-1"
    try:
        value = json.loads(found.group(1))
    except ValueError:
        return "-1"
    return value if isinstance(value, str) else "-1"


# -- values --------------------------------------------------------------------

def echo(value: Any) -> str:
    """A bad value as an error message may quote it: short and printable."""
    text = repr(value) if not isinstance(value, str) else value
    text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= ECHO_CHARS else f"{text[:ECHO_CHARS]}... ({len(text)} chars)"


def refusal(error: type[OCPPError], where: str, value: Any, why: str) -> OCPPError:
    return error(description=f"{where} {echo(value)} {why}", details={"field": where, "value": echo(value)})


class Malformed(ValueError):
    pass


def parse_date_time(text: Any) -> datetime:
    """An RFC 3339 date-time as a UTC datetime (no offset: taken as UTC, as
    chargers mean it). Raises Malformed for anything else. A leap second reads
    as :59.999999; a year far outside the plausible range (0000, 9999) comes
    back as FAR_PAST or FAR_FUTURE, only ever compared."""
    if not isinstance(text, str) or len(text) > MAX_DATE_TIME_CHARS:
        raise Malformed("is not an RFC 3339 date-time")
    found = _DATE_TIME.fullmatch(text)
    if found is None:
        raise Malformed("is not an RFC 3339 date-time (e.g. 2026-11-23T10:00:00Z)")
    year, month, day, hour, minute, second = (int(found.group(i)) for i in range(1, 7))
    fraction, offset = found.group(7), found.group(8)
    if second > 60:
        raise Malformed("is not a date-time: second must be in 0..60")
    micro = 999_999 if second == 60 else int((fraction or ".0")[1:7].ljust(6, "0"))
    far = not EARLIEST.year - 1 <= year <= LATEST.year
    try:
        # A far year is checked on a leap year of Python's range (0000-02-29 exists).
        moment = datetime(2000 if far else year, month, day, hour, minute, min(second, 59), micro)
    except ValueError as error:
        raise Malformed(f"is not a date-time: {error}") from None
    shift = timedelta(0)
    if offset and offset not in "Zz":
        hours, minutes = int(offset[1:3]), int(offset[4:6])
        if hours > 23 or minutes > 59:
            raise Malformed("has an offset that is not a time zone")
        shift = timedelta(hours=hours, minutes=minutes) * (1 if offset[0] == "+" else -1)
    if far:
        return FAR_PAST if year < EARLIEST.year else FAR_FUTURE
    return (moment - shift).replace(tzinfo=timezone.utc)


def plausible(moment: datetime) -> bool:
    return EARLIEST <= moment < LATEST


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- the payload -----------------------------------------------------------------

@dataclass(frozen=True)
class Repair:
    field: str                          # e.g. "timestamp", "meterValue[0].sampledValue[1].value"
    what: str                           # the sentence for the log

    def __str__(self) -> str:
        return self.what


@dataclass
class Checked:
    """A payload that passed: values to use, and what was repaired (for the log)."""
    payload: Any
    repairs: list[Repair] = field(default_factory=list)

    def repaired(self, name: str) -> bool:
        return any(r.field == name for r in self.repairs)


@dataclass(frozen=True)
class Context:
    arrived: str                        # the edge's time the frame arrived (UTC ISO), for repairs
    repairs: list[Repair]

    def repair(self, where: str, what: str) -> None:
        self.repairs.append(Repair(where, f"{where} {what}"))


Check = Callable[[str, Any, Context], Any]


def integer(low: int, high: int, meaning: str) -> Check:
    """An integer within int64 (what can be stored at all) and within [low, high] for its meaning."""
    def check(where: str, value: Any, ctx: Context) -> Any:
        if not isinstance(value, int) or isinstance(value, bool):
            return value                # the schema answers TypeConstraintViolation
        if not INT64_MIN <= value <= INT64_MAX:
            raise refusal(TypeConstraintViolationError, where, value,
                          f"is not a 64-bit integer ({INT64_MIN}..{INT64_MAX})")
        if not low <= value <= high:
            raise refusal(PropertyConstraintViolationError, where, value, f"is outside {low}..{high} ({meaning})")
        return value
    return check


def date_time(where: str, value: Any, ctx: Context) -> Any:
    """A time the message stands on: malformed is refused; implausible (an
    unset clock) is replaced by the arrival time, and the repair logged."""
    if not isinstance(value, str):
        return value
    try:
        moment = parse_date_time(value)
    except Malformed as why:
        raise refusal(TypeConstraintViolationError, where, value, str(why)) from None
    return _plausible_or_arrival(where, value, moment, ctx)


def sample_time(where: str, value: Any, ctx: Context) -> Any:
    """The time of a meter sample: anything unusable becomes the arrival time
    (as the sessions always did for samples), so a bad sample never costs the
    frame it came in: a refused StopTransaction would be retried and lost."""
    if not isinstance(value, str):
        return value
    try:
        moment = parse_date_time(value)
    except Malformed as why:
        ctx.repair(where, f"{echo(value)} {why}; used the arrival time {ctx.arrived}")
        return ctx.arrived
    return _plausible_or_arrival(where, value, moment, ctx)


def _plausible_or_arrival(where: str, value: str, moment: datetime, ctx: Context) -> str:
    if not plausible(moment):
        ctx.repair(where, f"{echo(value)} is outside {EARLIEST.year}..{LATEST.year - 1} "
                          f"(charger clock not set?); used the arrival time {ctx.arrived}")
        return ctx.arrived
    if value[17:19] == "60":
        return iso_utc(moment)          # a leap second: stored as a moment Python reads back
    return value


def sampled_value_ok(sample: dict[str, Any]) -> str | None:
    """Why a sample's value is unusable, or None when it is fine."""
    value = sample.get("value")
    if not isinstance(value, str):
        return None                     # the schema answers
    if sample.get("format") == "SignedData":
        return None if len(value) <= MAX_SIGNED_VALUE_CHARS else f"is signed data over {MAX_SIGNED_VALUE_CHARS} chars"
    if len(value) > MAX_RAW_VALUE_CHARS or _DECIMAL.fullmatch(value.strip()) is None:
        return "is not a decimal number"
    number = float(value)
    if not math.isfinite(number) or abs(number) > MAX_SAMPLE_MAGNITUDE:
        return f"is outside +-{MAX_SAMPLE_MAGNITUDE:g}"
    return None


def meter_values_by(unusable: Callable[[dict[str, Any]], str | None]) -> Check:
    """A MeterValue list's check: each entry's time checked as a sample time, samples whose value
    `unusable` says why it is unusable left out (and said so). 1.6 sends values as text, 2.0.1 as numbers."""
    def meter_values(where: str, value: Any, ctx: Context) -> Any:
        if not isinstance(value, list):
            return value
        entries = []
        for i, entry in enumerate(value):
            if not isinstance(entry, dict):
                entries.append(entry)
                continue
            entry = dict(entry)
            if "timestamp" in entry:
                entry["timestamp"] = sample_time(f"{where}[{i}].timestamp", entry["timestamp"], ctx)
            samples = entry.get("sampledValue")
            if isinstance(samples, list):
                kept = []
                for j, sample in enumerate(samples):
                    why = unusable(sample) if isinstance(sample, dict) else None
                    if why is None:
                        kept.append(sample)
                    else:
                        ctx.repair(f"{where}[{i}].sampledValue[{j}].value",
                                   f"{echo(sample.get('value'))} {why}; sample left out")
                entry["sampledValue"] = kept
            entries.append(entry)
        return entries
    return meter_values


meter_values = meter_values_by(sampled_value_ok)


METER_WH = integer(0, MAX_METER_WH, "Wh meter register, never negative")
ANY_INT32 = integer(INT32_MIN, INT32_MAX, "an id the central system hands out: 32-bit")
CONNECTOR = integer(0, MAX_CONNECTOR_ID, "connector id, 0 = the charge point")
CONNECTOR_OF_TRANSACTION = integer(1, MAX_CONNECTOR_ID, "connector id of a transaction, from 1")

# Per action, the fields the schema leaves open and the check each gets.
# Fields not listed are fully bounded by the 1.6 schema (enums, CiStrings with
# maxLength); DataTransfer.data is bounded by the frame size limit only.
RULES: dict[str, dict[str, Check]] = {
    "StartTransaction": {"connectorId": CONNECTOR_OF_TRANSACTION, "meterStart": METER_WH,
                         "reservationId": ANY_INT32, "timestamp": date_time},
    "StopTransaction": {"meterStop": METER_WH, "transactionId": ANY_INT32, "timestamp": date_time,
                        "transactionData": meter_values},
    "MeterValues": {"connectorId": CONNECTOR, "transactionId": ANY_INT32, "meterValue": meter_values},
    "StatusNotification": {"connectorId": CONNECTOR, "timestamp": date_time},
}


def check_call(action: str, payload: Any, arrived: str, *, strings_clean: bool = False) -> Checked:
    """The payload of a charger's Call, checked (see the module doc). Raises
    the OCPPError to answer with; returns the values to use otherwise. Fields
    of the wrong JSON type are left as they are for the schema to refuse.
    `strings_clean`: surrogate_free said so of the frame the payload was read
    from, so the walk through every string for lone surrogates is skipped."""
    if not strings_clean:
        _check_strings(payload, "")
    if not isinstance(payload, dict):
        return Checked(payload)
    ctx = Context(arrived, [])
    clean = dict(payload)
    for name, check in RULES.get(action, {}).items():
        if name in clean:
            clean[name] = check(name, clean[name], ctx)
    return Checked(clean, ctx.repairs)


# A JSON escape of a UTF-16 surrogate (\uD800 to \uDFFF), the only way a lone one gets into a string json reads
# from valid text.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def surrogate_free(frame: str | bytes) -> bool:
    """Whether no string json reads from this frame can hold a lone surrogate, known in one pass over the
    text (True: _check_strings would find none; False: it must look). A text frame is Unicode the
    websocket decoded from valid UTF-8, so a lone surrogate can only come from a \\uD800-\\uDFFF escape;
    a bytes frame (json decodes it with surrogatepass) and text holding surrogates are always looked at."""
    if not isinstance(frame, str):
        return False
    if not frame.isascii() and _has_surrogate(frame):
        return False
    return "\\u" not in frame or _SURROGATE_ESCAPE.search(frame) is None


def _check_strings(value: Any, where: str) -> None:
    """Every string must be storable text: JSON's \\ud800 escapes give Python
    strings with lone surrogates, which SQLite and every encoder refuse."""
    if isinstance(value, str):
        if _has_surrogate(value):
            raise refusal(FormationViolationError, where or "payload", value, "is not valid Unicode (lone surrogate)")
    elif isinstance(value, dict):
        for key, item in value.items():
            if _has_surrogate(key):
                raise refusal(FormationViolationError, f"a key in {where or 'payload'}", key,
                              "is not valid Unicode (lone surrogate)")
            _check_strings(item, f"{where}.{key}".lstrip("."))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_strings(item, f"{where}[{i}]")


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
