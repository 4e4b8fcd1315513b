"""Charge record revisions in the cloud: a corrected session's record comes again as a new record
(its own id and message id) that supersedes the previous one. The cloud stores each once, in any
order of arrival, keeps both, lists and exports the latest and shows the history.
Real Mosquitto, real SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io

from cloud.projections import revision_chain
from tests.cloud.fakes import cdr_body, message


def _revision(first: dict, n: int, **changes) -> dict:
    return first | {"id": f"{first['id']}-r{n}", "revision": n, "supersedes": first["id"] if n == 2
                    else f"{first['id']}-r{n - 1}", "revision_reason": "late StopTransaction"} | changes


async def test_revisions_are_stored_once_each_in_any_order_and_the_latest_is_listed_and_exported(cloud, make_site):
    token = await cloud.add_operator("acme", "site-a")
    site = make_site()
    first = cdr_body(1) | {"energy_kwh": "0.078", "price_gross": "0.00", "status": "Exclusion"}
    second = _revision(first, 2, energy_kwh="0.416", price_gross="0.17", status="Successful")
    other = cdr_body(2)                                   # a record from before revisions: no such fields
    # The revision arrives first (a batch refused, then resent), then everything again (lost receipts).
    await site.up("cdr", [message(2, "cdr", second, id=second["id"])])
    await site.up("cdr", [message(1, "cdr", first, id=first["id"]), message(3, "cdr", other, id=other["id"])])
    await site.up("cdr", [message(1, "cdr", first, id=first["id"]), message(2, "cdr", second, id=second["id"]),
                          message(3, "cdr", other, id=other["id"])])
    await cloud.wait_handled(3)
    stored = await cloud.db.read(lambda c: c.all("SELECT id, revision, supersedes FROM cdrs ORDER BY id"))
    assert stored == [{"id": "cdr-0001", "revision": 1, "supersedes": None},
                      {"id": "cdr-0001-r2", "revision": 2, "supersedes": "cdr-0001"},
                      {"id": "cdr-0002", "revision": 1, "supersedes": None}]

    status, page = await cloud.get("/api/v1/sites/site-a/cdrs", token)
    assert status == 200 and [(r["id"], r["revision"]) for r in page["items"]] == [("cdr-0002", 1),
                                                                                     ("cdr-0001-r2", 2)]
    status, page = await cloud.get("/api/v1/sites/site-a/cdrs", token, revisions="all")
    assert sorted(r["id"] for r in page["items"]) == ["cdr-0001", "cdr-0001-r2", "cdr-0002"]
    status, one = await cloud.get("/api/v1/sites/site-a/cdrs/cdr-0001", token)
    assert (one["energy_kwh"], one["superseded_by"], one["revision"]) == ("0.078", "cdr-0001-r2", 1)
    for either in ("cdr-0001", "cdr-0001-r2"):
        status, history = await cloud.get(f"/api/v1/sites/site-a/cdrs/{either}/revisions", token)
        assert status == 200 and [(r["id"], r["revision"], r["superseded_by"]) for r in history["items"]] == [
            ("cdr-0001", 1, "cdr-0001-r2"), ("cdr-0001-r2", 2, None)]
    status, history = await cloud.get("/api/v1/sites/site-a/cdrs/cdr-0002/revisions", token)
    assert [r["id"] for r in history["items"]] == ["cdr-0002"]
    assert (await cloud.get("/api/v1/sites/site-a/cdrs/nope/revisions", token))[0] == 404
    status, body = await cloud.get("/api/v1/sites/site-a/cdrs", token, revisions="some")
    assert status == 400 and "revisions" in body["error"]

    async with cloud.http.get(f"{cloud.base}/api/v1/sites/site-a/cdrs", params={"format": "csv"},
                              headers={"Authorization": f"Bearer {token}"}) as response:
        rows = list(csv.DictReader(io.StringIO(await response.text())))
    assert [(r["id"], r["revision"], r["supersedes"], r["energy_kwh"], r["price_gross"]) for r in rows] == [
        ("cdr-0001-r2", "2", "cdr-0001", "0.416", "0.17"), ("cdr-0002", "1", "", "1.002", "1.19")]


async def test_a_third_revision_and_a_revision_whose_links_are_unusable(cloud, make_site):
    token = await cloud.add_operator("acme", "site-a")
    site = make_site()
    first = cdr_body(1)
    chain = [first, _revision(first, 2), _revision(first, 3)]
    odd = cdr_body(5) | {"revision": "second", "supersedes": ["x"]}     # stored as the record it is: revision 1
    await site.up("cdr", [message(n + 1, "cdr", body, id=body["id"]) for n, body in enumerate([*chain, odd])])
    await cloud.wait_handled(1)
    status, page = await cloud.get("/api/v1/sites/site-a/cdrs", token)
    assert [(r["id"], r["revision"]) for r in page["items"]] == [("cdr-0005", 1), ("cdr-0001-r3", 3)]
    status, history = await cloud.get("/api/v1/sites/site-a/cdrs/cdr-0001-r2/revisions", token)
    assert [r["revision"] for r in history["items"]] == [1, 2, 3]


def test_a_revision_chain_is_followed_both_ways_and_a_loop_ends_it():
    rows = [{"id": "a", "supersedes": None}, {"id": "b", "supersedes": "a"}, {"id": "c", "supersedes": "b"},
            {"id": "x", "supersedes": "y"}, {"id": "y", "supersedes": "x"}]
    assert [r["id"] for r in revision_chain(rows, "b")] == ["a", "b", "c"]
    assert [r["id"] for r in revision_chain(rows, "x")] in (["y", "x"], ["x", "y"])
    assert revision_chain(rows, "nope") == []
