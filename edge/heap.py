"""The edge process's heap and Python's garbage collector.

Everything the edge builds before it is ready (its modules, the OCPP library's schemas and
routes, the config, the journal's statements) lives until the process ends. Python's full
collection walks every object the process has each time it runs, and runs when allocations
pile up, as they do when twenty chargers are told a new limit at once: a pass that found
nothing to free held the event loop for 60 to 110 ms on the bench machine, right inside a
reaction to a load step (bench/dlm_reaction.py). Frozen, those objects are skipped by every
later pass; what the edge allocates afterwards is still collected as before.
"""

from __future__ import annotations

import asyncio
import gc


def freeze_startup() -> None:
    """Keep every object alive now out of later collections. The garbage of the start-up
    goes first: a frozen cycle would never be freed."""
    gc.collect()
    gc.freeze()


async def freeze_when_ready(ready: asyncio.Event) -> None:
    """Once the edge is ready (the process's entry runs this beside it)."""
    await ready.wait()
    freeze_startup()
