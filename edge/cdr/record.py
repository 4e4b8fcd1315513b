"""The charge detail record (CDR) and how one is built from a session (pure).

A CDR is what the operator bills from and what the cloud receives. Its id is
a name-based UUID of the site and the session, so building it again (after a
crash between the stop and the record) gives the same id, and records from
many sites merge without clashes.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from edge.cdr.energy import Reading, Usage, energy_curve
from edge.cdr.plausibility import Facts, Status, Thresholds, check
from edge.cdr.money import rounded
from edge.cdr.pins import Pinned
from edge.cdr.pricing import money_fields, not_billed, price
from edge.cdr.signed_data import record_status
from edge.cdr.tariffs import AuthKind, Tariff, TariffGroup
from edge.clock import iso, parse_iso

# Fixed forever: changing it would change every record's id.
CDR_NAMESPACE = uuid.UUID("6f1d0c3e-2a8b-4c55-9a51-0c7e3b1f4d21")
ENERGY = "Energy.Active.Import.Register"
POWER = "Power.Active.Import"


@dataclass(frozen=True)
class Cdr:
    id: str
    site_id: str
    timezone: str
    transaction_id: int | None           # None: a start that never happened (status Failed)
    charger_id: str
    connector_id: int | None
    id_tag: str | None
    user: str
    user_group: str | None
    authorization: AuthKind
    start_time: str                      # charger time, UTC ISO 8601
    stop_time: str
    start_received_at: str               # edge time
    stop_received_at: str
    meter_start_wh: int
    meter_stop_wh: int
    energy_kwh: str                      # meterStop - meterStart (3 decimals); negative if the charger said so
    duration_s: float
    charging_s: float
    idle_s: float
    max_power_kw: str
    average_power_kw: str                # energy over charging time
    stop_reason: str | None              # the charger's (OCPP reason)
    stopped_by_edge: str | None          # why the edge stopped or closed the session, if it did
    tariff_group: str | None
    tariff: str | None
    tariff_type: str | None
    currency: str
    vat_percent: str
    price_net: str
    vat: str
    price_gross: str
    price_components: list[dict] = field(default_factory=list)
    status: Status = "Successful"
    status_reasons: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    created_at: str = ""
    # Revisions: a transaction corrected after its record was made gets a new record with a new id
    # that supersedes the previous one (which is kept): credit and rebill, never a silent change.
    revision: int = 1
    supersedes: str | None = None        # the id of the record this one replaces
    revision_reason: str | None = None   # why it was made again
    # Exact money (docs/charge-records.md): the tariff's version and when it was pinned (the session's
    # start; None: not pinned, priced with the tariffs in force when the record was made).
    tariff_version: str | None = None
    tariff_pinned_at: str | None = None
    billed: bool = True                  # False for Error, Exclusion and Failed: the price fields are 0
    price_computed_gross: str | None = None   # what the tariff gives, billed or not
    charging_energy_kwh: str | None = None    # the energy of the charging intervals (average power's numerator)
    # Signed meter values (Eichrecht; edge/cdr/signed_data.py): {status: verified | invalid | unverifiable,
    # public_key, values: [{timestamp, context, encoding, signed_data, verification}]}; None: none were sent.
    signed_data: dict | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def cdr_id(site_id: str, *parts: object) -> str:
    return str(uuid.uuid5(CDR_NAMESPACE, "/".join([site_id, *map(str, parts)])))


def revised(cdr: Cdr, previous: dict[str, Any], why: str) -> Cdr:
    """`cdr`, built again for a corrected transaction, as the revision after `previous` (its latest
    record). The id is name-based on the first id and the revision number, so making the same
    revision again after a crash gives the same id (kept and sent once)."""
    number = previous.get("revision", 1) + 1
    return replace(cdr, id=cdr_id(cdr.site_id, cdr.id, "revision", number), revision=number,
                   supersedes=previous["id"], revision_reason=why)


def session_key(tx: dict[str, Any]) -> str:
    """What makes two records the same physical session (for 'duplicate')."""
    return "|".join(str(x) for x in (tx["charger_id"], tx["connector_id"], _norm(tx["start_time"]),
                                      tx["meter_start"], _norm(tx["stop_time"]), tx["meter_stop"]))


def _norm(text: str | None) -> str:
    moment = parse_iso(text or "")
    return iso(moment) if moment else str(text)


def readings(samples: list[dict[str, Any]], measurand: str) -> list[Reading]:
    """Journaled sample rows (arrival order) of one measurand at the outlet, as
    readings in arrival order; a timestamp without a total sums its phases."""
    by_stamp: dict[str, tuple[list[dict], list[dict]]] = {}     # stamp -> (totals, phases)
    for row in samples:
        if row["measurand"] == measurand and (row["location"] or "Outlet") == "Outlet" and row["phase"] != "N":
            totals, phases = by_stamp.setdefault(row["timestamp"], ([], []))
            (phases if row["phase"] else totals).append(row)
    out = []
    for stamp, (totals, phases) in by_stamp.items():
        moment = parse_iso(stamp)
        rows = totals[:1] or phases
        if moment is not None and rows:
            out.append(Reading(moment, sum(r["value"] for r in rows), rows[0]["unit"],
                               rows[0]["context"] or "Sample.Periodic"))
    return out


def _kw(watts: float | Decimal, rounding: str = ROUND_HALF_UP) -> str:
    exact = watts if isinstance(watts, Decimal) else Decimal(repr(watts))
    return str((exact / 1000).quantize(Decimal("0.001"), rounding))


@dataclass(frozen=True)
class Pricing:
    """What the site's config says about money and plausibility."""
    currency: str
    vat_percent: Decimal
    thresholds: Thresholds
    tz: ZoneInfo


def build_cdr(*, site_id: str, tx: dict[str, Any], samples: list[dict[str, Any]], kind: AuthKind, user: str,
              group: TariffGroup | str | None, tariff: Tariff | Pinned, evse_max_power_w: float, pricing: Pricing,
              duplicate_of: str | None, now: datetime) -> Cdr:
    """The CDR of a finished transaction (a journal row with its samples); `tariff` as pinned at its start."""
    pin = tariff if isinstance(tariff, Pinned) else Pinned(getattr(group, "id", group), tariff, "", "")
    tariff = pin.tariff
    flags: list[str] = [pin.note()] if pin.note() else []
    received_start = parse_iso(tx["start_received_at"]) or now
    received_stop = parse_iso(tx["stop_received_at"] or "") or now
    start, stop = parse_iso(tx["start_time"]), parse_iso(tx["stop_time"] or "")
    if start is None:
        flags.append(f"start time {tx['start_time']!r} is not a time; used the time it arrived")
        start = received_start
    if stop is None:
        flags.append(f"stop time {tx['stop_time']!r} is not a time; used the time it arrived")
        stop = received_stop
    meter_start, meter_stop = tx["meter_start"], tx["meter_stop"]
    curve = energy_curve(start, meter_start, stop, meter_stop, readings(samples, ENERGY), evse_max_power_w)
    usage = Usage.of(curve, readings(samples, POWER))
    flags += curve.problems
    energy_wh = meter_stop - meter_start
    cost = price(tariff, curve, usage, pricing.tz, pricing.currency, pricing.vat_percent)
    verdict = check(Facts(start, received_start, stop, energy_wh, usage.charging_s, evse_max_power_w, duplicate_of,
                          usage.charging_wh), pricing.thresholds)
    if verdict.status != "Successful":
        cost = not_billed(cost)
    for note in (tx.get("flag"), tx.get("edge_stop")):
        if note:
            flags.append(note)
    signed = record_status(tx.get("signed_values") or [], tx.get("meter_public_key"))
    if signed is not None and signed["status"] == "invalid":
        flags.append("a signed meter value does not verify with the meter's public key (see signed_data)")
    duration = (stop - start).total_seconds()
    return Cdr(
        id=cdr_id(site_id, "tx", tx["id"], _norm(tx["start_time"])), site_id=site_id, timezone=str(pricing.tz),
        transaction_id=tx["id"], charger_id=tx["charger_id"], connector_id=tx["connector_id"], id_tag=tx["id_tag"],
        user=user, user_group=tx.get("user_group"), authorization=kind,
        start_time=iso(start), stop_time=iso(stop), start_received_at=iso(received_start),
        stop_received_at=iso(received_stop), meter_start_wh=meter_start, meter_stop_wh=meter_stop,
        energy_kwh=str((Decimal(energy_wh) / 1000).quantize(Decimal("0.001"))), duration_s=duration,
        charging_s=usage.charging_s, idle_s=max(0.0, duration - usage.charging_s), max_power_kw=_kw(usage.max_power_w),
        # Rounded up: the shown average is above a level's max_kw exactly when the price says so.
        average_power_kw=_kw(usage.average_w, ROUND_CEILING), stop_reason=tx.get("stop_reason"),
        stopped_by_edge=tx.get("edge_stop"), tariff_group=pin.group, tariff=tariff.id, tariff_type=tariff.type,
        **money_fields(cost), status=verdict.status, status_reasons=list(verdict.reasons), flags=flags,
        created_at=iso(now), tariff_version=pin.book_version or None, tariff_pinned_at=pin.pinned_at or None,
        charging_energy_kwh=str((usage.charging_wh / 1000).quantize(Decimal("0.001"), ROUND_HALF_UP)),
        signed_data=signed)


def failed_cdr(*, site_id: str, charger_id: str, connector_id: int | None, id_tag: str | None, user: str,
               user_group: str | None, kind: AuthKind, attempted: datetime, given_up: datetime, why: str,
               pricing: Pricing) -> Cdr:
    """A start that never became a session (no car plugged in in time): kept, never billed."""
    at, until = iso(attempted), iso(given_up)
    return Cdr(
        id=cdr_id(site_id, "failed", charger_id, id_tag, at), site_id=site_id, timezone=str(pricing.tz),
        transaction_id=None, charger_id=charger_id, connector_id=connector_id, id_tag=id_tag, user=user,
        user_group=user_group, authorization=kind, start_time=at, stop_time=until, start_received_at=at,
        stop_received_at=until, meter_start_wh=0, meter_stop_wh=0, energy_kwh="0.000", duration_s=0.0,
        charging_s=0.0, idle_s=0.0, max_power_kw="0.000", average_power_kw="0.000", stop_reason=None,
        stopped_by_edge=why, tariff_group=None, tariff=None, tariff_type=None, currency=pricing.currency,
        vat_percent=str(pricing.vat_percent), price_net=_zero(pricing), vat=_zero(pricing),
        price_gross=_zero(pricing), status="Failed", status_reasons=[why], created_at=until, billed=False,
        price_computed_gross=_zero(pricing))


def _zero(pricing: Pricing) -> str:
    return str(rounded(Decimal(0), pricing.currency))
