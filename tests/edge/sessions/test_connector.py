"""The connector state machine (edge.sessions.connector): table tests of the
orders real chargers send, and properties over random event orders."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from edge.sessions.connector import (CONNECTOR_AVAILABLE, IN_TRANSACTION, SUPERSEDED, Close, Closed, Connectors,
                                     Metered, Proven, Session, Started, Status, Stopped, start_answer)


def session(tx: int, answered: str = "Accepted", charger: str = "CP-A", connector: int = 1,
            tag: str = "TAG-1", meter_start: float = 1000) -> Session:
    return Session(tx, charger, connector, tag, meter_start, answered, answered == "Accepted")


def kinds(decisions) -> list[tuple[str, int, str]]:
    return [(type(d).__name__, d.transaction_id, getattr(d, "ended", "")) for d in decisions]


def test_a_session_as_a_charger_reports_it_ends_with_its_stop_and_nothing_else():
    board = Connectors()
    steps = [Status("CP-A", 1, "Preparing"), Started(session(1)), Status("CP-A", 1, "Charging"),
             Metered("CP-A", 1, 1, 5000), Status("CP-A", 1, "SuspendedEV"), Stopped(1),
             Status("CP-A", 1, "Finishing"), Status("CP-A", 1, "Available")]
    assert [kinds(board.apply(step)) for step in steps] == [[]] * len(steps)
    assert board.open() == {}


def test_queued_messages_after_an_outage_stop_before_the_next_start():
    # A charger delivers what it queued offline in order: the old stop, then the new start.
    board = Connectors([session(1)])
    assert board.apply(Stopped(1)) == []
    assert board.apply(Started(session(2, tag="TAG-2"))) == []
    assert list(board.running()) == [2]


@pytest.mark.parametrize("answered", ["Blocked", "Expired", "Invalid", "ConcurrentTx"])
def test_a_refused_start_is_open_but_not_running(answered):
    board = Connectors()
    assert board.apply(Started(session(7, answered))) == []
    assert list(board.open()) == [7] and board.running() == {}


@pytest.mark.parametrize("evidence, runs", [
    (Status("CP-A", 1, "Charging"), True),
    (Status("CP-A", 1, "SuspendedEV"), True),
    (Status("CP-A", 1, "SuspendedEVSE"), True),
    (Status("CP-A", 1, "Preparing"), False),
    (Status("CP-A", 1, "Finishing"), False),
    (Status("CP-A", 1, "Faulted"), False),
    (Status("CP-A", 2, "Charging"), False),            # another connector
    (Status("CP-B", 1, "Charging"), False),            # another charger
    (Status("CP-A", 0, "Charging"), False),            # the charger as a whole
    (Metered("CP-A", 1, 7, 1001), True),               # its energy rose
    (Metered("CP-A", 1, 7, 1000), False),              # a register that did not move proves nothing
    (Metered("CP-A", 2, 7, 5000), False),              # its id from another connector
])
def test_a_refused_start_runs_only_once_the_charger_proves_it(evidence, runs):
    board = Connectors([session(7, "Blocked")])
    decisions = board.apply(evidence)
    assert (list(board.running()) == [7]) is runs
    assert kinds(decisions) == ([("Proven", 7, "")] if runs else [])


def test_available_closes_what_is_open_on_the_connector_and_only_there():
    board = Connectors([session(1, "ConcurrentTx"), session(2, connector=2), session(3, charger="CP-B")])
    assert kinds(board.apply(Status("CP-A", 1, "Available"))) == [("Close", 1, CONNECTOR_AVAILABLE)]
    assert sorted(board.open()) == [2, 3]
    assert board.apply(Status("CP-A", 0, "Available")) == []       # connector 0 ends nothing


def test_a_new_start_supersedes_what_is_open_on_the_connector():
    board = Connectors([session(1, "ConcurrentTx"), session(2, connector=2)])
    [close] = board.apply(Started(session(3, tag="TAG-2")))
    assert (close.transaction_id, close.ended) == (1, SUPERSEDED) and "transaction 3" in close.why
    assert sorted(board.open()) == [2, 3]


def test_a_start_retry_does_not_supersede_itself():
    board = Connectors([session(1)])
    assert board.apply(Started(session(1))) == []
    assert list(board.running()) == [1]


def test_the_site_policy_finish_answers_accepted():
    assert start_answer("Blocked", "finish") == "Accepted" and start_answer("Blocked", "stop") == "Blocked"


# -- properties over random orders -----------------------------------------------------------

CHARGERS = ["CP-A", "CP-B"]
STATUSES = ["Available", "Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing", "Faulted",
            "Unavailable"]
ANSWERS = ["Accepted", "Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx"]

step = st.one_of(
    st.tuples(st.just("start"), st.sampled_from(CHARGERS), st.integers(1, 2), st.sampled_from(ANSWERS),
              st.integers(0, 5)),
    st.tuples(st.just("stop"), st.integers(0, 30)),
    st.tuples(st.just("close"), st.integers(0, 30)),
    st.tuples(st.just("status"), st.sampled_from(CHARGERS), st.integers(0, 2), st.sampled_from(STATUSES)),
    st.tuples(st.just("meter"), st.sampled_from(CHARGERS), st.integers(1, 2), st.integers(0, 30),
              st.integers(0, 5)),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(step, max_size=40))
def test_invariants_hold_in_any_order(steps):
    board = Connectors()
    started: dict[int, Session] = {}
    ended: set[int] = set()
    proof: set[int] = set()          # refused starts the charger showed it runs, after their start
    for s in steps:
        before = board.open()
        if s[0] == "start":
            tx = len(started) + 1
            new = Session(tx, s[1], s[2], "TAG-1", s[4] * 1000, s[3], s[3] == "Accepted")
            started[tx] = new
            event = Started(new)
        elif s[0] == "stop":
            event = Stopped(s[1])
        elif s[0] == "close":
            event = Closed(s[1])
        elif s[0] == "status":
            event = Status(s[1], s[2], s[3])
        else:
            event = Metered(s[1], s[2], s[3], s[4] * 1000)
        decisions = board.apply(event)
        after = board.open()

        for d in decisions:
            assert d.transaction_id in before, "only an open session is closed or proven"
            if isinstance(d, Close):
                assert d.transaction_id not in after
                place = before[d.transaction_id].place
                if d.ended == CONNECTOR_AVAILABLE:
                    assert isinstance(event, Status) and event.status == "Available"
                    assert (event.charger_id, event.connector_id) == place
                else:
                    assert d.ended == SUPERSEDED and isinstance(event, Started) and event.session.place == place
            else:
                assert isinstance(d, Proven) and before[d.transaction_id].refused
                proof.add(d.transaction_id)
        closed_now = {d.transaction_id for d in decisions if isinstance(d, Close)}
        ended |= closed_now | ({event.transaction_id} & set(started) if isinstance(event, (Stopped, Closed))
                               else set())
        # What left without a Close decision was stopped or closed by the event itself.
        assert set(before) - set(after) - closed_now <= ({event.transaction_id}
                                                         if isinstance(event, (Stopped, Closed)) else set())

        places = [s.place for s in after.values()]
        assert len(places) == len(set(places)), "at most one open (so one running) session per connector"
        assert not set(after) & ended, "an ended session never comes back"
        for tx, open_session in after.items():
            if open_session.refused:
                assert open_session.runs == (tx in proof), "a refused start runs only when proven"
            else:
                assert open_session.runs, "an accepted start runs until it ends"
        assert set(board.running()) <= set(after)
        assert all(s.runs for s in board.running().values())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(sorted(IN_TRANSACTION | {"Preparing", "Finishing"})),
                          st.integers(0, 3)), max_size=10))
def test_a_ghost_that_only_ever_idles_never_runs(noise):
    # The ghost of observation 1: a refused start the charger dropped, then anything but proof.
    board = Connectors([session(1, "ConcurrentTx", charger="CP-B")])
    for status, _ in noise:
        if status not in IN_TRANSACTION:
            board.apply(Status("CP-B", 1, status))
        board.apply(Metered("CP-B", 1, 1, 1000))       # its register never moves
        board.apply(Status("CP-A", 1, "Charging"))      # another charger charges
    assert board.running() == {}
