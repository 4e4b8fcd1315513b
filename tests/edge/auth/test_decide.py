"""The authorization decision, pinned case by case.

One site model, read it like an installer's config:

- garage (private: tenants, fleet)            CP-G1 (every connector), CP-D
- office (private: staff, fleet), Mon-Fri 07:00-19:00, inoperative outside  CP-O1, CP-D
- shared (all-known), daily 08:00-20:00, operative-private outside (tenants)  CP-S1
- street (free-vend)                           CP-F1
- kiosk  (free-vend), daily 08:00-20:00, operative-private outside (staff)  CP-K1
- night  (all-known), daily 22:00-06:00, inoperative outside  CP-N1
- bay2   (private: staff)                      CP-M connector 2 only
- CP-U is in no charge group; the site's default policy is "closed".

All times are Europe/Berlin; `now` is handed to decide in UTC, as the shell does.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from typing import NamedTuple
from zoneinfo import ZoneInfo

import pytest

from edge.auth.decide import decide
from edge.auth.model import AuthModel, Evse, OpeningHours, build_model
from edge.ocpp.v16.authorization import id_tag_info

BERLIN = ZoneInfo("Europe/Berlin")


def at(local: str, tz: ZoneInfo = BERLIN) -> datetime:
    """'2026-06-03 10:00' in the site's zone, as a UTC instant."""
    return datetime.fromisoformat(local).replace(tzinfo=tz).astimezone(timezone.utc)


NOW = at("2026-06-03 10:00")          # a Wednesday, in everyone's opening hours
SATURDAY = at("2026-06-06 10:00")
EVENING = at("2026-06-03 21:00")      # after every day window, before the night window

ALICE = "04:a2:b3:c4"                 # tenants
BOB = "11:22:33:44"                   # tenants, with an expiry in the future
BLOCKED = "DE:AD:BE:EF"               # tenants, blocked
EXPIRED = "CA:FE:00:01"               # staff, expired in January
EXPIRES_NOW = "CA:FE:00:03"           # staff, expiry == NOW (written in +02:00)
EXPIRES_SOON = "CA:FE:00:04"          # staff, expiry one second after NOW
STAFF = "CA:FE:00:02"                 # staff
FLEET = "app-fleet-1"                 # fleet, an opaque id (app), allow_concurrent
VISITOR = "0A:0B:0C:0D"               # visitors: listed for no charge group
ALUMNUS = "AA:BB:CC:DD"               # alumni: an archived group
UNKNOWN = "99:88:77:66"

BOB_EXPIRY = datetime(2027, 1, 1, tzinfo=timezone(timedelta(hours=1)))


EVERY_DAY = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def daily(start: str, end: str, days: tuple[str, ...] = EVERY_DAY) -> OpeningHours:
    window = (time.fromisoformat(start), time.fromisoformat(end))
    return OpeningHours({d: (window,) for d in days})


def site(default_policy: str = "closed") -> AuthModel:
    return build_model(
        7,
        user_groups=[
            {"id": "tenants", "charge_groups": frozenset({"garage", "shared"})},
            {"id": "staff", "charge_groups": frozenset({"office", "kiosk", "bay2"})},
            {"id": "fleet", "charge_groups": frozenset({"office", "garage"}), "allow_concurrent": True},
            {"id": "visitors"},
            {"id": "alumni", "charge_groups": frozenset({"garage"}), "archived": True},
        ],
        charge_groups=[
            {"id": "garage", "policy": "private", "evses": (Evse("CP-G1"), Evse("CP-D"))},
            {"id": "office", "policy": "private", "evses": (Evse("CP-O1"), Evse("CP-D")),
             "opening_hours": daily("07:00", "19:00", ("mon", "tue", "wed", "thu", "fri"))},
            {"id": "shared", "policy": "all-known", "evses": (Evse("CP-S1"),),
             "opening_hours": daily("08:00", "20:00"), "outside_hours": "operative-private"},
            {"id": "street", "policy": "free-vend", "evses": (Evse("CP-F1"),)},
            {"id": "kiosk", "policy": "free-vend", "evses": (Evse("CP-K1"),),
             "opening_hours": daily("08:00", "20:00"), "outside_hours": "operative-private"},
            {"id": "night", "policy": "all-known", "evses": (Evse("CP-N1"),), "opening_hours": daily("22:00", "06:00")},
            {"id": "bay2", "policy": "private", "evses": (Evse("CP-M", 2),)},
        ],
        tokens=[
            {"uid": ALICE, "user_group": "tenants", "user": "alice"},
            {"uid": BOB, "user_group": "tenants", "user": "bob", "expiry": BOB_EXPIRY},
            {"uid": BLOCKED, "user_group": "tenants", "status": "Blocked", "expiry": BOB_EXPIRY},
            {"uid": EXPIRED, "user_group": "staff", "expiry": at("2026-01-01 00:00")},
            {"uid": EXPIRES_NOW, "user_group": "staff",
             "expiry": NOW.astimezone(timezone(timedelta(hours=2)))},
            {"uid": EXPIRES_SOON, "user_group": "staff", "expiry": NOW + timedelta(seconds=1)},
            {"uid": STAFF, "user_group": "staff", "user": "sam"},
            {"id_tag": FLEET, "user_group": "fleet"},
            {"uid": VISITOR, "user_group": "visitors"},
            {"uid": ALUMNUS, "user_group": "alumni"},
        ],
        default_policy=default_policy,
    )


MODEL = site()


class Case(NamedTuple):
    charger: str
    connector: int | None
    id_tag: str | None
    status: str
    via: str | None = None       # the charge group that admitted it (Accepted only)
    now: datetime = NOW


CASES = [
    # Accepted
    pytest.param(Case("CP-G1", 1, ALICE, "Accepted", "garage"), id="tenant-in-private-garage"),
    pytest.param(Case("CP-G1", 2, "c4b3a204", "Accepted", "garage"), id="tenant-card-read-in-reversed-byte-order"),
    pytest.param(Case("CP-G1", 1, "04-A2-B3-C4", "Accepted", "garage"), id="tenant-card-spelled-with-dashes"),
    pytest.param(Case("CP-G1", None, ALICE, "Accepted", "garage"), id="tenant-authorize-without-connector"),
    pytest.param(Case("CP-G1", 1, BOB, "Accepted", "garage"), id="token-with-future-expiry"),
    pytest.param(Case("CP-O1", 1, STAFF, "Accepted", "office"), id="staff-in-office-hours"),
    pytest.param(Case("CP-O1", 1, EXPIRES_SOON, "Accepted", "office"), id="expiry-one-second-after-now"),
    pytest.param(Case("CP-G1", 1, "APP-FLEET-1", "Accepted", "garage"), id="opaque-id-any-case"),
    pytest.param(Case("CP-S1", 1, VISITOR, "Accepted", "shared"), id="all-known-admits-any-group-in-hours"),
    # Blocked: before anything else, even where no token is needed
    pytest.param(Case("CP-G1", 1, BLOCKED, "Blocked"), id="blocked-in-its-own-garage"),
    pytest.param(Case("CP-F1", 1, BLOCKED, "Blocked"), id="blocked-at-free-vend"),
    pytest.param(Case("CP-U", 1, BLOCKED, "Blocked"), id="blocked-at-evse-in-no-group"),
    pytest.param(Case("CP-G1", 1, "ef:be:ad:de", "Blocked"), id="blocked-card-in-reversed-byte-order"),
    # Expired
    pytest.param(Case("CP-O1", 1, EXPIRED, "Expired"), id="expired-in-january"),
    pytest.param(Case("CP-O1", 1, EXPIRES_NOW, "Expired"), id="expiry-exactly-now-is-expired"),
    pytest.param(Case("CP-G1", 1, EXPIRED, "Expired"), id="expired-even-where-not-admitted"),
    # Invalid
    pytest.param(Case("CP-G1", 1, UNKNOWN, "Invalid"), id="unknown-token-at-private"),
    pytest.param(Case("CP-S1", 1, UNKNOWN, "Invalid"), id="unknown-token-at-all-known"),
    pytest.param(Case("CP-G1", 1, ALUMNUS, "Invalid"), id="user-group-archived"),
    pytest.param(Case("CP-G1", 1, VISITOR, "Invalid"), id="private-garage-does-not-admit-visitors"),
    pytest.param(Case("CP-G1", 1, STAFF, "Invalid"), id="private-garage-does-not-admit-staff"),
    pytest.param(Case("CP-G1", 1, None, "Invalid"), id="private-needs-a-token"),
    pytest.param(Case("CP-S1", 1, None, "Invalid"), id="all-known-needs-a-token"),
    pytest.param(Case("CP-O1", 1, STAFF, "Invalid", now=SATURDAY), id="office-closed-on-saturday"),
    pytest.param(Case("CP-O1", 1, STAFF, "Invalid", now=at("2026-06-03 19:00")), id="office-closes-at-19"),
    pytest.param(Case("CP-O1", 1, STAFF, "Invalid", now=at("2026-06-03 06:59")), id="office-opens-at-7"),
    pytest.param(Case("CP-O1", 1, STAFF, "Accepted", "office", at("2026-06-03 07:00")), id="office-open-at-7"),
    pytest.param(Case("CP-O1", 1, STAFF, "Accepted", "office", at("2026-06-03 18:59")), id="office-open-at-18-59"),
    pytest.param(Case("CP-U", 1, ALICE, "Invalid"), id="default-closed-evse-in-no-group"),
    pytest.param(Case("CP-U", 1, None, "Invalid"), id="default-closed-no-token"),
    pytest.param(Case("CP-NEW", 1, ALICE, "Invalid"), id="default-closed-unconfigured-charger"),
    # Free vend: no token needed; an unknown tag is just a customer without a card here
    pytest.param(Case("CP-F1", 1, None, "Accepted", "street"), id="free-vend-without-token"),
    pytest.param(Case("CP-F1", 1, UNKNOWN, "Accepted", "street"), id="free-vend-unknown-tag"),
    pytest.param(Case("CP-F1", 1, VISITOR, "Accepted", "street"), id="free-vend-known-tag"),
    # Operative-private outside hours: only the group's own users
    pytest.param(Case("CP-S1", 1, VISITOR, "Invalid", now=EVENING), id="shared-after-hours-not-for-visitors"),
    pytest.param(Case("CP-S1", 1, ALICE, "Accepted", "shared", EVENING), id="shared-after-hours-for-tenants"),
    pytest.param(Case("CP-K1", 1, None, "Accepted", "kiosk"), id="free-vend-kiosk-in-hours"),
    pytest.param(Case("CP-K1", 1, ALICE, "Accepted", "kiosk"), id="free-vend-kiosk-in-hours-anyone"),
    pytest.param(Case("CP-K1", 1, None, "Invalid", now=EVENING), id="free-vend-kiosk-after-hours-no-token"),
    pytest.param(Case("CP-K1", 1, UNKNOWN, "Invalid", now=EVENING), id="free-vend-kiosk-after-hours-unknown"),
    pytest.param(Case("CP-K1", 1, ALICE, "Invalid", now=EVENING), id="free-vend-kiosk-after-hours-tenant"),
    pytest.param(Case("CP-K1", 1, STAFF, "Accepted", "kiosk", EVENING), id="free-vend-kiosk-after-hours-staff"),
    # Opening hours across midnight (22:00-06:00)
    pytest.param(Case("CP-N1", 1, VISITOR, "Accepted", "night", at("2026-06-03 22:00")), id="night-opens-at-22"),
    pytest.param(Case("CP-N1", 1, VISITOR, "Accepted", "night", at("2026-06-03 23:59")), id="night-before-midnight"),
    pytest.param(Case("CP-N1", 1, VISITOR, "Accepted", "night", at("2026-06-04 00:00")), id="night-at-midnight"),
    pytest.param(Case("CP-N1", 1, VISITOR, "Accepted", "night", at("2026-06-04 05:59")), id="night-at-05-59"),
    pytest.param(Case("CP-N1", 1, VISITOR, "Invalid", now=at("2026-06-04 06:00")), id="night-closes-at-06"),
    pytest.param(Case("CP-N1", 1, VISITOR, "Invalid", now=at("2026-06-03 21:59")), id="night-closed-at-21-59"),
    pytest.param(Case("CP-N1", 1, VISITOR, "Invalid"), id="night-closed-at-10"),
    # An EVSE in two charge groups: admitted if either admits
    pytest.param(Case("CP-D", 1, ALICE, "Accepted", "garage"), id="two-groups-first-admits"),
    pytest.param(Case("CP-D", 1, STAFF, "Accepted", "office"), id="two-groups-second-admits"),
    pytest.param(Case("CP-D", 1, ALICE, "Accepted", "garage", SATURDAY), id="two-groups-one-closed-other-admits"),
    pytest.param(Case("CP-D", 1, STAFF, "Invalid", now=SATURDAY), id="two-groups-admitting-one-is-closed"),
    pytest.param(Case("CP-D", 1, VISITOR, "Invalid"), id="two-groups-neither-admits"),
    # A group restricted to one connector
    pytest.param(Case("CP-M", 2, STAFF, "Accepted", "bay2"), id="connector-2-group-on-connector-2"),
    pytest.param(Case("CP-M", 1, STAFF, "Invalid"), id="connector-2-group-not-on-connector-1"),
    pytest.param(Case("CP-M", None, STAFF, "Accepted", "bay2"), id="connector-2-group-for-authorize"),
    pytest.param(Case("CP-M", 2, ALICE, "Invalid"), id="connector-2-group-private"),
]


def run(case: Case, model: AuthModel = MODEL, running: dict | None = None, tz: ZoneInfo = BERLIN):
    return decide(model, charger_id=case.charger, connector_id=case.connector, id_tag=case.id_tag,
                  now=case.now, tz=tz, running=running)


@pytest.mark.parametrize("case", CASES)
def test_decide(case: Case) -> None:
    decision = run(case)
    assert decision.status == case.status, decision.reason
    assert decision.reason
    if case.status == "Accepted":
        assert decision.charge_group == case.via, decision.reason


@pytest.mark.parametrize(
    ("case", "reason_has"),
    [
        pytest.param(Case("CP-O1", 1, STAFF, "Invalid", now=SATURDAY), "opening hours", id="closed-by-hours"),
        pytest.param(Case("CP-G1", 1, VISITOR, "Invalid"), '"garage"', id="private-names-the-group"),
        pytest.param(Case("CP-G1", 1, UNKNOWN, "Invalid"), "unknown token", id="unknown"),
        pytest.param(Case("CP-G1", 1, ALUMNUS, "Invalid"), "archived", id="archived"),
        pytest.param(Case("CP-U", 1, ALICE, "Invalid"), "no charge group", id="default-closed"),
        pytest.param(Case("CP-G1", 1, BLOCKED, "Blocked"), "blocked", id="blocked"),
    ],
)
def test_a_refusal_says_why(case: Case, reason_has: str) -> None:
    decision = run(case)
    assert decision.status == case.status
    assert reason_has in decision.reason


@pytest.mark.parametrize(
    ("case", "parent"),
    [
        pytest.param(Case("CP-G1", 1, ALICE, "Accepted"), "tenants", id="accepted"),
        pytest.param(Case("CP-G1", 1, "APP-FLEET-1", "Accepted"), "fleet", id="accepted-opaque-id"),
        pytest.param(Case("CP-G1", 1, BLOCKED, "Blocked"), "tenants", id="blocked"),
        pytest.param(Case("CP-O1", 1, EXPIRED, "Expired"), "staff", id="expired"),
        pytest.param(Case("CP-G1", 1, STAFF, "Invalid"), "staff", id="invalid-private"),
        pytest.param(Case("CP-G1", 1, ALUMNUS, "Invalid"), "alumni", id="invalid-archived"),
        pytest.param(Case("CP-G1", 1, UNKNOWN, "Invalid"), None, id="unknown-has-no-parent"),
        pytest.param(Case("CP-F1", 1, UNKNOWN, "Accepted"), None, id="anonymous-free-vend-has-no-parent"),
        pytest.param(Case("CP-F1", 1, None, "Accepted"), None, id="no-token-has-no-parent"),
    ],
)
def test_parent_id_tag_is_the_user_group(case: Case, parent: str | None) -> None:
    decision = run(case)
    assert decision.status == case.status
    assert decision.parent_id_tag == parent
    assert decision.user_group == parent
    assert id_tag_info(decision).get("parent_id_tag") == parent


@pytest.mark.parametrize(
    ("case", "expiry"),
    [
        pytest.param(Case("CP-G1", 1, BOB, "Accepted"), BOB_EXPIRY, id="accepted"),
        pytest.param(Case("CP-O1", 1, EXPIRED, "Expired"), at("2026-01-01 00:00"), id="expired"),
        pytest.param(Case("CP-G1", 1, ALICE, "Accepted"), None, id="no-expiry"),
    ],
)
def test_expiry_date_echoes_the_token_expiry(case: Case, expiry: datetime | None) -> None:
    decision = run(case)
    assert decision.status == case.status
    if expiry is None:
        assert decision.expiry_date is None
        assert "expiry_date" not in id_tag_info(decision)
    else:
        assert decision.expiry_date is not None
        assert datetime.fromisoformat(decision.expiry_date) == expiry
        assert datetime.fromisoformat(decision.expiry_date).utcoffset() is not None
        assert id_tag_info(decision)["expiry_date"] == decision.expiry_date


def test_id_tag_info_of_an_accepted_token() -> None:
    decision = run(Case("CP-G1", 1, BOB, "Accepted"))
    assert id_tag_info(decision) == {"status": "Accepted", "expiry_date": BOB_EXPIRY.isoformat(),
                                      "parent_id_tag": "tenants"}
    assert decision.token is not None and decision.token.user == "bob"


@pytest.mark.parametrize(
    ("case", "anonymous", "token_user"),
    [
        pytest.param(Case("CP-F1", 1, None, "Accepted"), True, None, id="no-token"),
        pytest.param(Case("CP-F1", 1, UNKNOWN, "Accepted"), True, None, id="unknown-tag"),
        pytest.param(Case("CP-F1", 2, "", "Accepted"), True, None, id="empty-tag"),
        pytest.param(Case("CP-F1", 1, ALICE, "Accepted"), False, "alice", id="known-tag-is-not-anonymous"),
        pytest.param(Case("CP-G1", 1, ALICE, "Accepted"), False, "alice", id="private"),
    ],
)
def test_free_vend_is_anonymous_only_without_a_known_token(case: Case, anonymous: bool, token_user: str | None) -> None:
    decision = run(case)
    assert decision.status == "Accepted", decision.reason
    assert decision.anonymous is anonymous
    assert (decision.token.user if decision.token else None) == token_user


@pytest.mark.parametrize(
    ("default_policy", "id_tag", "status", "anonymous"),
    [
        pytest.param("all-known", ALICE, "Accepted", False, id="all-known-known-token"),
        pytest.param("all-known", VISITOR, "Accepted", False, id="all-known-token-of-a-group-listed-nowhere"),
        pytest.param("all-known", UNKNOWN, "Invalid", False, id="all-known-unknown-token"),
        pytest.param("all-known", None, "Invalid", False, id="all-known-no-token"),
        pytest.param("all-known", BLOCKED, "Blocked", False, id="all-known-blocked"),
        pytest.param("free-vend", None, "Accepted", True, id="free-vend-no-token"),
        pytest.param("free-vend", UNKNOWN, "Accepted", True, id="free-vend-unknown-token"),
        pytest.param("free-vend", ALICE, "Accepted", False, id="free-vend-known-token"),
        pytest.param("free-vend", BLOCKED, "Blocked", False, id="free-vend-blocked"),
        pytest.param("closed", ALICE, "Invalid", False, id="closed-known-token"),
        pytest.param("closed", None, "Invalid", False, id="closed-no-token"),
    ],
)
def test_default_policy_for_an_evse_in_no_group(default_policy: str, id_tag: str | None, status: str,
                                                anonymous: bool) -> None:
    decision = run(Case("CP-U", 1, id_tag, status), model=site(default_policy))
    assert decision.status == status, decision.reason
    assert decision.anonymous is anonymous
    assert decision.charge_group is None
    # The EVSEs that are in groups keep their own policy whatever the default.
    assert run(Case("CP-G1", 1, VISITOR, "Invalid"), model=site(default_policy)).status == "Invalid"


ALICE_AT_G1_1 = {"04A2B3C4": ("CP-G1", 1)}
FLEET_AT_O1 = {"APP-FLEET-1": ("CP-O1", 1)}


@pytest.mark.parametrize(
    ("case", "running"),
    [
        pytest.param(Case("CP-D", 1, ALICE, "ConcurrentTx"), ALICE_AT_G1_1, id="another-charger"),
        pytest.param(Case("CP-D", None, ALICE, "ConcurrentTx"), ALICE_AT_G1_1, id="authorize-at-another-charger"),
        pytest.param(Case("CP-G1", 2, ALICE, "ConcurrentTx"), ALICE_AT_G1_1, id="another-connector-same-charger"),
        pytest.param(Case("CP-G1", 2, "c4:b3:a2:04", "ConcurrentTx"), ALICE_AT_G1_1,
                     id="another-connector-card-read-reversed"),
        pytest.param(Case("CP-G1", 1, ALICE, "Accepted"), ALICE_AT_G1_1, id="tap-again-at-same-connector"),
        pytest.param(Case("CP-G1", None, ALICE, "Accepted"), ALICE_AT_G1_1, id="authorize-at-same-charger"),
        pytest.param(Case("CP-G1", 1, "C4B3A204", "Accepted"), ALICE_AT_G1_1, id="tap-again-reversed-spelling"),
        pytest.param(Case("CP-G1", 1, BOB, "Accepted"), ALICE_AT_G1_1, id="someone-else-is-running"),
        pytest.param(Case("CP-G1", 2, ALICE, "Accepted"), {}, id="nothing-running"),
        pytest.param(Case("CP-G1", 2, "APP-FLEET-1", "Accepted"), FLEET_AT_O1, id="group-allows-concurrent"),
        pytest.param(Case("CP-G1", 2, BLOCKED, "Blocked"), {"DEADBEEF": ("CP-G1", 1)}, id="blocked-wins"),
        pytest.param(Case("CP-G1", 2, VISITOR, "Invalid"), {"0A0B0C0D": ("CP-D", 1)}, id="not-admitted-wins"),
    ],
)
def test_concurrent_transactions(case: Case, running: dict) -> None:
    decision = run(case, running=running)
    assert decision.status == case.status, decision.reason
    if case.status == "ConcurrentTx":
        assert decision.parent_id_tag == "tenants"
        assert "CP-G1" in decision.reason


def test_concurrent_tx_echoes_expiry_and_parent() -> None:
    decision = run(Case("CP-D", 1, BOB, "ConcurrentTx"), running={"11223344": ("CP-G1", 1)})
    assert id_tag_info(decision) == {"status": "ConcurrentTx", "expiry_date": BOB_EXPIRY.isoformat(),
                                      "parent_id_tag": "tenants"}


# Opening hours in the site's time zone, on ordinary days and on both DST changes
# (Europe/Berlin: 2026-03-29 02:00 CET -> 03:00 CEST at 01:00Z; 2026-10-25 03:00 CEST
# -> 02:00 CET at 01:00Z). A fixed UTC offset gets these wrong by an hour.

HOURS_MODEL = build_model(
    1,
    user_groups=[{"id": "anyone"}],
    charge_groups=[
        {"id": "day", "policy": "all-known", "evses": (Evse("CP-DAY"),), "opening_hours": daily("07:00", "19:00")},
        {"id": "overnight", "policy": "all-known", "evses": (Evse("CP-NIGHT"),),
         "opening_hours": daily("22:00", "06:00")},
        {"id": "fri-night", "policy": "all-known", "evses": (Evse("CP-FRI"),),
         "opening_hours": daily("22:00", "06:00", ("fri",))},
        {"id": "early", "policy": "all-known", "evses": (Evse("CP-EARLY"),),
         "opening_hours": daily("02:00", "03:00")},
    ],
    tokens=[{"uid": "01:02:03:04", "user_group": "anyone"}],
    default_policy="closed",
)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("charger", "now", "is_open"),
    [
        # spring forward, 2026-03-29 (CEST, UTC+2 from 01:00Z)
        pytest.param("CP-DAY", utc("2026-03-29 04:59"), False, id="spring-day-06-59-cest"),
        pytest.param("CP-DAY", utc("2026-03-29 05:00"), True, id="spring-day-07-00-cest"),
        pytest.param("CP-DAY", utc("2026-03-29 16:59"), True, id="spring-day-18-59-cest"),
        pytest.param("CP-DAY", utc("2026-03-29 17:00"), False, id="spring-day-19-00-cest"),
        pytest.param("CP-NIGHT", utc("2026-03-28 20:59"), False, id="spring-night-eve-21-59-cet"),
        pytest.param("CP-NIGHT", utc("2026-03-28 21:00"), True, id="spring-night-eve-22-00-cet"),
        pytest.param("CP-NIGHT", utc("2026-03-29 00:59"), True, id="spring-night-01-59-cet"),
        pytest.param("CP-NIGHT", utc("2026-03-29 01:00"), True, id="spring-night-03-00-cest"),
        pytest.param("CP-NIGHT", utc("2026-03-29 03:59"), True, id="spring-night-05-59-cest"),
        pytest.param("CP-NIGHT", utc("2026-03-29 04:00"), False, id="spring-night-06-00-cest"),
        pytest.param("CP-NIGHT", utc("2026-03-29 20:00"), True, id="spring-night-22-00-cest"),
        pytest.param("CP-EARLY", utc("2026-03-29 00:59"), False, id="spring-early-01-59-cet"),
        pytest.param("CP-EARLY", utc("2026-03-29 01:00"), False, id="spring-02-00-to-03-00-never-happens"),
        # fall back, 2026-10-25 (CET, UTC+1 from 01:00Z)
        pytest.param("CP-DAY", utc("2026-10-25 05:59"), False, id="autumn-day-06-59-cet"),
        pytest.param("CP-DAY", utc("2026-10-25 06:00"), True, id="autumn-day-07-00-cet"),
        pytest.param("CP-DAY", utc("2026-10-25 17:59"), True, id="autumn-day-18-59-cet"),
        pytest.param("CP-DAY", utc("2026-10-25 18:00"), False, id="autumn-day-19-00-cet"),
        pytest.param("CP-NIGHT", utc("2026-10-24 19:59"), False, id="autumn-night-eve-21-59-cest"),
        pytest.param("CP-NIGHT", utc("2026-10-24 20:00"), True, id="autumn-night-eve-22-00-cest"),
        pytest.param("CP-NIGHT", utc("2026-10-25 04:59"), True, id="autumn-night-05-59-cet"),
        pytest.param("CP-NIGHT", utc("2026-10-25 05:00"), False, id="autumn-night-06-00-cet"),
        pytest.param("CP-EARLY", utc("2026-10-25 00:30"), True, id="autumn-early-first-02-30-cest"),
        pytest.param("CP-EARLY", utc("2026-10-25 01:30"), True, id="autumn-early-second-02-30-cet"),
        pytest.param("CP-EARLY", utc("2026-10-25 02:00"), False, id="autumn-early-03-00-cet"),
        # a window on Friday only, running into Saturday morning (2026-06-05 is a Friday)
        pytest.param("CP-FRI", at("2026-06-05 03:00"), False, id="fri-night-not-friday-morning"),
        pytest.param("CP-FRI", at("2026-06-05 21:59"), False, id="fri-night-friday-21-59"),
        pytest.param("CP-FRI", at("2026-06-05 22:00"), True, id="fri-night-friday-22-00"),
        pytest.param("CP-FRI", at("2026-06-06 03:00"), True, id="fri-night-saturday-03-00"),
        pytest.param("CP-FRI", at("2026-06-06 06:00"), False, id="fri-night-saturday-06-00"),
        pytest.param("CP-FRI", at("2026-06-06 23:00"), False, id="fri-night-not-saturday-night"),
        pytest.param("CP-FRI", at("2026-06-07 03:00"), False, id="fri-night-not-sunday-morning"),
    ],
)
def test_opening_hours_in_the_site_time_zone(charger: str, now: datetime, is_open: bool) -> None:
    decision = decide(HOURS_MODEL, charger_id=charger, connector_id=1, id_tag="01020304", now=now, tz=BERLIN)
    assert decision.status == ("Accepted" if is_open else "Invalid"), decision.reason


@pytest.mark.parametrize(
    ("tz", "is_open"),
    [
        pytest.param("Europe/Berlin", True, id="berlin-07-30"),
        pytest.param("UTC", False, id="utc-05-30"),
        pytest.param("America/New_York", False, id="new-york-01-30"),
        pytest.param("Asia/Tokyo", True, id="tokyo-14-30"),
        pytest.param("Asia/Kolkata", True, id="kolkata-11-00"),
        pytest.param("Pacific/Auckland", True, id="auckland-17-30-nzst"),
        pytest.param("America/Los_Angeles", False, id="los-angeles-22-30-previous-day"),
    ],
)
def test_the_same_instant_in_different_site_time_zones(tz: str, is_open: bool) -> None:
    decision = decide(HOURS_MODEL, charger_id="CP-DAY", connector_id=1, id_tag="01020304",
                      now=utc("2026-06-03 05:30"), tz=ZoneInfo(tz))
    assert decision.status == ("Accepted" if is_open else "Invalid"), decision.reason


def test_now_in_any_offset_is_the_same_instant() -> None:
    for offset in (-10, 0, 2, 9):
        now = utc("2026-06-03 05:30").astimezone(timezone(timedelta(hours=offset)))
        decision = decide(HOURS_MODEL, charger_id="CP-DAY", connector_id=1, id_tag="01020304", now=now, tz=BERLIN)
        assert decision.status == "Accepted", offset
