"""48 hours without the broker, in compressed time: the edge's clock runs two days (a session every
half hour, telemetry every minute) while the broker is down. Charging never waits for the link;
when the broker is back the two days' backlog drains, oldest first, each message once."""

from __future__ import annotations

from datetime import datetime, timezone

from ocpp.v16 import call

from edge.clock import ManualClock, parse_iso
from edge.journal import Store
from tests.edge.conftest import charger
from tests.edge.uplink.conftest import drained, eventually
from tests.edge.uplink.test_delivery import assert_in_order_once

HOURS = 48
SESSION_EVERY_MIN = 30
SESSION_MIN = 20


def telemetry_body(minute: int) -> dict:
    phases = [8.0 + minute % 7, 9.0, 7.5]
    return {"interval_s": 60, "circuits": [{"id": "grid", "current_max": phases, "current_mean": phases,
                                            "power": [a * 230 for a in phases]}]}


async def test_48_hours_without_the_broker_charging_goes_on_and_the_backlog_drains_in_order(
        make_uplinked_edge, cloud, live_broker, commit_at_once):
    clock = ManualClock(datetime(2026, 6, 1, tzinfo=timezone.utc))
    live_broker.stop()
    answers = []
    async with make_uplinked_edge(clock=clock) as edge:
        outbox = edge.uplink.outbox
        async with charger(edge) as cp:
            tx = None
            for minute in range(HOURS * 60):
                clock.advance(60)
                await outbox.add("telemetry", "telemetry", telemetry_body(minute), at=clock.now_iso())
                if minute % SESSION_EVERY_MIN == 0:
                    auth = await cp.call(call.Authorize(id_tag="TAG-OK"))
                    started = await cp.call(call.StartTransaction(connector_id=1, id_tag="TAG-OK",
                                                                  meter_start=minute * 100,
                                                                  timestamp=clock.now_iso()))
                    answers.append((auth.id_tag_info["status"], started.id_tag_info["status"]))
                    tx = started.transaction_id
                elif minute % SESSION_EVERY_MIN == SESSION_MIN:
                    meter_stop = (minute - SESSION_MIN) * 100 + 7000            # 7 kWh a session
                    await cp.call(call.StopTransaction(transaction_id=tx, meter_stop=meter_stop,
                                                       timestamp=clock.now_iso(), reason="EVDisconnected"))
        sessions = HOURS * 60 // SESSION_EVERY_MIN
        # Every session was authorised and started by the edge itself, link or no link.
        assert answers == [("Accepted", "Accepted")] * sessions
        assert edge.uplink.connection is None
        backlog = await outbox.backlog()
        assert backlog["cdr"] == sessions and backlog["session"] == 2 * sessions
        assert backlog["telemetry"] == HOURS * 60            # within the disk budget: nothing thinned
        cdr_ids = [r["id"] for r in await edge.journal.read(Store.cdrs, limit=10_000)]

        live_broker.start()
        await drained(edge, timeout=60)
        await eventually(lambda: len({m["id"] for m in cloud.up_messages("telemetry")}) >= HOURS * 60,
                         what="two days of telemetry at the cloud")
        status = await edge.uplink.status()

    for stream in ("cdr", "session", "telemetry"):
        messages = cloud.up_messages(stream)
        assert_in_order_once(messages, [m["id"] for m in {m["id"]: m for m in messages}.values()])
    cdrs = {m["id"]: m for m in cloud.up_messages("cdr")}
    assert len(cdrs) == sessions and all(m["body"]["energy_kwh"] == "7.000" for m in cdrs.values())
    assert sorted(cdrs) == sorted(cdr_ids)
    telemetry = cloud.up_messages("telemetry")
    span = parse_iso(telemetry[-1]["at"]) - parse_iso(telemetry[0]["at"])
    assert span.total_seconds() == (HOURS * 60 - 1) * 60                 # the whole outage, minute by minute
    assert status["streams"]["telemetry"]["dropped"] == 0 and status["streams"]["cdr"]["delivered"] == sessions
