"""What each charger's local authorization list should hold, and the
SendLocalList updates that bring it there (pure functions).

The local list is what keeps a charger admitting the right people when it
cannot reach the edge. It holds the tokens its charge groups admit by
membership (opening hours cannot be expressed in a 1.6 list, so they are
left to the online decision), with blocked and expired tokens of those
groups listed as such: a listed status overrides whatever a charger cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from edge.auth.model import AuthModel, IdToken

Entries = dict[str, dict]   # idTag -> IdTagInfo (OCPP camelCase)


@dataclass(frozen=True)
class Update:
    update_type: Literal["Full", "Differential"]
    version: int
    # {"idTag", "idTagInfo"?}, as the journal keeps a station's list; no idTagInfo in a Differential removes the
    # tag. Each protocol adapter words it for its version (edge/ocpp/v16/control.py: local_list_request).
    items: tuple[dict, ...]


def _admitted_by_membership(model: AuthModel, token: IdToken, charger_id: str) -> bool:
    groups = model.groups_of(charger_id, None)
    if not groups:
        return model.default_policy == "all-known"
    admitted = model.user_groups
    for group in groups:
        if group.policy == "all-known":
            return True
        if group.policy == "private" and group.id in admitted[token.user_group].charge_groups:
            return True
    return False


def entries_for(model: AuthModel, charger_id: str, now: datetime) -> Entries:
    entries: Entries = {}
    for token in model.tokens.values():
        group = model.user_groups[token.user_group]
        if group.archived or not _admitted_by_membership(model, token, charger_id):
            continue
        info: dict = {"parentIdTag": group.id}
        if token.status == "Blocked":
            info["status"] = "Blocked"
        elif token.expiry is not None and token.expiry <= now:
            info["status"] = "Expired"
        else:
            info["status"] = "Accepted"
            if token.expiry is not None:
                info["expiryDate"] = token.expiry.isoformat()
        entries[token.id_tag] = info
    return entries


def trim(entries: Entries, max_entries: int, last_used: dict[str, str]) -> tuple[Entries, int]:
    """At most `max_entries`, the most recently used first; -> (kept, left out)."""
    if len(entries) <= max_entries:
        return entries, 0
    ranked = sorted(entries, key=lambda tag: (last_used.get(tag, ""), tag), reverse=True)
    kept = {tag: entries[tag] for tag in ranked[:max_entries]}
    return kept, len(entries) - len(kept)


def _chunks(items: list[dict], size: int) -> list[list[dict]]:
    return [items[i:i + size] for i in range(0, len(items), size)] or [[]]


def full_updates(target: Entries, first_version: int, max_send: int) -> list[Update]:
    """A Full update, split: the first chunk replaces the list, the rest add to it.
    Each chunk has the next version, so a sync cut off half-way leaves a
    version we did not record, and the next connect starts over."""
    items = [{"idTag": tag, "idTagInfo": info} for tag, info in sorted(target.items())]
    chunks = _chunks(items, max_send)
    return [Update("Full" if i == 0 else "Differential", first_version + i, tuple(chunk))
            for i, chunk in enumerate(chunks)]


def differential_updates(held: Entries, target: Entries, first_version: int, max_send: int) -> list[Update]:
    changed = [{"idTag": tag, "idTagInfo": info} for tag, info in sorted(target.items()) if held.get(tag) != info]
    removed = [{"idTag": tag} for tag in sorted(held) if tag not in target]
    items = changed + removed
    if not items:
        return []
    return [Update("Differential", first_version + i, tuple(chunk)) for i, chunk in enumerate(_chunks(items, max_send))]
