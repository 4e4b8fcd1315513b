"""Configuration documents and commands pushed to a site, and the site's answer."""

from __future__ import annotations

import asyncio

from cloud.downlink import next_send
from contract.v1 import MAX_PAYLOAD_BYTES, acked_topic, down_topic
from edge.clock import ManualClock, parse_iso

TARIFFS = {"tariffs": [{"id": "flat", "type": "flat", "price_per_kwh": "0.35"}]}


async def test_a_document_arrives_retained_with_increasing_versions_and_the_ack_is_shown(cloud, make_site):
    token = await cloud.add_operator("acme", "site-a")
    first = await cloud.post("/api/v1/sites/site-a/config/auth", token, {"document": {"tokens": []}})
    second = await cloud.post("/api/v1/sites/site-a/config/auth", token,
                              {"document": {"tokens": [{"id_tag": "A"}]}})
    tariffs = await cloud.post("/api/v1/sites/site-a/config/tariffs", token, {"document": TARIFFS})
    assert [r[0] for r in (first, second, tariffs)] == [202, 202, 202]
    assert (first[1]["version"], second[1]["version"], tariffs[1]["version"]) == (1, 2, 1)   # per site and kind
    assert second[1]["status"] == "published" and second[1]["published_at"] and second[1]["created_by"] == "acme"

    site = make_site()                     # comes online after the pushes: the broker kept the newest of each
    await site.subscribe_down()
    got = {}
    for _ in range(2):
        mqtt_message, down = await site.next_down()
        assert mqtt_message.retain
        got[mqtt_message.topic] = down
    assert got[down_topic("site-a", "auth")] == {
        "v": 1, "site": "site-a", "kind": "auth", "id": second[1]["id"], "version": 2, "mode": "full",
        "document": {"tokens": [{"id_tag": "A"}]}}
    assert got[down_topic("site-a", "tariffs")]["version"] == 1

    await site.ack(kind="auth", id=second[1]["id"], version=2, status="applied", applied_version=2)
    await site.ack(kind="auth", id=second[1]["id"], version=2, status="ignored", applied_version=2)   # a duplicate
    await site.ack(kind="tariffs", id=tariffs[1]["id"], version=1, status="rejected",
                   error="tariffs[0].price_per_kwh: not a number")
    await site.ack(kind="auth", id="never-sent", status="applied")
    await cloud.wait_handled(4)

    status, push = await cloud.get(f"/api/v1/sites/site-a/pushes/{second[1]['id']}", token)
    assert status == 200 and push["status"] == "applied" and push["applied_version"] == 2 and push["acked_at"]
    status, state = await cloud.get("/api/v1/sites/site-a/config/auth", token)
    assert state["applied_version"] == 2 and state["latest"]["version"] == 2
    status, push = await cloud.get(f"/api/v1/sites/site-a/pushes/{tariffs[1]['id']}", token)
    assert push["status"] == "rejected" and push["error"] == "tariffs[0].price_per_kwh: not a number"
    assert cloud.ingest.counts["unknown_acks"] == 1
    status, detail = await cloud.get("/api/v1/sites/site-a", token)
    assert detail["config"] == {"auth": {"pushed_version": 2, "applied_version": 2},
                                "tariffs": {"pushed_version": 1, "applied_version": None}}
    status, listing = await cloud.get("/api/v1/sites/site-a/pushes", token, kind="auth")
    assert [p["version"] for p in listing["items"]] == [2, 1]


async def test_a_command_is_not_retained_and_expires(cloud, make_site):
    token = await cloud.add_operator("acme", "site-a")
    site = make_site()
    await site.subscribe_down()
    status, push = await cloud.post("/api/v1/sites/site-a/commands", token, {
        "document": {"charger_id": "CP-1", "action": "Reset", "params": {"type": "Soft"}}, "expires_in_s": 120})
    assert status == 202 and push["version"] is None and push["expires_at"]
    mqtt_message, down = await site.next_down()
    assert not mqtt_message.retain and mqtt_message.topic == down_topic("site-a", "command")
    assert down["expires_at"] == push["expires_at"] and down["document"]["action"] == "Reset"
    assert 100 < mqtt_message.properties.MessageExpiryInterval <= 121
    await site.ack(kind="command", id=push["id"], status="done", result={"status": "Accepted"})
    await cloud.wait_handled(1)
    status, push = await cloud.get(f"/api/v1/sites/site-a/pushes/{push['id']}", token)
    assert push["status"] == "done" and push["result"] == {"status": "Accepted"}

    status, body = await cloud.post("/api/v1/sites/site-a/commands", token, {"document": {}, "expires_in_s": 0})
    assert status == 400 and "expires_in_s" in body["error"]


async def test_bad_pushes_are_refused(cloud):
    token = await cloud.add_operator("acme", "site-a")
    for body, problem in (([1], "JSON object"), ({"document": "x"}, "document"), ({"document": {}, "mode": "patch"},
                          "mode"), ({"document": {}, "extra": 1}, "extra")):
        status, answer = await cloud.post("/api/v1/sites/site-a/config/limits", token, body)
        assert status == 400 and problem in answer["error"], body
    status, answer = await cloud.post("/api/v1/sites/site-a/config/command", token, {"document": {}})
    assert status == 404
    status, answer = await cloud.post("/api/v1/sites/site-a/config/limits", token,
                                      {"document": {"pad": ["x" * 4000] * (MAX_PAYLOAD_BYTES // 4000 + 1)}})
    assert status == 413
    for document, problem in (({"pad": "x" * 5000}, "document: pad: a string of 5000 characters"),
                              ({"caps": [{"max_current": 2**70}]}, "outside the 64-bit integer range")):
        status, answer = await cloud.post("/api/v1/sites/site-a/config/limits", token, {"document": document})
        assert status == 400 and problem in answer["error"], answer
    status, state = await cloud.get("/api/v1/sites/site-a/config/limits", token)
    assert state == {"kind": "limits", "latest": None, "applied_version": None}   # no version was spent


async def test_pushes_made_while_the_broker_is_away_go_out_when_it_is_back(make_cloud, make_site, broker):
    clock = ManualClock()
    async with make_cloud(clock=clock) as cloud:
        cloud.service.downlink.republish_after_s = 0
        token = await cloud.add_operator("acme", "site-a")
        broker.kill()
        await asyncio.wait_for(cloud.service.link.disconnected.wait(), 10)
        old = await cloud.post("/api/v1/sites/site-a/config/limits", token, {"document": {"site_max_a": 32}})
        new = await cloud.post("/api/v1/sites/site-a/config/limits", token, {"document": {"site_max_a": 40}})
        stale = await cloud.post("/api/v1/sites/site-a/commands", token, {"document": {"action": "Unlock"},
                                                                         "expires_in_s": 60})
        assert old[1]["status"] == new[1]["status"] == stale[1]["status"] == "pending"
        clock.advance(120)                                   # the command is stale by the time the broker is back
        broker.start()
        site = make_site()
        await site.subscribe_down()
        mqtt_message, down = await site.next_down(timeout=10)     # live, once the cloud has reconnected
        assert down["version"] == 2 and down["document"] == {"site_max_a": 40}
        later = make_site()
        await later.subscribe_down()
        mqtt_message, down = await later.next_down()
        assert mqtt_message.retain and down["version"] == 2                     # and kept for sites still away
        await cloud.service.downlink.republish()            # the same round as the background one: now all settled
        states = {}
        for push in (old, new, stale):
            states[push[1]["id"]] = (await cloud.get(f"/api/v1/sites/site-a/pushes/{push[1]['id']}", token))[1]
        assert [states[p[1]["id"]]["status"] for p in (old, new, stale)] == ["superseded", "published", "expired"]
        while not site.down.empty():
            assert site.down.get().topic != down_topic("site-a", "command")     # the stale command never went out


async def test_a_site_born_again_gets_what_it_has_not_acknowledged(cloud, make_site, broker):
    """The broker lost a retained document (a crash before its autosave); the cloud's own link stayed up.
    The site's birth makes the cloud send it again; an acked push is not sent again."""
    token = await cloud.add_operator("acme", "site-a")
    _, acked = await cloud.post("/api/v1/sites/site-a/config/tariffs", token, {"document": TARIFFS})
    _, lost = await cloud.post("/api/v1/sites/site-a/config/auth", token, {"document": {"tokens": []}})
    site = make_site()
    for kind in ("auth", "tariffs"):                 # what a broker killed before its autosave forgets
        await site.publish(down_topic("site-a", kind), b"", retain=True)
    await site.subscribe_down()
    # The AckReceipt comes on the site's down topics too: waited for, so it is not taken for a push.
    await site.ack(kind="tariffs", id=acked["id"], version=1, status="applied", applied_version=1)
    await expect_ack_receipt(site, acked["id"])
    await site.birth()
    mqtt_message, down = await site.next_down()
    assert mqtt_message.topic == down_topic("site-a", "auth") and down["id"] == lost["id"]
    assert mqtt_message.retain is False                                     # sent live, at the birth
    await site.ack(kind="auth", id=lost["id"], version=1, status="applied", applied_version=1)
    await expect_ack_receipt(site, lost["id"])
    await cloud.wait_handled(3)
    status, push = await cloud.get(f"/api/v1/sites/site-a/pushes/{lost['id']}", token)
    assert (push["status"], push["delivery"]) == ("applied", "acked") and push["sent_count"] in (1, 2)
    assert await cloud.service.downlink.republish(force=True) == 0         # nothing open any more
    assert site.down.empty()                                                # nor sent twice at the birth


async def expect_ack_receipt(site, push_id: str) -> None:
    """The cloud's confirmation (down/acked) that it committed the site's ack of `push_id`."""
    mqtt_message, receipt = await site.next_down()
    assert (mqtt_message.topic, receipt["id"]) == (acked_topic("site-a"), push_id), (mqtt_message.topic, receipt)


def test_an_unacknowledged_push_is_sent_again_with_a_doubling_back_off():
    row = {"created_at": "2026-03-01T12:00:00.000Z", "last_sent_at": None, "sent_count": 0}
    assert next_send(row, 10).isoformat() == "2026-03-01T12:00:10+00:00"
    gaps = [(next_send(row | {"last_sent_at": "2026-03-01T12:00:00.000Z", "sent_count": n}) -
             parse_iso("2026-03-01T12:00:00Z")).total_seconds() for n in range(1, 8)]
    assert gaps == [300, 600, 1200, 2400, 3600, 3600, 3600]
