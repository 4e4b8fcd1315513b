"""Answer first, then act: the follow-ups of a simulated charger's request handlers (either OCPP version).

The ocpp library awaits a handler inline, so a call made from it would wait
for an answer the receive loop can no longer read. A handler records what to
do next; the matching @after hook runs it once the answer is on the wire.
"""

from __future__ import annotations

from typing import Any, Callable, Coroutine

FollowUp = Callable[[], Coroutine[Any, Any, Any]]
Claim = Callable[[], None]


class FollowUps:
    """Mixin for an ocpp ChargePoint whose `sim` has emit() and spawn()."""

    sim: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Kept per connection: if an answer never makes it out, neither does its follow-up.
        self._follow_ups: dict[str, tuple[FollowUp, Claim | None]] = {}

    def _answer(self, action: str, status: str, call_unique_id: str, follow_up: FollowUp | None = None,
                claim: Claim | None = None, **details: Any) -> str:
        """Record the answer; `follow_up` runs after it was sent, `claim` right before that is started."""
        self.sim.emit("request", action=action, status=status, **details)
        if follow_up is not None:
            self._follow_ups[call_unique_id] = (follow_up, claim)
        return status

    def _follow_up(self, call_unique_id: str) -> None:
        follow_up, claim = self._follow_ups.pop(call_unique_id, (None, None))
        if claim is not None:
            claim()
        if follow_up is not None:
            self.sim.spawn(follow_up)

