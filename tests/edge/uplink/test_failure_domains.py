"""The uplink's failure domains, through a real Mosquitto: a charge record that
cannot be made is reported to the cloud (alert.cdr_quarantined); one message the
edge cannot take is logged and left, not fought over with the broker forever."""

from __future__ import annotations

import asyncio
import json

from ocpp.v16 import call

from contract.v1 import receipt_topic
from edge.journal import Journal, Store
from tests.edge.conftest import charger
from tests.edge.uplink.conftest import SITE, drained, eventually

TOD = '''
[[tariffs]]
id = "tod"
type = "duration-energy-tod"
price_per_kwh = 0.40
day_starts = "06:00"
night_starts = "22:00"
[[tariff_groups]]
id = "all"
base = "tod"
evses = ["CP-1"]
'''
AT = "2026-06-01T06:00:00.000Z"


def _reset_clock_session(store: Store) -> int:
    """Started while the charger's clock was not set (year 1), stopped once it was."""
    tx = store.start_transaction("CP-1", 1, "TAG-OK", "Accepted", 0, "0001-01-01T00:00:00Z", None, AT).transaction_id
    store.stop_transaction("CP-1", tx, 4000, "2026-06-01T07:00:00Z", "Local", None, AT)
    return tx


async def test_a_quarantined_record_is_reported_to_the_cloud(make_uplinked_edge, cloud, tmp_path):
    async with Journal(str(tmp_path / "journal.sqlite")) as journal:
        runner = asyncio.create_task(journal.run())
        tx = await journal.write(_reset_clock_session)
        runner.cancel()
    async with make_uplinked_edge(extra=TOD) as edge:
        await eventually(lambda: any(m["type"] == "alert.cdr_quarantined" for m in cloud.up_messages("alert")),
                         what="the quarantine alert")
        [alert] = [m for m in cloud.up_messages("alert") if m["type"] == "alert.cdr_quarantined"]
        assert alert["body"]["transaction_id"] == tx and alert["body"]["charger_id"] == "CP-1"
        assert alert["body"]["error"].startswith("Unpriceable: the session lasts 739767 days")
        assert not cloud.up_messages("cdr")
        # Tried again (a restart, a retry) and failing again: no second alert.
        await edge.charge_records.retry()
        await drained(edge)
        assert len([m for m in cloud.up_messages("alert") if m["type"] == "alert.cdr_quarantined"]) == 1


async def test_a_receipt_the_edge_cannot_take_does_not_take_the_link_down(make_uplinked_edge, cloud):
    async with make_uplinked_edge() as edge:
        await eventually(lambda: edge.uplink.connection is not None, what="connected")
        # Valid per the contract, but a seq SQLite cannot hold: handling it fails.
        poison = {"v": 1, "site": SITE, "stream": "session", "first_seq": 1, "last_seq": 2**70, "last_id": "x",
                  "status": "stored"}
        cloud.send_raw(receipt_topic(SITE), json.dumps(poison).encode())
        async with charger(edge) as cp:
            started = await cp.call(call.StartTransaction(connector_id=1, id_tag="TAG-OK", meter_start=0,
                                                          timestamp="2026-06-01T06:00:00Z"))
            await cp.call(call.StopTransaction(transaction_id=started.transaction_id, meter_stop=4000,
                                               timestamp="2026-06-01T07:00:00Z"))
        await eventually(lambda: cloud.up_messages("cdr"), what="the record made after the bad receipt")
        await drained(edge)
        assert edge.uplink.connections == 1 and edge.uplink.connection is not None


CIRCUITS = """
[[circuits]]
id = "grid"
limit = 40
"""


async def test_a_telemetry_sample_that_fails_is_lost_alone(make_uplinked_edge, cloud, caplog):
    async with make_uplinked_edge(extra=CIRCUITS, telemetry_interval=1) as edge:
        sampler = edge.uplink.telemetry
        sampler.sample_every = 0.1
        real_sample, failures = sampler.sample, []

        def sample() -> None:
            if len(failures) < 3:           # a bug that hits a few samples in a row
                failures.append(1)
                raise KeyError("circuit 'gone'")
            real_sample()
        sampler.sample = sample
        # The next intervals still come, at their pace (the sampler was not restarted after a pause).
        await eventually(lambda: len(cloud.up_messages("telemetry")) >= 2, timeout=5, what="telemetry")
    assert len(failures) == 3
    logged = [r for r in caplog.records if r.name == "edge.uplink.telemetry" and "failed" in r.getMessage()]
    assert len(logged) == 1 and "KeyError" in logged[0].getMessage()
