"""POSTs with an Idempotency-Key: a client that retries (its answer was lost) gets the first push
again, never a second one, also when the retry reaches another instance (issue 18, observation 7)."""

from __future__ import annotations

import asyncio
from typing import Any

from cloud.store import ingest as store
from cloud.store import pushes
from contract.v1 import Ack

AUTH = {"tokens": [{"id_tag": "A"}]}
COMMAND = {"document": {"charger_id": "CP-1", "action": "Reset", "params": {"type": "Soft"}}, "expires_in_s": 600}


async def post(cloud, path: str, token: str, body: Any, key: str | None) -> tuple[int, Any, dict]:
    headers = {"Authorization": f"Bearer {token}", **({"Idempotency-Key": key} if key else {})}
    async with cloud.http.post(cloud.base + path, headers=headers, json=body) as response:
        return response.status, await response.json(), dict(response.headers)


async def push_count(cloud) -> int:
    row = await cloud.db.read(lambda conn: conn.one("SELECT count(*) AS n FROM pushes"))
    return int(row["n"])


async def test_the_same_key_and_request_answer_the_first_push_again(cloud):
    token = await cloud.add_operator("acme", "site-a")
    path = "/api/v1/sites/site-a/config/auth"
    first = await post(cloud, path, token, {"document": AUTH}, "key-1")
    again = await post(cloud, path, token, {"document": AUTH}, "key-1")
    assert first[0] == again[0] == 202
    assert again[1]["id"] == first[1]["id"] and again[1]["version"] == first[1]["version"] == 1
    assert again[2].get("Idempotent-Replayed") == "true" and "Idempotent-Replayed" not in first[2]
    command = await post(cloud, "/api/v1/sites/site-a/commands", token, COMMAND, "key-2")
    command_again = await post(cloud, "/api/v1/sites/site-a/commands", token, COMMAND, "key-2")
    assert command_again[1]["id"] == command[1]["id"]
    assert await push_count(cloud) == 2
    # The same key with another request (another body, another site's path, another kind): refused, nothing made.
    other = await post(cloud, path, token, {"document": {"tokens": []}}, "key-1")
    other_kind = await post(cloud, "/api/v1/sites/site-a/config/limits", token, {"document": {"caps": []}}, "key-1")
    assert other[0] == other_kind[0] == 422 and "Idempotency-Key" in other[1]["error"]
    assert (await post(cloud, path, token, {"document": AUTH}, "bad key"))[0] == 400
    # Without a key, every POST is a new push (as before).
    await post(cloud, path, token, {"document": AUTH}, None)
    await post(cloud, path, token, {"document": AUTH}, None)
    assert await push_count(cloud) == 4


async def test_a_retry_racing_on_two_instances_makes_one_push(make_cloud):
    async with make_cloud("cloud-1") as one, make_cloud("cloud-2") as two:
        token = await one.add_operator("acme", "site-a")
        answers = await asyncio.gather(*(post(c, "/api/v1/sites/site-a/commands", token, COMMAND, "retry-1")
                                         for c in (one, two, one, two)))
        assert {a[0] for a in answers} == {202} and len({a[1]["id"] for a in answers}) == 1
        assert await push_count(one) == 1


async def test_an_ack_for_a_push_whose_publish_was_not_written_down_fills_it_in(db):
    """An instance dies between the broker's PUBACK and writing published_at: the site's ack says it was."""
    now = "2026-03-01T12:00:00.000Z"
    await db.write(lambda conn: pushes.create(conn, id="p1", site="site-a", kind="command", versioned=False,
                                              mode="full", document="{}", expires_at="2026-03-02T00:00:00.000Z",
                                              now=now, operator="acme"))
    await db.write(store.store_ack, Ack(site="site-a", kind="command", id="p1", status="done"), now)
    row = await db.read(pushes.get, "site-a", "p1")
    assert row["status"] == "done" and row["published_at"] == now
