"""Failed HTTP Basic credentials back off per charger id and per address, before the costly hash check."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings, strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from edge.clock import ManualClock
from edge.ocpp.auth_backoff import PER_ADDRESS, PER_CHARGER, AuthBackoff, BackoffPolicy, bar_length
from tests.edge.conftest import PASSWORD, PASSWORD_HASH, basic, ocpp_url


@pytest.mark.parametrize("failures, seconds", [(1, 0), (4, 0), (5, 1), (6, 2), (7, 4), (13, 256), (14, 300),
                                               (10_000, 300)])
def test_bar_doubles_up_to_a_cap(failures, seconds):
    assert bar_length(failures, BackoffPolicy(free_failures=5, first_bar=1, max_bar=300)) == seconds


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["A", "B", "C"]), st.sampled_from(["10.0.0.1", "10.0.0.2"]),
                          st.booleans(), st.floats(min_value=0, max_value=400)), max_size=80))
def test_table_stays_bounded_and_bars_stay_capped(steps):
    backoff, now = AuthBackoff(max_tracked=4), 0.0
    for charger_id, address, ok, gap in steps:
        now += gap
        wait = backoff.barred_for(charger_id, address, now)
        assert 0 <= wait <= max(PER_CHARGER.max_bar, PER_ADDRESS.max_bar)
        if wait:
            continue
        backoff.attempt(charger_id, address, now)
        if ok:
            backoff.succeeded(charger_id, address)
            assert backoff.barred_for(charger_id, address, now) == 0
        assert len(backoff) <= 4


async def _try(edge, password: str, charger_id: str = "CP-1") -> int:
    try:
        async with connect(ocpp_url(edge, charger_id), subprotocols=["ocpp1.6"],
                           additional_headers=basic(charger_id, password)):
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


def _count_hash_checks(edge, monkeypatch) -> list[str]:
    checked: list[str] = []
    real = edge.ocpp._verifier.verify

    async def verify(charger_id, password, stored):
        checked.append(password)
        return await real(charger_id, password, stored)
    monkeypatch.setattr(edge.ocpp._verifier, "verify", verify)
    return checked


async def test_right_password_waits_out_the_bar(make_edge, monkeypatch):
    clock = ManualClock()
    async with make_edge(clock=clock) as edge:
        checked = _count_hash_checks(edge, monkeypatch)
        assert [await _try(edge, "wrong") for _ in range(PER_CHARGER.free_failures)] == [401] * 5
        assert len(checked) == 5
        # Barred: refused at once, without a hash check, the right password too.
        assert await _try(edge, PASSWORD) == 401
        assert len(checked) == 5
        clock.advance(PER_CHARGER.first_bar + 0.1)
        assert await _try(edge, PASSWORD) == 101
        # Success resets: the next mistake is a free one again.
        assert await _try(edge, "wrong") == 401
        assert await _try(edge, PASSWORD) == 101


async def test_a_storm_of_wrong_passwords_costs_a_few_hash_checks(make_edge, monkeypatch):
    """300 wrong passwords at 40/s used to cost 11.5 s of CPU, and the right one was let in at once after."""
    clock = ManualClock()
    async with make_edge(clock=clock) as edge:
        checked = _count_hash_checks(edge, monkeypatch)
        for burst in range(10):
            answers = await asyncio.gather(*(_try(edge, f"guess-{burst}-{i}") for i in range(20)))
            assert set(answers) == {401}
            clock.advance(0.5)   # 40 attempts a second
        assert len(checked) <= PER_CHARGER.free_failures + 4   # the free ones, then one per bar that ran out
        assert await _try(edge, PASSWORD) == 401
        assert edge.ocpp.auth_refused >= 190
        clock.advance(PER_CHARGER.max_bar)
        assert await _try(edge, PASSWORD) == 101


async def test_an_address_that_tries_many_ids_is_barred(make_edge, monkeypatch):
    chargers = "\n".join(f'[[chargers]]\nid = "CP-{i}"\npassword_hash = "{PASSWORD_HASH}"\n' for i in range(1, 9))
    clock = ManualClock()
    async with make_edge(clock=clock, chargers=chargers) as edge:
        checked = _count_hash_checks(edge, monkeypatch)
        for i in range(1, 9):
            for _ in range(3):   # under the per-id limit each
                await _try(edge, "wrong", f"CP-{i}")
        assert len(checked) == PER_ADDRESS.free_failures
        assert await _try(edge, PASSWORD, "CP-8") == 401
        clock.advance(PER_ADDRESS.max_bar)
        assert await _try(edge, PASSWORD, "CP-8") == 101

