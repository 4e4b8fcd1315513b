"""A TxProfile can cross its transaction's end on the wire: the station has ended the
transaction (its TransactionEvent Ended or StopTransaction is on its way) when the
limit arrives, and rejects it (2.0.1 K01.FR.09: no transaction on that EVSE). Seen
with the simulated 2.0.1 station when a second car stopped while the load manager
lowered it. That refusal says nothing about the station's next sessions: when the
end comes in, it is no longer held against the station. A refusal for a transaction
that keeps running still is (its maximum is held, fail closed). The manager's
bookkeeping only, with a station that answers Rejected (the race itself depends on
socket timing)."""

from __future__ import annotations

from edge.clock import ManualClock
from edge.dlm.actuation import Order
from edge.dlm.config import LoadManagementSection
from edge.dlm.manager import LoadManager
from edge.dlm.model import Circuit, Evse, Topology
from edge.events import Event, EventBus
from edge.stations.control import CommandResult
from edge.stations.model import ChargingLimit

SITE = Topology((Circuit("grid", 40.0, meter=None),), (Evse("S", 1, "grid", (0, 1, 2)),
                                                       Evse("S", 2, "grid", (0, 1, 2))), margin=0.0)


class Refusing:
    """A station that rejects every TxProfile, as one whose transaction had just ended does."""

    def __init__(self) -> None:
        self.sent: list[ChargingLimit] = []

    def is_connected(self, charger_id: str) -> bool:
        return True

    async def set_charging_limit(self, charger_id: str, limit: ChargingLimit, *, actor: str,
                                 reason: str) -> CommandResult:
        self.sent.append(limit)
        return CommandResult(len(self.sent), charger_id, "SetChargingProfile", "rejected", {"status": "Rejected"})


def manager() -> tuple[LoadManager, ManualClock, Refusing]:
    clock, control = ManualClock(), Refusing()
    lm = LoadManager(SITE, LoadManagementSection(), bus=EventBus(), clock=clock, control=control,
                     journal=None, meters={}, prioritised=lambda _: False,  # type: ignore[arg-type]
                     is_known=lambda _: True)
    lm.chargers["S"].online, lm.chargers["S"].default_sent = True, 20.0
    return lm, clock, control


def event(lm: LoadManager, kind: str, **data) -> None:
    lm.on_event(Event(kind, "S", "", data))


async def test_a_limit_refused_for_a_transaction_that_had_ended_is_not_held_against_the_station():
    lm, clock, control = manager()
    event(lm, "transaction.started", connector_id=2, transaction_id=7, id_tag="T")
    await lm._send(Order(("S", 2), 10.0, 3, 7, "decrease", "a second car"))
    assert control.sent[0].transaction_id == 7
    assert not lm._controllable(("S", 1), clock.monotonic())        # fail closed at once
    event(lm, "transaction.stopped", connector_id=2, transaction_id=7)
    assert lm._controllable(("S", 1), clock.monotonic())


async def test_a_limit_refused_for_a_running_transaction_still_is():
    lm, clock, control = manager()
    event(lm, "transaction.started", connector_id=1, transaction_id=6, id_tag="T")
    event(lm, "transaction.started", connector_id=2, transaction_id=7, id_tag="U")
    await lm._send(Order(("S", 1), 10.0, 3, 6, "decrease", "a second car"))
    event(lm, "transaction.stopped", connector_id=2, transaction_id=7)    # another session ends
    assert not lm._controllable(("S", 1), clock.monotonic())
    assert not lm._controllable(("S", 2), clock.monotonic())
