"""Invariants of the authorization decision over random but valid sites.

Each example builds a model (user groups, charge groups with random policies,
EVSEs and opening hours, tokens with random status and expiry) and a random
question (charger, connector or an Authorize, a token in any spelling, an
unknown tag or no tag, a time, a site time zone, running sessions).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.auth.decide import AuthDecision, decide
from edge.auth.model import WEEKDAYS, AuthModel, Evse, IdToken, OpeningHours, build_model
from edge.auth.tokens import reversed_uid

CHARGERS = ("CP-1", "CP-2", "CP-3", "CP-4")
ZONES = tuple(ZoneInfo(z) for z in ("UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Pacific/Auckland"))
# Around both 2026 DST changes in Europe and an ordinary week.
EPOCHS = (datetime(2026, 3, 27, tzinfo=timezone.utc), datetime(2026, 6, 1, tzinfo=timezone.utc),
          datetime(2026, 10, 23, tzinfo=timezone.utc))


@dataclass
class Site:
    model: AuthModel
    spellings: dict[str, list[str]] = field(default_factory=dict)  # canonical id tag -> ways to present it


@dataclass
class Question:
    charger_id: str
    connector_id: int | None
    id_tag: str | None
    now: datetime
    tz: ZoneInfo
    running: dict[str, tuple[str, int]]


quarter_hours = st.integers(0, 24 * 4 - 1).map(lambda q: time(q // 4, q % 4 * 15))
windows = st.tuples(quarter_hours, quarter_hours)
opening_hours = st.dictionaries(st.sampled_from(WEEKDAYS), st.lists(windows, min_size=1, max_size=2).map(tuple),
                                max_size=7).map(OpeningHours)
evses = st.builds(Evse, st.sampled_from(CHARGERS), st.one_of(st.none(), st.integers(1, 3)))


@st.composite
def sites(draw) -> Site:
    charge_ids = [f"cg{i}" for i in range(draw(st.integers(0, 4)))]
    charge_groups = [{
        "id": cid,
        "policy": draw(st.sampled_from(["private", "all-known", "free-vend"])),
        "evses": tuple(draw(st.lists(evses, min_size=1, max_size=3))),
        "opening_hours": draw(opening_hours) if draw(st.integers(0, 2)) == 0 else None,
        "outside_hours": draw(st.sampled_from(["inoperative", "operative-private"])),
    } for cid in charge_ids]
    group_ids = [f"ug{i}" for i in range(draw(st.integers(1, 4)))]
    user_groups = [{
        "id": gid,
        "charge_groups": frozenset(draw(st.lists(st.sampled_from(charge_ids), unique=True)) if charge_ids else ()),
        "allow_concurrent": draw(st.booleans()),
        "archived": draw(st.integers(0, 5)) == 0,
    } for gid in group_ids]
    # UIDs: the first byte below 0x80 and the last at or above, so that no card is
    # another's reversal (build_model refuses that, rightly).
    uids = draw(st.lists(st.tuples(st.integers(0, 0x7F), st.binary(min_size=2, max_size=5), st.integers(0x80, 0xFF)),
                         max_size=6, unique_by=lambda t: (t[0], t[1], t[2])))
    opaque = draw(st.lists(st.sampled_from(["APP-ANNA", "APP-BEN", "REMOTE-7", "FLEET-X"]), max_size=3, unique=True))
    expiries = st.one_of(st.none(), st.none(), st.builds(lambda e, h: e + timedelta(hours=h), st.sampled_from(EPOCHS),
                                              st.integers(-48, 24 * 8)))
    tokens, spellings = [], {}
    for first, middle, last in uids:
        canonical = (bytes([first]) + middle + bytes([last])).hex().upper()
        pairs = [canonical[i:i + 2] for i in range(0, len(canonical), 2)]
        entered = draw(st.sampled_from([canonical, ":".join(pairs).lower(), "-".join(pairs)]))
        tokens.append({"uid": entered, "user_group": draw(st.sampled_from(group_ids)),
                       "status": draw(st.sampled_from(["Active"] * 4 + ["Blocked"])), "expiry": draw(expiries)})
        spellings[canonical] = [canonical, canonical.lower(), reversed_uid(canonical), ":".join(pairs),
                                " ".join(reversed(pairs)).lower()]
    for tag in opaque:
        tokens.append({"id_tag": tag.lower(), "user_group": draw(st.sampled_from(group_ids)),
                       "status": draw(st.sampled_from(["Active"] * 4 + ["Blocked"])), "expiry": draw(expiries)})
        spellings[tag] = [tag, tag.lower()]
    for t in tokens:
        if t["expiry"] is None:
            del t["expiry"]
    model = build_model(draw(st.integers(1, 100)), tokens=tokens, user_groups=user_groups,
                        charge_groups=charge_groups,
                        default_policy=draw(st.sampled_from(["all-known", "free-vend", "closed"])))
    return Site(model, spellings)


@st.composite
def questions(draw, site: Site) -> Question:
    known = sorted(site.spellings)
    other = draw(st.sampled_from([None, "FF00FF00", "unknown-1", "12", ""]))
    canonical = draw(st.sampled_from(known)) if known and draw(st.integers(0, 3)) else None
    id_tag = draw(st.sampled_from(site.spellings[canonical])) if canonical else other
    running: dict[str, tuple[str, int]] = {}
    places = st.tuples(st.sampled_from(CHARGERS), st.integers(1, 3))
    if known:
        running = draw(st.dictionaries(st.sampled_from(known), places, max_size=2))
    if canonical and draw(st.booleans()):
        running[canonical] = draw(places)  # often the presented token itself is charging somewhere
    now = draw(st.builds(lambda e, m: e + timedelta(minutes=m), st.sampled_from(EPOCHS), st.integers(0, 7 * 24 * 60)))
    token = site.model.tokens.get(canonical) if canonical else None
    if token is not None and token.expiry is not None and draw(st.integers(0, 3)) == 0:
        now = token.expiry  # the boundary: expiry exactly now
    return Question(
        charger_id=draw(st.sampled_from(CHARGERS + ("CP-NEW",))),
        connector_id=draw(st.sampled_from([None, 1, 2, 3])),
        id_tag=id_tag,
        now=now,
        tz=draw(st.sampled_from(ZONES)),
        running=running,
    )


cases = sites().flatmap(lambda s: st.tuples(st.just(s), questions(s)))


def ask(site: Site, q: Question) -> AuthDecision:
    return decide(site.model, charger_id=q.charger_id, connector_id=q.connector_id, id_tag=q.id_tag,
                  now=q.now, tz=q.tz, running=q.running)


def found(site: Site, q: Question) -> IdToken | None:
    return site.model.find(q.id_tag) if q.id_tag is not None else None


def check_blocked_or_expired_token_is_never_accepted(case: tuple[Site, Question]) -> None:
    site, q = case
    decision = ask(site, q)
    token = found(site, q)
    if token is not None and token.status == "Blocked":
        assert decision.status == "Blocked"
    elif token is not None and token.expiry is not None and token.expiry <= q.now:
        assert decision.status == "Expired"
        assert decision.expiry_date is not None
    if token is not None and (token.status == "Blocked" or (token.expiry is not None and token.expiry <= q.now)):
        assert decision.status != "Accepted"


def check_private_group_never_admits_an_outsider(case: tuple[Site, Question]) -> None:
    """Also a group of any policy that is closed now and operative-private: it is private until it opens."""
    site, q = case
    groups = site.model.groups_of(q.charger_id, q.connector_id)
    if len(groups) != 1:
        return
    group = groups[0]
    closed = group.opening_hours is not None and not group.opening_hours.is_open(q.now.astimezone(q.tz))
    if not (group.policy == "private" or (closed and group.outside_hours == "operative-private")):
        return
    decision = ask(site, q)
    if decision.status == "Accepted":
        token = found(site, q)
        assert token is not None, decision
        assert token.user_group in site.model.admitted_groups(group.id), decision
        assert not decision.anonymous


def check_closed_evse_admits_nobody(case: tuple[Site, Question]) -> None:
    """Every group of the EVSE closed and inoperative, or in no group on a closed site: nobody charges."""
    site, q = case
    groups = site.model.groups_of(q.charger_id, q.connector_id)
    local = q.now.astimezone(q.tz)
    if groups:
        shut = all(g.opening_hours is not None and not g.opening_hours.is_open(local)
                   and g.outside_hours == "inoperative" for g in groups)
    else:
        shut = site.model.default_policy == "closed"
    if shut:
        assert ask(site, q).status != "Accepted"


def check_no_token_is_accepted_where_an_open_free_vend_group_has_the_evse(case: tuple[Site, Question]) -> None:
    site, q = case
    local = q.now.astimezone(q.tz)
    free = [g for g in site.model.groups_of(q.charger_id, q.connector_id) if g.policy == "free-vend"
            and (g.opening_hours is None or g.opening_hours.is_open(local))]
    decision = decide(site.model, charger_id=q.charger_id, connector_id=q.connector_id, id_tag=None,
                      now=q.now, tz=q.tz, running=q.running)
    if free:
        assert decision.status == "Accepted", decision.reason
        assert decision.anonymous and decision.token is None and decision.parent_id_tag is None
    if decision.status == "Accepted":
        assert decision.anonymous


def check_decision_is_well_formed(case: tuple[Site, Question]) -> None:
    site, q = case
    decision = ask(site, q)  # never raises
    assert decision.status in ("Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx")
    assert decision.reason.strip()
    token = found(site, q)
    assert decision.token == token
    if token is not None:
        assert decision.parent_id_tag == token.user_group
        assert not decision.anonymous
    else:
        assert decision.parent_id_tag is None
        assert decision.status in ("Accepted", "Invalid")
        if decision.status == "Accepted":
            assert decision.anonymous
    if decision.status == "Accepted":
        groups = site.model.groups_of(q.charger_id, q.connector_id)
        if groups:
            assert decision.charge_group in {g.id for g in groups}
        else:
            assert decision.charge_group is None
        if token is not None:
            assert token.status == "Active" and not site.model.user_groups[token.user_group].archived
            assert decision.expiry_date == (token.expiry.isoformat() if token.expiry else None)


def check_decision_depends_only_on_its_inputs(case: tuple[Site, Question]) -> None:
    site, q = case
    model_before, running_before = copy.deepcopy(site.model), copy.deepcopy(q.running)
    first = ask(site, q)
    second = ask(site, q)
    assert first == second
    assert site.model == model_before and q.running == running_before
    # The same instant, written in another offset, is the same question.
    moved = Question(q.charger_id, q.connector_id, q.id_tag, q.now.astimezone(timezone(timedelta(hours=-7))),
                     q.tz, q.running)
    assert ask(site, moved) == first


def check_every_spelling_of_a_card_gets_the_same_decision(case: tuple[Site, Question]) -> None:
    site, q = case
    token = found(site, q)
    if token is None:
        return
    decisions = {tag: decide(site.model, charger_id=q.charger_id, connector_id=q.connector_id, id_tag=tag,
                             now=q.now, tz=q.tz, running=q.running) for tag in site.spellings[token.id_tag]}
    assert len(set(decisions.values())) == 1, decisions


def check_concurrent_tx_exactly_for_a_session_elsewhere(case: tuple[Site, Question]) -> None:
    site, q = case
    decision = ask(site, q)
    alone = decide(site.model, charger_id=q.charger_id, connector_id=q.connector_id, id_tag=q.id_tag,
                   now=q.now, tz=q.tz, running={})
    assert alone.status != "ConcurrentTx"
    token = found(site, q)
    where = q.running.get(token.id_tag) if token is not None else None
    elsewhere = where is not None and (where[0] != q.charger_id
                                       or (q.connector_id is not None and q.connector_id != where[1]))
    if alone.status == "Accepted" and elsewhere and not site.model.user_groups[token.user_group].allow_concurrent:
        assert decision.status == "ConcurrentTx", (decision, where)
        assert decision.parent_id_tag == token.user_group
    else:
        # Sessions elsewhere only ever turn an Accepted into ConcurrentTx, never change anything else.
        assert decision == alone


INVARIANTS = [
    check_blocked_or_expired_token_is_never_accepted,
    check_private_group_never_admits_an_outsider,
    check_closed_evse_admits_nobody,
    check_no_token_is_accepted_where_an_open_free_vend_group_has_the_evse,
    check_decision_is_well_formed,
    check_decision_depends_only_on_its_inputs,
    check_every_spelling_of_a_card_gets_the_same_decision,
    check_concurrent_tx_exactly_for_a_session_elsewhere,
]


@settings(max_examples=300, deadline=None)
@given(cases)
def test_invariants_hold_for_every_case(case: tuple[Site, Question]) -> None:
    # One generated site and question, every invariant: generating a site costs
    # far more than deciding, so the invariants share the examples.
    for invariant in INVARIANTS:
        invariant(case)
