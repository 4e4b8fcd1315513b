"""The session watch checks each running session on its own: one whose check
fails (here: its tariff cannot be looked up) is logged, once per error, and the
limits of the others are still enforced."""

from __future__ import annotations

import logging

from ocpp.v16 import call

from edge.cdr.tariffs import TariffBook
from edge.clock import ManualClock
from edge.journal import Store
from tests.edge.cdr.helpers import START
from tests.edge.cdr.test_session_watch import LIMITS
from tests.edge.conftest import charger


class Exploding(TariffBook):
    def group_for(self, charger_id, connector_id):
        if charger_id == "CP-2":
            raise ArithmeticError("a tariff nobody can compute")
        return super().group_for(charger_id, connector_id)


async def test_a_session_that_cannot_be_checked_does_not_stop_the_watch_over_the_others(make_edge, caplog):
    clock = ManualClock(START)
    limits = LIMITS.replace("finish_after_inactivity = 120", "finish_after_inactivity = 600")
    async with make_edge(clock=clock, extra=limits) as edge:
        book = edge.charge_records.book
        edge.charge_records.book = Exploding(book.groups, book.evses)
        async with charger(edge, "CP-2", password=None) as cp2, charger(edge) as cp1:
            bad = await cp2.call(call.StartTransaction(connector_id=1, id_tag="TAG-2", meter_start=0,
                                                       timestamp=clock.now_iso()))
            good = await cp1.call(call.StartTransaction(connector_id=1, id_tag="TAG-OK", meter_start=0,
                                                        timestamp=clock.now_iso()))
            clock.advance(4 * 3600)             # past the 180 min limit of CP-1's tariff
            with caplog.at_level(logging.ERROR, logger="edge.cdr.watch"):
                await edge.session_watch.check()
                await edge.session_watch.check()
            [stopped] = await edge.journal.read(Store.transactions, charger_id="CP-1")
            assert stopped["id"] == good.transaction_id and "max time 180 min" in stopped["edge_stop"]
            assert bad.transaction_id in edge.session_watch.running
    failures = [r for r in caplog.records if "cannot be checked" in r.getMessage()]
    assert len(failures) == 1 and "ArithmeticError: a tariff nobody can compute" in failures[0].getMessage()
