"""How often the load manager runs the estimator for one evaluation (issue 15, the reaction).

The building's load comes from a meter reading minus the least the cars drew when it was taken:
limits sent after the reading do not count yet, so the estimate is computed a second time as if
they had not been sent. A reading taken after every limit sent (the one a reaction to a load step
acts on) needs no second pass: that one was half of the estimator's time in every reaction.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from edge.clock import ManualClock
from edge.dlm import manager as manager_module
from edge.dlm.config import LoadManagementSection
from edge.dlm.estimate import Command
from edge.dlm.manager import LoadManager
from edge.dlm.model import Circuit, Evse, Topology
from edge.events import Event, EventBus

SITE = Topology((Circuit("grid", 40.0, meter="grid-meter"),), (Evse("A", 1, "grid", (0, 1, 2)),), margin=0.0)


@pytest.fixture
def passes(monkeypatch) -> list[float]:
    """The instants the estimator was run for, one per pass."""
    runs: list[float] = []
    real = manager_module.estimate_site

    def counted(topology, cars, readings, at, reaction):
        runs.append(at)
        return real(topology, cars, readings, at, reaction)
    monkeypatch.setattr(manager_module, "estimate_site", counted)
    return runs


def site_with_a_limit_sent_at(sent_at: float, read_at: float) -> tuple[LoadManager, float]:
    clock = ManualClock()
    meter = SimpleNamespace(latest=None, config=SimpleNamespace(period=1.0))
    lm = LoadManager(SITE, LoadManagementSection(), bus=EventBus(), clock=clock,
                     control=None, journal=None,  # type: ignore[arg-type]
                     meters={"grid": meter}, prioritised=lambda _: False, is_known=lambda _: True)
    lm.chargers["A"].online, lm.chargers["A"].default_sent = True, 0.0
    start = clock.monotonic()
    lm.on_event(Event("transaction.started", "A", "", {"connector_id": 1, "transaction_id": 1, "id_tag": "T"}))
    lm.tracks[("A", 1)].commands += (Command(10.0, start + sent_at, start + sent_at, True),)
    meter.latest = SimpleNamespace(at=start + read_at, current=(30.0, 30.0, 30.0))
    lm.record_reading("grid", meter.latest.at, meter.latest.current)
    clock.advance(read_at + 0.01)
    return lm, clock.monotonic()


def test_a_reading_after_every_limit_sent_is_estimated_in_one_pass(passes) -> None:
    lm, now = site_with_a_limit_sent_at(sent_at=1.0, read_at=2.0)
    lm.estimates(now)
    assert len(passes) == 1


def test_a_reading_before_a_limit_sent_still_gets_its_own_pass(passes) -> None:
    lm, now = site_with_a_limit_sent_at(sent_at=2.0, read_at=1.0)
    lm.estimates(now)
    assert len(passes) == 2     # the limit sent after the reading is left out of the second
