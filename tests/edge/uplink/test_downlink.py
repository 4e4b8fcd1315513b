"""Configuration documents and commands from the cloud, through a real broker:
applied atomically and acknowledged, invalid ones rejected with nothing changed,
duplicates and older versions ignored, commands run once."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone

from contract.v1 import Down
from edge.journal import Store
from tests.edge.conftest import charger
from tests.edge.uplink.conftest import SITE, eventually
from tests.edge.uplink.helpers import make_cdrs

CIRCUITS = """
[[circuits]]
id = "grid"
limit = 32
"""

AUTH = {"default_policy": "all-known",
        "user_groups": [{"id": "residents"}, {"id": "guests"}],
        "charge_groups": [],
        "tokens": [{"id_tag": "CLOUD-1", "user_group": "residents"}, {"uid": "04:A2:B3:C4", "user_group": "guests"}]}

TARIFFS = {"tariffs": [{"id": "flat", "type": "flat", "price_per_session": "5.00"}],
           "tariff_groups": [{"id": "all", "base": "flat", "evses": ["CP-1", "CP-2"]}]}


def down(kind: str, document: dict, version: int | None = None, **extra) -> Down:
    return Down(site=SITE, kind=kind, id=f"{kind}-{uuid.uuid4().hex[:8]}", version=version, document=document,
                **extra)


async def ack_for(cloud, message_id: str, count: int = 1, timeout: float = 10.0) -> dict:
    acks = await eventually(lambda: (a := [x for x in cloud.acks() if x["id"] == message_id]) and len(a) >= count
                            and a, timeout=timeout, what=f"the ack of {message_id}")
    return acks[-1]


async def connected(edge) -> None:
    await eventually(lambda: edge.uplink.connection is not None, what="the uplink")


async def test_auth_document_applied_acked_and_kept_over_a_restart(make_uplinked_edge, cloud):
    async with make_uplinked_edge() as edge:
        await connected(edge)
        before = edge.authorizer.model.version
        message = down("auth", AUTH, version=3)
        cloud.send(message)
        ack = await ack_for(cloud, message.id)
        assert ack == {"v": 1, "site": SITE, "kind": "auth", "id": message.id, "version": 3, "status": "applied",
                       "applied_version": 3}
        assert edge.authorizer.model.find("cloud-1") is not None
        assert edge.authorizer.model.find("C4B3A204").user_group == "guests"
        assert edge.authorizer.model.version == before + 1
        history = await edge.journal.read(Store.auth_model_history)
        assert history[0]["source"] == "cloud" and "cloud version 3" in history[0]["note"]
    # Restarted: the retained document comes again and is acknowledged as in force; the cloud's model stays.
    async with make_uplinked_edge() as edge:
        await ack_for(cloud, message.id, count=2)
        assert cloud.acks()[-1]["status"] == "applied" and cloud.acks()[-1]["applied_version"] == 3
        assert edge.authorizer.model.version == before + 1
        assert edge.authorizer.model.find("CLOUD-1") is not None
        assert edge.uplink.downlink.versions()["auth"]["in_force"] is True


async def test_invalid_auth_document_is_rejected_and_nothing_changes(make_uplinked_edge, cloud):
    async with make_uplinked_edge() as edge:
        await connected(edge)
        good = down("auth", AUTH, version=1)
        cloud.send(good)
        await ack_for(cloud, good.id)
        model, document = edge.authorizer.model, edge.authorizer.document
        bad = down("auth", {**AUTH, "tokens": [{"id_tag": "X", "user_group": "nobody"},
                                              {"uid": "0xZZ", "user_group": "residents"}]}, version=2)
        cloud.send(bad)
        ack = await ack_for(cloud, bad.id)
        assert ack["status"] == "rejected" and ack["applied_version"] == 1
        assert 'tokens[0] (id_tag "X"): user group "nobody" does not exist' in ack["error"]
        assert 'tokens[1] (uid "0xZZ")' in ack["error"]
        assert edge.authorizer.model is model and edge.authorizer.document == document
        # A document that does not even fit the contract: rejected, named, nothing changes.
        cloud.send_raw(f"sc/v1/sites/{SITE}/down/auth", b'{"v":1,"site":"test-site","kind":"auth","id":"broken",'
                                                         b'"version":3,"document":[]}')
        ack = await ack_for(cloud, "broken")
        assert ack["status"] == "rejected" and "document" in ack["error"] and ack["version"] == 3
        assert edge.uplink.downlink.versions()["auth"]["version"] == 1


async def test_duplicates_and_older_versions_are_ignored(make_uplinked_edge, cloud):
    async with make_uplinked_edge() as edge:
        await connected(edge)
        v5 = down("auth", AUTH, version=5)
        cloud.send(v5)
        await ack_for(cloud, v5.id)
        applied = edge.authorizer.model
        cloud.send(v5, retain=False)      # the same message again (the cloud sends until it has the ack)
        again = await ack_for(cloud, v5.id, count=2)
        assert (again["status"], again["applied_version"]) == ("applied", 5)   # in force: acked, not applied again
        assert edge.authorizer.model is applied
        older = down("auth", {**AUTH, "tokens": []}, version=4)
        cloud.send(older, retain=False)
        ack = await ack_for(cloud, older.id)
        assert (ack["status"], ack["version"], ack["applied_version"]) == ("ignored", 4, 5)
        assert edge.authorizer.model is applied


async def test_auth_diff_applies_against_the_version_in_force(make_uplinked_edge, cloud):
    async with make_uplinked_edge() as edge:
        await connected(edge)
        cloud.send(down("auth", AUTH, version=1))
        await eventually(lambda: edge.uplink.downlink.applied.get("auth"), what="v1")
        diff = down("auth", {"base_version": 1, "upsert": {"tokens": [{"id_tag": "CLOUD-2", "user_group": "guests"}]},
                             "remove": {"tokens": ["c4:b3:a2:04"]}}, version=2, mode="diff")
        cloud.send(diff)
        assert (await ack_for(cloud, diff.id))["status"] == "applied"
        model = edge.authorizer.model
        assert model.find("CLOUD-2") and model.find("CLOUD-1") and model.find("04A2B3C4") is None
        stale = down("auth", {"base_version": 1, "remove": {"tokens": ["CLOUD-1"]}}, version=3, mode="diff")
        cloud.send(stale)
        ack = await ack_for(cloud, stale.id)
        assert ack["status"] == "rejected" and "base_version: 1 is not the version in force (2)" in ack["error"]
        assert edge.authorizer.model.find("CLOUD-1") is not None


async def test_tariffs_and_a_temporary_site_cap(make_uplinked_edge, cloud):
    async with make_uplinked_edge(extra=CIRCUITS) as edge:
        await connected(edge)
        tariffs = down("tariffs", TARIFFS, version=1)
        cloud.send(tariffs)
        assert (await ack_for(cloud, tariffs.id))["status"] == "applied"
        group, tariff = edge.charge_records.tariff_for("CP-1", 1, "TAG-OK", "residents")
        assert group.id == "all" and tariff.id == "flat"
        broken = down("tariffs", {"tariffs": TARIFFS["tariffs"],
                                  "tariff_groups": [{"id": "g", "base": "nope", "evses": ["CP-9"]}]}, version=2)
        cloud.send(broken)
        ack = await ack_for(cloud, broken.id)
        assert ack["status"] == "rejected"
        assert 'base tariff "nope" does not exist' in ack["error"] and 'charger "CP-9"' in ack["error"]
        assert edge.charge_records.tariff_for("CP-1", 1, "TAG-OK", "residents")[1].id == "flat"

        manager = edge.load_manager
        until = datetime.now(timezone.utc) + timedelta(seconds=1.5)
        limits = down("limits", {"caps": [{"max_current": 10, "until": until.isoformat(), "reason": "DR event"}]},
                      version=1)
        cloud.send(limits)
        assert (await ack_for(cloud, limits.id))["status"] == "applied"
        assert manager.capped_topology().by_id["grid"].limit == 10
        assert manager.status()["circuits"][0]["cap"]["reason"] == "DR event"
        await eventually(lambda: manager.allocation.circuits["grid"].phases[0].limit == 10, what="the capped limit")
        await asyncio.sleep(1.6)                              # the cap ends by itself
        assert manager.capped_topology().by_id["grid"].limit == 32
        unknown = down("limits", {"caps": [{"circuit": "garage", "max_current": 5}]}, version=2)
        cloud.send(unknown)
        ack = await ack_for(cloud, unknown.id)
        assert ack["status"] == "rejected" and "caps[0].circuit: no circuit 'garage'" in ack["error"]


async def test_limits_without_load_management_are_rejected(make_uplinked_edge, cloud):
    async with make_uplinked_edge() as edge:
        await connected(edge)
        limits = down("limits", {"caps": [{"max_current": 10}]}, version=1)
        cloud.send(limits)
        ack = await ack_for(cloud, limits.id)
        assert ack["status"] == "rejected" and "load management is off" in ack["error"]
        assert ack.get("applied_version") is None


async def test_commands_run_once_and_report_their_outcome(make_uplinked_edge, cloud):
    async with make_uplinked_edge() as edge:
        await connected(edge)
        async with charger(edge) as cp:
            reset = down("command", {"charger_id": "CP-1", "action": "Reset", "params": {"type": "Soft"},
                                     "reason": "stuck"})
            cloud.send(reset)
            ack = await ack_for(cloud, reset.id)
            assert ack["status"] == "done" and ack["result"]["outcome"] == "ok"
            assert ack["result"]["response"] == {"status": "Accepted"}
            cloud.send(reset)                            # redelivered: not run again, the same answer
            again = await ack_for(cloud, reset.id, count=2)
            assert again == ack
            assert [name for name, _ in cp.received].count("Reset") == 1
            actions = await edge.journal.read(Store.log, "actions", "CP-1")
            assert actions[0]["actor"] == "cloud" and f"cloud command {reset.id}: stuck" == actions[0]["reason"]

        offline = down("command", {"charger_id": "CP-2", "action": "Reset", "params": {"type": "Hard"}})
        cloud.send(offline)
        ack = await ack_for(cloud, offline.id)
        assert ack["status"] == "failed" and ack["error"].startswith("not-connected")
        for document, problem in (
                ({"charger_id": "CP-9", "action": "Reset", "params": {"type": "Soft"}}, "no charger 'CP-9'"),
                ({"charger_id": "CP-1", "action": "UpdateFirmware", "params": {}}, "not allowed from the cloud"),
                ({"charger_id": "CP-1", "action": "Reset", "params": {}}, "missing required parameter(s) type")):
            bad = down("command", document)
            cloud.send(bad)
            ack = await ack_for(cloud, bad.id)
            assert ack["status"] == "rejected" and problem in ack["error"], ack
        stale = down("command", {"charger_id": "CP-1", "action": "Reset", "params": {"type": "Soft"}},
                     expires_at="2020-01-01T00:00:00Z")
        cloud.send(stale)
        ack = await ack_for(cloud, stale.id)
        assert ack["status"] == "rejected" and ack["error"].startswith("expired at 2020-01-01T00:00:00Z")


async def test_bad_downlink_input_is_rejected_counted_and_never_crashes(make_uplinked_edge, cloud):
    async with make_uplinked_edge() as edge:
        await connected(edge)
        topic = f"sc/v1/sites/{SITE}/down/command"
        cloud.send_raw(topic, b"{not json")
        cloud.send_raw(topic, b'{"v":2,"site":"test-site","kind":"command","id":"v2","document":{}}')
        cloud.send_raw(topic, b'{"v":1,"site":"other","kind":"command","id":"other-site","document":{}}')
        cloud.send_raw(topic, b'{"v":1,"site":"test-site","kind":"command","id":"huge","document":{"x":"'
                       + b"x" * 263_000 + b'"}}')
        cloud.send_raw(f"sc/v1/sites/{SITE}/down/auth", b"")      # a cleared retained document: nothing to do
        await eventually(lambda: len(cloud.acks()) >= 4, what="four rejections")
        errors = {a["id"]: a["error"] for a in cloud.acks() if a["id"]}
        nameless = sorted(a["error"][:20] for a in cloud.acks() if not a["id"])   # not even an id could be read
        assert all(a["status"] == "rejected" for a in cloud.acks())
        assert nameless == ["payload is not JSON:", "payload of 263075 by"]
        assert "contract version 2 is not supported" in errors["v2"]
        assert "payload names site 'other'" in errors["other-site"]
        huge = down("command", {"charger_id": "x" * 4000, "action": "Reset"})
        cloud.send(huge)                  # a valid message whose problem quotes a long value
        ack = await ack_for(cloud, huge.id)
        assert ack["status"] == "rejected" and len(ack["error"]) < 1000
        status = await edge.uplink.status()
        assert status["downlink"]["rejected_by_reason"] == {"not_json": 1, "version": 1, "site_mismatch": 1,
                                                            "too_large": 1}
        assert edge.uplink.connection is not None


async def test_a_message_that_breaks_the_handler_is_answered_once_not_retried_forever(make_uplinked_edge, cloud,
                                                                                       monkeypatch):
    async with make_uplinked_edge() as edge:
        await connected(edge)

        async def broken(document, **kwargs):
            raise RuntimeError("disk on fire")
        monkeypatch.setattr(edge.authorizer, "replace", broken)
        message = down("auth", AUTH, version=1)
        cloud.send(message, retain=False)
        ack = await ack_for(cloud, message.id)
        assert ack["status"] == "rejected" and "RuntimeError: disk on fire" in ack["error"]
        cloud.send_raw(f"sc/v1/sites/{SITE}/down/auth", b"[" * 100_000 + b"]" * 100_000)
        await eventually(lambda: len(cloud.acks()) >= 2, what="the nesting rejected")
        await asyncio.sleep(0.3)
        assert len(cloud.acks()) == 2 and edge.uplink.connections == 1


async def test_a_version_beyond_int64_is_refused_once_naming_it_and_the_link_stays_up(make_uplinked_edge, cloud):
    """A retained document with version 2**63 (beyond SQLite's integers) used to fail the journal write, then
    the failure's own log write, tear the link down, come back with the broker's redelivery, and so on."""
    async with make_uplinked_edge() as edge:
        await connected(edge)
        topic = f"sc/v1/sites/{SITE}/down/auth"
        cloud.send_raw(topic, b'{"v":1,"site":"test-site","kind":"auth","id":"big-version","version":%d,'
                       b'"document":{"tokens":[]}}' % 2**63, retain=True)
        ack = await ack_for(cloud, "big-version")
        assert ack["status"] == "rejected" and "version" not in ack
        assert "version" in ack["error"] and str(2**63) in ack["error"]
        cloud.send_raw(topic, b'{"v":1,"site":"test-site","kind":"auth","id":"deep-int","version":1,'
                       b'"document":{"tokens":[{"id_tag":"A","n":%d}]}}' % 2**70, retain=True)
        ack = await ack_for(cloud, "deep-int")
        assert ack["status"] == "rejected" and "tokens[0].n" in ack["error"] and str(2**70) in ack["error"]
        # Charging records still flow on the same connection.
        ids = await make_cdrs(edge, 3)
        await eventually(lambda: {m["id"] for m in cloud.up_messages("cdr")} >= set(ids), what="the records")
        assert edge.uplink.connections == 1 and edge.uplink.connection is not None
        log = await edge.journal.read(Store.downlink_log, 10)
        assert [(r["message_id"], r["version"], r["status"]) for r in log[:2]] == [
            ("deep-int", 1, "rejected"), ("big-version", None, "rejected")]
        assert edge.uplink.downlink.unrecorded == 0

