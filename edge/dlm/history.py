"""Each token's past sessions, from the journal, for needs learned from them (edge.dlm.needs.learned),
and the most its car drew on a phase in them (`drew_of`: the planner counts on a car that drew near
its EVSE's maximum at that maximum from its start, planner.plan_cars' `drew`, rather than at 16 A
until it shows so again).

The load manager asks for a session's need at its start, in its own loop, so the
history is held in memory: read at start-up and again after every stop, from the
journal's completed transactions (edge time, which a charger's wrong clock does
not move). Only the last RECENT sessions of the site are read; a token that has
not charged among them has nothing to learn from.
"""

from __future__ import annotations

import logging
from datetime import tzinfo

from edge.clock import Clock, parse_iso
from edge.dlm.needs import LEARN_FROM, Declared, PastSession, learned, with_learned
from edge.events import EventBus
from edge.journal import Journal
from edge.journal.store import Store
from edge.journal.token_draws import most_drawn_by_session

log = logging.getLogger(__name__)

RECENT = 5000


def past_sessions(rows: list[dict]) -> dict[str, list[PastSession]]:
    """Completed transactions (Store.transactions rows, newest first) by token, at most
    LEARN_FROM * 2 each (weekdays and weekends)."""
    out: dict[str, list[PastSession]] = {}
    for row in rows:
        start, stop = parse_iso(row.get("start_received_at") or ""), parse_iso(row.get("stop_received_at") or "")
        energy = row.get("energy_wh")
        kept = out.setdefault(row["id_tag"], [])
        if start is None or stop is None or energy is None or len(kept) >= 2 * LEARN_FROM:
            continue
        kept.append(PastSession(start, stop, max(0.0, float(energy))))
    return out


def most_drawn(rows: list[dict]) -> dict[str, float]:
    """By token, the most its car drew on a phase (A) in its last LEARN_FROM sessions that carry
    a current (token_draws.most_drawn_by_session rows, newest first). The same token may come
    with another car one day: only its last sessions count."""
    out: dict[str, float] = {}
    counted: dict[str, int] = {}
    for row in rows:
        tag, drew = row["id_tag"], row.get("drew")
        if drew is None or counted.get(tag, 0) >= LEARN_FROM:
            continue
        counted[tag] = counted.get(tag, 0) + 1
        out[tag] = max(out.get(tag, 0.0), max(0.0, float(drew)))
    return out


class TokenHistory:
    def __init__(self, journal: Journal, bus: EventBus, clock: Clock, tz: tzinfo):
        self._journal, self._bus, self._clock, self._tz = journal, bus, clock, tz
        self.sessions: dict[str, list[PastSession]] = {}
        self.drew: dict[str, float] = {}

    async def load(self) -> None:
        rows = await self._journal.read(Store.transactions, state="completed", limit=RECENT)
        self.sessions = past_sessions(rows)
        self.drew = most_drawn(await self._journal.read(most_drawn_by_session, RECENT))

    async def run(self) -> None:
        events = self._bus.subscribe()
        try:
            while True:
                event = await events.queue.get()
                if event.kind == "transaction.stopped":
                    await self.load()
        finally:
            self._bus.unsubscribe(events)

    def needs_of(self, id_tag: str, declared: Declared | None = None) -> Declared | None:
        """What was declared for the token (its user group's default), filled from its history."""
        history = self.sessions.get(id_tag) if id_tag else None
        return with_learned(declared, learned(history, self._clock.now(), self._tz) if history else None)

    def drew_of(self, id_tag: str) -> float:
        """The most the token's car drew on a phase in its last sessions (A); 0: nothing known."""
        return self.drew.get(id_tag, 0.0) if id_tag else 0.0
