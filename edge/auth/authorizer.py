"""The shell around the authorization decision: the live model, its versions,
and the authorization records.

The model's source of truth is the journal. The site config's auth tables
seed it; when they change (an installer edited the file), the edited tables
become the new version at the next start. Changes through the local API (and
later the cloud) each make a new version too. Whichever happened last wins,
and every version is kept with who made it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from edge.auth.config import model_from_document
from edge.auth.decide import AuthDecision, Method, decide
from edge.auth.model import AuthModel, ModelError
from edge.dlm.needs import Declared, next_at
from edge.clock import Clock
from edge.journal import Journal, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Authorization:
    """A decision with what its authorization record keeps."""
    decision: AuthDecision
    at: str
    charger_id: str
    connector_id: int | None
    id_tag: str | None
    method: str

    def record(self, store: Store) -> None:
        """Journal it (a Store function: run it inside a journal write)."""
        d = self.decision
        store.record_authorization(self.at, self.charger_id, self.connector_id, self.id_tag,
                                   d.token.id_tag if d.token else None, d.user_group, self.method, d.status, d.reason)


class ModelRejected(ValueError):
    """A proposed model (document or change) is invalid; nothing was applied."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


def document_hash(document: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()).hexdigest()[:16]


def validate_document(version: int, document: dict[str, Any], chargers: list[str] | None) -> AuthModel:
    try:
        return model_from_document(version, document, chargers)
    except ModelError as exc:
        raise ModelRejected(exc.problems) from None
    except ValidationError as exc:
        raise ModelRejected([f"{'.'.join(map(str, e['loc']))}: {e['msg']} (got {e.get('input')!r})"
                             for e in exc.errors()]) from None


class Authorizer:
    def __init__(self, journal: Journal, clock: Clock, tz: ZoneInfo, chargers: Callable[[], list[str]]):
        self._journal = journal
        self._clock = clock
        self._tz = tz
        self._chargers = chargers
        self.model = AuthModel(version=0)
        self.document: dict[str, Any] = {}
        self._config_hash = ""
        self._listeners: list[Callable[[AuthModel, set[str]], Any]] = []

    async def load(self, config_document: dict[str, Any]) -> None:
        """At start: the journal's latest model, or the config's tables if they changed since."""
        config_hash = document_hash(config_document)
        latest = await self._journal.read(Store.latest_auth_model)
        if latest is not None and latest["config_hash"] == config_hash:
            self.model = validate_document(latest["version"], latest["document"], None)
            self.document, self._config_hash = latest["document"], config_hash
            log.info("authorization model version=%d source=%s", self.model.version, latest["source"])
            return
        if latest is not None and latest["source"] != "config":
            log.warning("the config's authorization tables changed; they replace model version %d (%s by %s)",
                        latest["version"], latest["source"], latest["actor"])
        self._config_hash = config_hash
        await self._commit(config_document, "config", "site config", "loaded from the site config", notify=False)

    def prioritised(self, id_tag: str) -> bool:
        """Whether the token's user group is served first by load management."""
        token = self.model.find(id_tag) if id_tag else None
        group = self.model.user_groups.get(token.user_group) if token else None
        return bool(group and group.prioritised)

    def needs_of(self, id_tag: str) -> Declared | None:
        """The token's user group's default departure (the next such time at the site) and
        energy, for load management's `scheduled` strategy; None when the group has neither."""
        token = self.model.find(id_tag) if id_tag else None
        group = self.model.user_groups.get(token.user_group) if token else None
        if group is None or (group.departure is None and group.energy_kwh is None):
            return None
        departure = next_at(group.departure, self._clock.now(), self._tz) if group.departure else None
        energy = group.energy_kwh * 1000.0 if group.energy_kwh is not None else None
        return Declared(departure, energy, f"user group {group.id}")

    def on_change(self, listener: Callable[[AuthModel, set[str]], Any]) -> None:
        """listener(model, blocked_tokens) after each new version (e.g. push local lists, clear caches)."""
        self._listeners.append(listener)

    async def replace(self, document: dict[str, Any], *, source: str, actor: str, note: str = "") -> AuthModel:
        """Apply a whole new model document atomically, or raise ModelRejected and change nothing."""
        return await self._commit(document, source, actor, note)

    async def change(self, edit: Callable[[dict[str, Any]], None], *, source: str, actor: str,
                     note: str) -> AuthModel:
        """Apply `edit` to a copy of the document; the result must validate as a whole."""
        document = json.loads(json.dumps(self.document))
        edit(document)
        return await self._commit(document, source, actor, note)

    async def _commit(self, document: dict[str, Any], source: str, actor: str, note: str,
                      notify: bool = True) -> AuthModel:
        version = self.model.version + 1
        latest = await self._journal.read(Store.latest_auth_model)
        if latest is not None:
            version = max(version, latest["version"] + 1)
        model = validate_document(version, document, self._chargers())
        await self._journal.write(Store.record_auth_model, version, document, source, self._config_hash, actor,
                                  note, self._clock.now_iso())
        before, self.model, self.document = self.model, model, document
        log.info("authorization model version=%d source=%s actor=%s note=%r", version, source, actor, note)
        if notify:
            blocked = {t.id_tag for t in model.tokens.values() if t.status == "Blocked"
                       and (before.tokens.get(t.id_tag) is None or before.tokens[t.id_tag].status != "Blocked")}
            for listener in self._listeners:
                await listener(model, blocked)
        return model

    async def decide(self, *, charger_id: str, connector_id: int | None, id_tag: str | None, method: Method | str,
                     running: Mapping[str, tuple[str, int]] | None = None) -> AuthDecision:
        """Decide and keep the authorization record (committed before the caller answers)."""
        authorization = self.judge(charger_id=charger_id, connector_id=connector_id, id_tag=id_tag, method=method,
                                   running=running)
        await self._journal.write(authorization.record)
        return authorization.decision

    def judge(self, *, charger_id: str, connector_id: int | None, id_tag: str | None, method: Method | str,
              running: Mapping[str, tuple[str, int]] | None = None) -> "Authorization":
        """The decision and its record, not yet journaled: a caller that journals more
        for the same message (a StartTransaction, a StopTransaction) writes the
        record in its own commit, so the charger's answer costs one fsync."""
        decision = decide(self.model, charger_id=charger_id, connector_id=connector_id, id_tag=id_tag,
                          now=self._clock.now(), tz=self._tz, running=running)
        log.info("authorization charger=%s connector=%s tag=%s method=%s status=%s reason=%r", charger_id,
                 connector_id, id_tag, method, decision.status, decision.reason)
        return Authorization(decision, self._clock.now_iso(), charger_id, connector_id, id_tag, str(method))

    def running_map(self, active: Iterable[tuple[str | None, str, int]]) -> dict[str, tuple[str, int]]:
        """(presented id tag, charger, connector) of running sessions -> canonical token -> place."""
        running = {}
        for id_tag, charger_id, connector_id in active:
            token = self.model.find(id_tag) if id_tag else None
            if token is not None:
                running[token.id_tag] = (charger_id, connector_id)
        return running
