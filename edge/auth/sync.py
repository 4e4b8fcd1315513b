"""Keeps every charger's local authorization list and auth settings in step
with the model, so chargers keep admitting the right people without the edge.

When a charger is ready (charger.ready: its BootNotification accepted, or
its first frame after the edge restarted; never merely on the socket
opening, before which many chargers refuse or ignore requests): set the auth
configuration keys, read the charger's list limits, compare
GetLocalListVersion with what we last sent, and send a Full list when they
differ; after a model change, send only the difference. A pass in which the
charger timed out or answered with an error is run again with back-off
(edge.retries, then it waits for the next connection). One worker per
charger; requests that arrive while it works are coalesced into one more
pass. Every request goes through the command interface, so each lands in
the actions log.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Iterable

from edge.auth.authorizer import Authorizer
from edge.auth.config import ChargerSettings
from edge.auth.local_list import Entries, Update, differential_updates, entries_for, full_updates, trim
from edge.auth.model import AuthModel
from edge.clock import Clock
from edge.events import EventBus
from edge.journal import Journal, Store
from edge.stations.control import CommandResult, StationControl, worth_retrying
from edge.stations.model import ListUpdateStatus, Setting
from edge.retries import RETRY_DELAYS, Later, next_delay

log = logging.getLogger(__name__)

ACTOR = "edge:local-list"
# The site's auth settings every station gets (edge.auth.config.ChargerSettings fields by the same names).
_SETTINGS = (Setting.LOCAL_AUTH_LIST_ENABLED, Setting.LOCAL_AUTHORIZE_OFFLINE, Setting.AUTHORIZATION_CACHE_ENABLED,
             Setting.STOP_TRANSACTION_ON_INVALID_ID)
_LIMITS = (Setting.SEND_LOCAL_LIST_MAX_LENGTH, Setting.LOCAL_AUTH_LIST_MAX_LENGTH)
# Used when a charger does not report its limits.
DEFAULT_MAX_SEND, DEFAULT_MAX_LIST = 20, 1000


class LocalListSync:
    def __init__(self, journal: Journal, control: StationControl, authorizer: Authorizer, bus: EventBus, clock: Clock,
                 settings: ChargerSettings, is_known: Callable[[str], bool], connected: Callable[[], Iterable[str]],
                 enabled: bool = True, retry_delays: tuple[float, ...] = RETRY_DELAYS):
        self.enabled = enabled
        self.retry_delays = retry_delays
        self._journal, self._control, self._authorizer = journal, control, authorizer
        self._bus, self._clock, self._settings = bus, clock, settings
        self._is_known, self._connected = is_known, connected
        self.held: dict[str, dict[str, Any]] = {}     # charger -> {version, entries, status, detail, at}
        self._workers: dict[str, asyncio.Task] = {}
        self._again: set[str] = set()
        self._full: set[str] = set()
        self._failed: dict[str, list[str]] = {}        # charger -> what failed in the pass under way
        self._attempts: dict[str, int] = {}           # charger -> retries so far on this connection
        self._retries = Later("local-list retry")
        self.idle = asyncio.Event()
        self.idle.set()
        authorizer.on_change(self._model_changed)

    async def load(self) -> None:
        self.held = await self._journal.read(Store.local_lists)

    async def run(self) -> None:
        events = self._bus.subscribe()
        try:
            while True:
                event = await events.get()
                if event.kind in ("charger.ready", "charger.disconnected"):
                    self._retries.cancel(event.charger_id)
                    self._attempts.pop(event.charger_id, None)
                if event.kind == "charger.ready" and self.enabled and self._is_known(event.charger_id):
                    self.request(event.charger_id, full_check=True)
        finally:
            self._bus.unsubscribe(events)
            self._retries.cancel_all()
            for task in self._workers.values():
                task.cancel()

    def request(self, charger_id: str, full_check: bool = False) -> None:
        if full_check:
            self._full.add(charger_id)
        if charger_id in self._workers:
            self._again.add(charger_id)
            return
        self.idle.clear()
        self._workers[charger_id] = asyncio.create_task(self._work(charger_id), name=f"local-list {charger_id}")

    async def _work(self, charger_id: str) -> None:
        try:
            while True:
                self._again.discard(charger_id)
                full_check = charger_id in self._full
                self._full.discard(charger_id)
                self._failed[charger_id] = []
                try:
                    await self.sync(charger_id, full_check=full_check)
                except Exception:  # a bug here must not take the edge down, but it must be loud
                    log.exception("local list sync failed charger=%s", charger_id)
                failed = self._failed.pop(charger_id)
                if failed:
                    self._retry_later(charger_id, failed)
                if charger_id not in self._again:
                    return
        finally:
            del self._workers[charger_id]
            if not self._workers:
                self.idle.set()

    def _retry_later(self, charger_id: str, failed: list[str]) -> None:
        attempt = self._attempts.get(charger_id, 0)
        delay = next_delay(attempt, self.retry_delays)
        if delay is None:
            log.error("local list and auth settings of charger=%s still failing after %d retries (%s); "
                      "trying again when it next connects", charger_id, attempt, "; ".join(failed))
            return
        self._attempts[charger_id] = attempt + 1
        log.warning("local list sync charger=%s: %s; retry %d in %g s", charger_id, "; ".join(failed),
                    attempt + 1, delay)
        self._retries.call(charger_id, delay, lambda: self._retry(charger_id))

    def _retry(self, charger_id: str) -> None:
        if self._control.is_ready(charger_id):
            self.request(charger_id, full_check=True)

    async def _model_changed(self, model: AuthModel, blocked: set[str]) -> None:
        if not self.enabled:
            return
        for charger_id in list(self._connected()):
            if not self._control.is_ready(charger_id):
                continue    # it gets the whole list when it is ready
            if blocked:
                # A cached Accepted must not outlive the block.
                await self._control.clear_cache(charger_id, actor=ACTOR,
                                                reason=f"tokens blocked: {', '.join(sorted(blocked))}")
            self.request(charger_id)

    def _noted(self, charger_id: str, result: CommandResult) -> CommandResult:
        """A request of this pass that may pass if asked again: the pass is retried later (see _work)."""
        if worth_retrying(result) and charger_id in self._failed:
            self._failed[charger_id].append(f"{result.action} {result.outcome}")
        return result

    async def sync(self, charger_id: str, *, full_check: bool) -> None:
        held = self.held.get(charger_id)
        if full_check:
            if not await self._apply_settings(charger_id):
                return   # the charger does not answer as it should: the whole pass is tried again later
            version = self._noted(charger_id, await self._control.local_list_version(
                charger_id, actor=ACTOR, reason="compare list versions"))
            if worth_retrying(version) or version.outcome == "not-connected":
                # No answer is not "no list": keep what we know, try again (see _work).
                await self._record(charger_id, held["version"] if held else 0, held["entries"] if held else {},
                                   "failed", f"GetLocalListVersion {version.outcome}: {version.response}")
                return
            if version.outcome != "ok" or version.value is None:
                await self._record(charger_id, 0, {}, "unsupported",
                                   "charger has no local list; it asks the edge for every token")
                return
            if held is None or held["status"] == "unsupported" or version.value != held["version"]:
                held = None   # the charger lost or never had our list
        limits = await self._limits(charger_id) if full_check or held is None else (
            held.get("max_send", DEFAULT_MAX_SEND), held.get("max_list", DEFAULT_MAX_LIST))
        max_send, max_list = limits
        last_used = await self._journal.read(Store.last_used)
        target, left_out = trim(entries_for(self._authorizer.model, charger_id, self._clock.now()), max_list,
                                last_used)
        base_version = held["version"] if held else 0
        if held is None:
            updates = full_updates(target, base_version + 1, max_send)
        else:
            updates = differential_updates(held["entries"], target, base_version + 1, max_send)
        if held is not None and not updates:
            return
        status, detail, final = await self._push(charger_id, updates, target, max_send, base_version)
        if status == "in-sync" and left_out:
            status, detail = "truncated", (f"{len(target) + left_out} tokens admitted, charger holds {max_list}: "
                                           f"the {left_out} least recently used are left out")
        await self._record(charger_id, final, target if status != "failed" else (held or {}).get("entries", {}),
                           status, detail, max_send=max_send, max_list=max_list)

    async def _push(self, charger_id: str, updates: list[Update], target: Entries, max_send: int,
                    base_version: int) -> tuple[str, str, int]:
        """-> (status, detail, the version the charger now holds as far as we know)."""
        for attempt in range(2):
            for update in updates:
                result = self._noted(charger_id, await self._control.send_local_list(
                    charger_id, update, actor=ACTOR,
                    reason=f"local list {update.update_type} v{update.version} ({len(update.items)} entries)"))
                status = result.value
                if status == ListUpdateStatus.ACCEPTED:
                    continue
                if status == ListUpdateStatus.NOT_SUPPORTED:
                    return "unsupported", "charger answered SendLocalList NotSupported", base_version
                if attempt == 0 and status in (ListUpdateStatus.FAILED, ListUpdateStatus.VERSION_MISMATCH):
                    # Start over with a Full list, from a version above anything sent.
                    log.warning("local list %s charger=%s; retrying with a Full list", status.value, charger_id)
                    updates = full_updates(target, updates[-1].version + 1, max_send)
                    break
                return ("failed", f"SendLocalList v{update.version}: {status.value if status else result.outcome} "
                                  f"{result.response}",
                        base_version)
            else:
                return "in-sync", f"{len(target)} tokens", updates[-1].version
        return "failed", "charger refused the Full list too", base_version

    async def _apply_settings(self, charger_id: str) -> bool:
        """False when a key could not be set for a reason that may pass (no answer,
        a CALLERROR): the rest would only wait out the same timeout."""
        for setting in _SETTINGS:
            result = self._noted(charger_id, await self._control.change_setting(
                charger_id, setting, bool(getattr(self._settings, setting.value)), actor=ACTOR,
                reason="site auth settings"))
            if worth_retrying(result) or result.outcome == "not-connected":
                return False
        return True

    async def _limits(self, charger_id: str) -> tuple[int, int]:
        result = self._noted(charger_id, await self._control.read_settings(
            charger_id, _LIMITS, actor=ACTOR, reason="local list limits"))
        values = {}
        for setting, text in (result.value or {}).items():
            try:
                values[setting] = max(1, int(text))
            except ValueError:
                pass
        return (values.get(Setting.SEND_LOCAL_LIST_MAX_LENGTH, DEFAULT_MAX_SEND),
                values.get(Setting.LOCAL_AUTH_LIST_MAX_LENGTH, DEFAULT_MAX_LIST))

    async def _record(self, charger_id: str, version: int, entries: Entries, status: str, detail: str,
                      **limits: int) -> None:
        at = self._clock.now_iso()
        await self._journal.write(Store.record_local_list, charger_id, version, entries, status, detail, at)
        self.held[charger_id] = {"version": version, "entries": entries, "status": status, "detail": detail,
                                 "at": at, **limits}
        log.info("local list charger=%s version=%d entries=%d status=%s detail=%r", charger_id, version,
                 len(entries), status, detail)
