"""The shell around CDR building: when a transaction ends, read it from the
journal, build its record (pure), keep it and tell the bus.

Records are made after the stop is committed, not inside it: the charger's
answer must not wait for pricing. Whatever ended without a record (the edge
stopped between the two, or the bus dropped the event) is caught up from the
journal at start and whenever events were lost, so no completed transaction
goes without one.

Each record is its own failure domain: one that cannot be built (a charger
clock at year 1, a tariff that cannot price it, a bug) is quarantined: the
failure is kept in the journal with the transaction, logged, reported to the
cloud and shown by `edgectl cdrs quarantined`; the other records, and the
edge, go on. Quarantined records are tried again at every start, after a
tariff change and on `edgectl cdrs retry`.

A transaction corrected after its record was made (the charger's real
StopTransaction after the edge closed the session for inactivity) gets a
revision: the record built again from the journal, kept as a new record with
its own id that supersedes the latest one, which stays as it was (billing
systems credit the old and bill the new; nothing is changed silently). A
revision goes to the cloud once, like any record. One that cannot be built is
quarantined like a first record; a transaction whose first record was never
made gets a first record, not a revision. A charger back from an outage sends
its queued MeterValues and then its StopTransaction, each of which may correct
the close: the revision is made once its transaction's corrections have been
quiet for `settle_s`, so the lot is one revision. A correction the service missed
(the edge stopped, events were lost) is found in the journal at catch-up: each
record keeps what its transaction's stop was when it was built.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from edge.auth.model import AuthModel
from edge.cdr.pins import pin, pin_running, pinned
from edge.cdr.record import Cdr, Pricing, build_cdr, failed_cdr, revised, session_key
from edge.cdr.tariffs import AuthKind, Tariff, TariffBook, TariffGroup, select_tariff
from edge.clock import Clock
from edge.events import Event, EventBus, Subscription
from edge.failures import describe
from edge.journal import Journal, Store
from edge.journal.store import transaction_mark

log = logging.getLogger(__name__)

# An error kept in the quarantine is cut to this many characters (it may quote what a charger sent).
MAX_ERROR_CHARS = 500
RETRY_EVENT = "cdr.retry"       # on the bus: try the quarantined records again (e.g. the tariffs changed)
CORRECTED_EVENT = "transaction.corrected"   # on the bus (edge/sessions), after the correction is committed
# The reason of a revision made at catch-up, when the correction's own event was missed.
# Seconds (event loop time: it is about a charger flushing its queue, not about the session) a
# transaction's corrections must be quiet before its revision is made.
SETTLE_S = 10.0
FOUND_CHANGED = "the transaction changed after its record was made (found in the journal)"
# Fields that are not the record's content: a rebuild that differs only in these changes nothing.
_IDENTITY = frozenset({"id", "created_at", "revision", "supersedes", "revision_reason", "seq", "superseded_by",
                       "source"})


@dataclass(frozen=True)
class Attempt:
    """A start that was asked for (an accepted Authorize or remote start)."""
    charger_id: str
    connector_id: int | None
    id_tag: str
    user_group: str | None
    at: datetime
    how: str                 # "authorization" | "remote start"


class ChargeRecords:
    def __init__(self, journal: Journal, bus: EventBus, clock: Clock, *, site_id: str, book: TariffBook,
                 pricing: Pricing, evse_max_power_w: Callable[[str, int | None], float],
                 model: Callable[[], AuthModel], free_vend_id_tag: str):
        self._journal, self._bus, self._clock = journal, bus, clock
        self.site_id = site_id
        self._book = book
        self.pricing = pricing
        self.evse_max_power_w = evse_max_power_w
        self._model = model
        self.free_vend_id_tag = free_vend_id_tag
        self.settle_s = SETTLE_S
        self._corrections: dict[int, tuple[float, str]] = {}     # transaction -> (when to revise, why)

    @property
    def book(self) -> TariffBook:
        return self._book

    @book.setter
    def book(self, book: TariffBook) -> None:
        """New tariffs (from the cloud): a record they can price now may be in quarantine."""
        self._book = book
        self._bus.publish(Event(RETRY_EVENT, "", self._clock.now_iso(), {"why": "the tariffs changed"}))

    async def run(self) -> None:
        events = self._bus.subscribe()
        try:
            await self.catch_up()
            while True:
                await self._revise_settled()
                event = await self._next(events)
                if event is None:
                    continue
                if events.dropped or event.kind == RETRY_EVENT:   # lost events, new tariffs: look in the journal
                    events.dropped = 0
                    await pin_running(self._journal, self, self._clock.now_iso())    # a start may be lost
                    await self.catch_up()
                elif event.kind == "transaction.started":      # before its stop: one queue, in order
                    await pin(self._journal, self, event.data, event.charger_id, self._clock.now_iso())
                elif event.kind == "transaction.stopped":
                    await self.make(event.data["transaction_id"])
                elif event.kind == CORRECTED_EVENT:
                    self._corrections[event.data["transaction_id"]] = (
                        asyncio.get_running_loop().time() + self.settle_s, event.data.get("why") or FOUND_CHANGED)
        finally:
            self._bus.unsubscribe(events)

    async def _next(self, events: Subscription) -> Event | None:
        """The next event; None when a correction is due first."""
        if not self._corrections:
            return await events.get()
        wait = min(due for due, _ in self._corrections.values()) - asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout(max(0.0, wait)):
                return await events.get()
        except TimeoutError:
            return None

    async def _revise_settled(self) -> None:
        """Revisions of the corrected transactions that have been quiet for settle_s (checked before
        each event, so a busy bus cannot hold them back)."""
        now = asyncio.get_running_loop().time()
        for transaction_id, (due, why) in sorted(self._corrections.items()):
            if due <= now:
                del self._corrections[transaction_id]
                await self.make(transaction_id, why)

    async def catch_up(self) -> list[Cdr]:
        """Records for every completed transaction without one, and revisions for every one changed
        after its latest record, the quarantined tried again; one that fails again stays in
        quarantine and the rest are made."""
        made = []
        missing = await self._journal.read(Store.completed_without_cdr)
        changed = await self._journal.read(Store.cdrs_out_of_date)
        why = {row["transaction_id"]: row["why"] for row in await self._journal.read(Store.cdr_quarantine)}
        for transaction_id in sorted({*missing, *changed}):
            revising = why.get(transaction_id) or FOUND_CHANGED if transaction_id in changed else None
            cdr = await self.make(transaction_id, revising)
            if cdr is not None:
                made.append(cdr)
        return made

    async def make(self, transaction_id: int, why: str | None = None) -> Cdr | None:
        """`record`, as its own failure domain: whatever goes wrong, the transaction is quarantined
        (kept, logged, reported) and None returned; nothing is raised to the caller."""
        try:
            return await self.record(transaction_id, why)
        except Exception as exc:  # noqa: BLE001 - one record's failure is quarantined, loudly; the rest go on
            await self._quarantine(transaction_id, exc, why)
            return None

    async def retry(self, transaction_id: int | None = None) -> list[dict[str, Any]]:
        """Try quarantined records again (one, or all). -> per record: transaction_id, made, the
        record's id (if this try made it), or the error it failed with again."""
        outcomes = []
        for row in await self._journal.read(Store.cdr_quarantine, transaction_id):
            cdr = await self.make(row["transaction_id"], row["why"])
            left = await self._journal.read(Store.cdr_quarantine, row["transaction_id"])
            outcomes.append({"transaction_id": row["transaction_id"], "made": not left,
                             "cdr_id": cdr.id if cdr else None, "error": left[0]["error"] if left else None})
        return outcomes

    async def _quarantine(self, transaction_id: int, exc: Exception, why: str | None) -> None:
        error = describe(exc, MAX_ERROR_CHARS)
        try:
            outcome = await self._journal.write(Store.quarantine_cdr, transaction_id, error, self._clock.now_iso(),
                                                why)
        except Exception:  # noqa: BLE001 - logged; the transaction stays without a record and is tried at start
            log.exception("cdr transaction=%s could not be made (%s) nor quarantined", transaction_id, error)
            return
        if outcome == "new":
            log.error("cdr transaction=%s quarantined: its record could not be made (%s); the transaction is kept, "
                      "see edgectl cdrs quarantined", transaction_id, error, exc_info=exc)
        elif outcome == "again":
            log.warning("cdr transaction=%s still quarantined: %s", transaction_id, error)

    # -- what applies to a session ------------------------------------------------

    def kind(self, id_tag: str | None, user_group: str | None) -> AuthKind:
        if id_tag is None or id_tag.upper() == self.free_vend_id_tag.upper():
            return "free-vend"
        return "token" if user_group else "ad-hoc"

    def tariff_for(self, charger_id: str, connector_id: int | None, id_tag: str | None,
                   user_group: str | None) -> tuple[TariffGroup | None, Tariff]:
        group = self.book.group_for(charger_id, connector_id)
        named = {g.id: g.tariff for g in self._model().user_groups.values() if g.tariff}
        return group, select_tariff(group, self.kind(id_tag, user_group), user_group, named)

    def _user(self, id_tag: str | None) -> str:
        token = self._model().find(id_tag) if id_tag else None
        return token.user if token else ""

    def user_group_of(self, id_tag: str | None) -> str | None:
        token = self._model().find(id_tag) if id_tag else None
        return token.user_group if token else None

    # -- making records ---------------------------------------------------------------

    async def record(self, transaction_id: int, why: str | None = None) -> Cdr | None:
        """The record of a completed transaction, or with `why` (it was corrected) its next revision.
        None when there is nothing to make: not completed, already made, or a correction that changes
        nothing in the record."""
        tx, samples = await self._journal.read(Store.cdr_source, transaction_id)
        if tx is None or tx["state"] != "completed":
            return None
        latest = await self._journal.read(Store.latest_cdr, transaction_id)
        if latest is not None and why is None:
            return None
        key = session_key(tx)
        duplicate = await self._journal.read(Store.cdr_with_session_key, key, transaction_id)
        tariff = await pinned(self._journal, self, tx)     # the one in force when the session started
        cdr = build_cdr(site_id=self.site_id, tx=tx, samples=samples, kind=self.kind(tx["id_tag"], tx["user_group"]),
                        user=self._user(tx["id_tag"]), group=tariff.group, tariff=tariff,
                        evse_max_power_w=self.evse_max_power_w(tx["charger_id"], tx["connector_id"]),
                        pricing=self.pricing, duplicate_of=duplicate, now=self._clock.now())
        if latest is not None:
            if _content(cdr.as_dict()) == _content(latest):
                log.info("cdr transaction=%s corrected (%s): its record %s stays as it is", transaction_id, why,
                         latest["id"])
                return None
            # The journal's own account of the correction (what arrived, when) says more than the event.
            cdr = revised(cdr, latest, tx.get("corrected") or why or FOUND_CHANGED)
        return await self._keep(cdr, key, transaction_mark(tx))

    async def record_failed(self, attempt: Attempt, why: str) -> Cdr | None:
        try:
            return await self._record_failed(attempt, why)
        except Exception:  # noqa: BLE001 - a start that never happened: logged loudly, the others go on
            log.exception("cdr for the failed start charger=%s id_tag=%s at %s could not be made",
                          attempt.charger_id, attempt.id_tag, attempt.at)
            return None

    async def _record_failed(self, attempt: Attempt, why: str) -> Cdr | None:
        cdr = failed_cdr(site_id=self.site_id, charger_id=attempt.charger_id, connector_id=attempt.connector_id,
                         id_tag=attempt.id_tag, user=self._user(attempt.id_tag), user_group=attempt.user_group,
                         kind=self.kind(attempt.id_tag, attempt.user_group), attempted=attempt.at,
                         given_up=self._clock.now(), why=why, pricing=self.pricing)
        return await self._keep(cdr, None)

    async def _keep(self, cdr: Cdr, key: str | None, source: str | None = None) -> Cdr | None:
        document = cdr.as_dict()
        if not await self._journal.write(Store.record_cdr, document, key, source):
            return None
        self._bus.publish(Event("cdr.created", cdr.charger_id, cdr.created_at, _summary(document)))
        log.info("cdr id=%s charger=%s transaction=%s status=%s energy_kwh=%s price=%s %s tariff=%s reasons=%s%s",
                 cdr.id, cdr.charger_id, cdr.transaction_id, cdr.status, cdr.energy_kwh, cdr.price_gross,
                 cdr.currency, cdr.tariff, "; ".join(cdr.status_reasons) or "-",
                 f" revision={cdr.revision} supersedes={cdr.supersedes} ({cdr.revision_reason})"
                 if cdr.supersedes else "")
        return cdr


def _summary(document: dict[str, Any]) -> dict[str, Any]:
    return {k: document[k] for k in ("id", "transaction_id", "connector_id", "status", "energy_kwh", "price_gross",
                                     "currency", "revision", "supersedes")}


def _content(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k not in _IDENTITY}
