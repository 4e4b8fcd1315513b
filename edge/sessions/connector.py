"""Each connector's session state, from all the evidence a charger gives (pure).

One place decides which transactions a charger runs: `Connectors`, fed in
arrival order by the Sessions service with what chargers said (the
StartTransaction and the answer they got, StopTransaction, StatusNotification,
MeterValues) and with the edge's own closes. No I/O, no clock: `apply` takes
one event and returns what follows from it (sessions to close, refused starts
that turn out to run); the Sessions service journals those and tells the bus.

A transaction is in one of these states:

- **refused**: recorded (the charger got a transaction id) but the charger
  was told its token is not Accepted (Blocked, Expired, Invalid,
  ConcurrentTx). Real chargers drop such a transaction without a
  StopTransaction, so it is *not running*: it counts for no ConcurrentTx and
  the edge sends it no RemoteStop.
- **running**: the charger was told Accepted (also when the site's policy
  `late_start_of_blocked = "finish"` answered Accepted for a refused token),
  or a refused one that the charger proves it runs: MeterValues for that
  transaction whose energy register rose above its meterStart, or
  StatusNotification Charging / SuspendedEV / SuspendedEVSE on its connector
  after the start. At most one transaction runs per connector.
- **ended**: the charger's StopTransaction, or a close by the edge. Closes
  decided here: the connector reports **Available** (the car is gone;
  `connector-available`), or a **new StartTransaction** on the same connector
  (`superseded-by-new-start`). Closes by time (inactivity, offline limit,
  a reboot that forgot it) are the session watch's (edge.cdr.watch) and come
  in as `Closed`.

Why Available and not Preparing or Finishing: Preparing comes before a start
(plugged in, waiting for a card) and Finishing after a stop with the cable
still in; neither says a session ended. Available after a session means no
car is plugged in any more. Connector 0 is the whole charger and ends nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Union

# Statuses that show a charger runs a transaction on a connector.
IN_TRANSACTION = frozenset({"Charging", "SuspendedEV", "SuspendedEVSE"})

CONNECTOR_AVAILABLE = "connector-available"
SUPERSEDED = "superseded-by-new-start"


@dataclass(frozen=True)
class Session:
    transaction_id: int
    charger_id: str
    connector_id: int
    id_tag: str
    meter_start: float
    answered: str           # the idTagInfo status the charger was given at the start
    runs: bool              # the charger runs it: answered Accepted, or proven since

    @property
    def refused(self) -> bool:
        return self.answered != "Accepted"

    @property
    def place(self) -> tuple[str, int]:
        return self.charger_id, self.connector_id


# -- what comes in ---------------------------------------------------------------------

@dataclass(frozen=True)
class Started:
    session: Session


@dataclass(frozen=True)
class Stopped:          # the charger's StopTransaction
    transaction_id: int


@dataclass(frozen=True)
class Closed:           # the edge closed it for a reason of time (edge.cdr.watch)
    transaction_id: int


@dataclass(frozen=True)
class Status:
    charger_id: str
    connector_id: int
    status: str


@dataclass(frozen=True)
class Metered:
    charger_id: str
    connector_id: int
    transaction_id: int
    register_wh: float      # the highest energy register (Wh) in the MeterValues


Evidence = Union[Started, Stopped, Closed, Status, Metered]


# -- what follows ------------------------------------------------------------------------

@dataclass(frozen=True)
class Close:
    transaction_id: int
    ended: str              # connector-available | superseded-by-new-start
    why: str                # for operators: the CDR's stopped_by_edge


@dataclass(frozen=True)
class Proven:
    transaction_id: int
    why: str


Decision = Union[Close, Proven]


def superseded(new_transaction_id: int, connector_id: int) -> str:
    """Why a transaction was closed by a new start on its connector (the CDR's stopped_by_edge)."""
    return (f"{SUPERSEDED}: transaction {new_transaction_id} started on connector {connector_id} after it; "
            "closed from the last meter values")


def start_answer(decided: str, policy: str) -> str:
    """The idTagInfo status a StartTransaction gets: the decision, except that the
    site policy "finish" answers Accepted so the charger finishes the session."""
    return "Accepted" if policy == "finish" else decided


class Connectors:
    """The open (refused or running) transactions of every connector of the site."""

    def __init__(self, sessions: list[Session] | None = None):
        self._open: dict[int, Session] = {s.transaction_id: s for s in sessions or []}

    def open(self) -> dict[int, Session]:
        return dict(self._open)

    def get(self, transaction_id: int) -> Session | None:
        return self._open.get(transaction_id)

    def running(self) -> dict[int, Session]:
        return {tx: s for tx, s in self._open.items() if s.runs}

    def open_on(self, charger_id: str, connector_id: int) -> list[Session]:
        return [s for s in self._open.values() if s.place == (charger_id, connector_id)]

    def apply(self, event: Evidence) -> list[Decision]:
        if isinstance(event, Started):
            return self._started(event.session)
        if isinstance(event, (Stopped, Closed)):
            self._open.pop(event.transaction_id, None)
            return []
        if isinstance(event, Status):
            return self._status(event)
        return self._metered(event)

    def _started(self, new: Session) -> list[Decision]:
        closes: list[Decision] = [Close(s.transaction_id, SUPERSEDED, superseded(new.transaction_id, new.connector_id))
                                  for s in self.open_on(*new.place) if s.transaction_id != new.transaction_id]
        for close in closes:
            del self._open[close.transaction_id]
        self._open[new.transaction_id] = new
        return closes

    def _status(self, event: Status) -> list[Decision]:
        if event.connector_id == 0:
            return []
        here = self.open_on(event.charger_id, event.connector_id)
        if event.status == "Available":
            for s in here:
                del self._open[s.transaction_id]
            return [Close(s.transaction_id, CONNECTOR_AVAILABLE, f"{CONNECTOR_AVAILABLE}: the connector reported "
                                                                 "Available (no car) without a StopTransaction; "
                                                                 "closed from the last meter values")
                    for s in here]
        if event.status in IN_TRANSACTION:
            # The newest start on the connector is the one the charger runs.
            newest = max(here, key=lambda s: s.transaction_id, default=None)
            if newest is not None and not newest.runs:
                return self._prove(newest, f"the connector reported {event.status} after the start")
        return []

    def _metered(self, event: Metered) -> list[Decision]:
        session = self._open.get(event.transaction_id)
        if session is None or session.runs or session.place != (event.charger_id, event.connector_id):
            return []
        if event.register_wh > session.meter_start:
            return self._prove(session, f"its energy register rose to {event.register_wh:g} Wh "
                                        f"from {session.meter_start:g} Wh")
        return []

    def _prove(self, session: Session, evidence: str) -> list[Decision]:
        self._open[session.transaction_id] = replace(session, runs=True)
        return [Proven(session.transaction_id, f"answered {session.answered} at the start, yet the charger runs it: "
                                               f"{evidence}")]
