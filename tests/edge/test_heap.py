"""The edge's start-up objects kept out of the garbage collector's full passes (edge/heap.py).

A full pass over the objects the edge has from its start freed nothing and held the event
loop 60 to 110 ms, inside a reaction to a load step (bench/dlm_reaction.py). Frozen, they are
skipped; what matters for correctness is that nothing is leaked: garbage of the start-up is
freed before the freeze, and what is allocated afterwards is still collected.
"""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from edge import heap


class Node:
    def __init__(self) -> None:
        self.me = self          # a cycle: only the collector frees it


@pytest.fixture
def frozen():
    """Undoes the freeze for the rest of the test session."""
    yield
    gc.unfreeze()


def in_collected_generations(obj: object) -> bool:
    return any(o is obj for o in gc.get_objects())


def test_what_lives_at_the_freeze_is_left_out_of_later_passes(frozen) -> None:
    alive = Node()
    heap.freeze_startup()
    assert not in_collected_generations(alive)


def test_garbage_of_the_start_up_is_freed_not_frozen(frozen) -> None:
    garbage = weakref.ref(Node())
    heap.freeze_startup()
    assert garbage() is None


def test_what_the_edge_allocates_later_is_still_collected(frozen) -> None:
    heap.freeze_startup()
    later = weakref.ref(Node())
    assert later() is not None
    gc.collect()
    assert later() is None


async def test_the_freeze_waits_until_the_edge_is_ready(frozen, monkeypatch) -> None:
    froze: list[bool] = []
    ready = asyncio.Event()
    monkeypatch.setattr(heap, "freeze_startup", lambda: froze.append(ready.is_set()))
    waiting = asyncio.create_task(heap.freeze_when_ready(ready))
    await asyncio.sleep(0)
    assert not froze
    ready.set()
    await asyncio.wait_for(waiting, 5)
    assert froze == [True]
