"""The local authorization list (SendLocalList / GetLocalListVersion) and the authorization cache.

This is what lets a wallbox start a session while the central system is
unreachable, so offline tests of the edge depend on it behaving as the spec says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence


@dataclass
class LocalAuthList:
    version: int = 0
    entries: dict[str, str] = field(default_factory=dict)  # id tag -> idTagInfo status
    cache: dict[str, str] = field(default_factory=dict)

    def send(self, version: int, update_type: str, items: Sequence[Mapping[str, Any]], *,
             max_send: int, max_total: int, key: Callable[[Mapping[str, Any]], str] = lambda item: item["id_tag"],
             info: str = "id_tag_info") -> str:
        """Apply a SendLocalList; returns the UpdateStatus.

        `items` are snake_case authorization data: {"id_tag": ..., "id_tag_info": {"status": ...}};
        in a Differential update an entry without id_tag_info removes the tag. OCPP 2.0.1 passes
        its own `key` (the idToken with its type) and `info` ("id_token_info").
        """
        if len(items) > max_send:
            return "Failed"
        if update_type == "Differential" and version <= self.version:
            return "VersionMismatch"
        entries = {} if update_type == "Full" else dict(self.entries)
        for item in items:
            found = item.get(info)
            if found is None:
                entries.pop(key(item), None)
            else:
                entries[key(item)] = found["status"]
        if len(entries) > max_total:
            return "Failed"
        self.entries, self.version = entries, version
        return "Accepted"

    def lookup(self, id_tag: str, *, use_list: bool, use_cache: bool) -> str | None:
        """The status the charger knows for `id_tag` without asking, or None.

        The local list takes precedence over the cache, as OCPP 1.6 requires.
        """
        if use_list and id_tag in self.entries:
            return self.entries[id_tag]
        return self.cache.get(id_tag) if use_cache else None

    def remember(self, id_tag: str, status: str) -> None:
        self.cache[id_tag] = status

    def clear_cache(self) -> None:
        self.cache.clear()
