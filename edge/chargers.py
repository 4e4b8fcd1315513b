"""Which chargers belong to this site, and how each is let in.

Configured chargers come from the site config; chargers an installer adopted
(after they connected under the `pending` policy) come from the journal.
"""

from __future__ import annotations

from typing import Literal

from edge.config import ChargerConfig, SiteConfig

Registration = Literal["Accepted", "Pending", "Rejected"]


def registration(known: bool, policy: Literal["reject", "pending"]) -> Registration:
    """The BootNotification answer for a charger."""
    if known:
        return "Accepted"
    return "Pending" if policy == "pending" else "Rejected"


class ChargerDirectory:
    def __init__(self, config: SiteConfig, adopted: set[str]):
        self._configured = {c.id: c for c in config.chargers}
        self._adopted = set(adopted)
        self.policy = config.ocpp.unknown_chargers

    def configured(self, charger_id: str) -> ChargerConfig | None:
        return self._configured.get(charger_id)

    def is_known(self, charger_id: str) -> bool:
        return charger_id in self._configured or charger_id in self._adopted

    def adopt(self, charger_id: str) -> None:
        self._adopted.add(charger_id)

    def password_hash(self, charger_id: str) -> str | None:
        charger = self._configured.get(charger_id)
        return charger.password_hash if charger else None

    def registration(self, charger_id: str) -> Registration:
        return registration(self.is_known(charger_id), self.policy)

    def ids(self) -> list[str]:
        return sorted(set(self._configured) | self._adopted)
