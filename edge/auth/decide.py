"""The authorization decision for an id tag, as a pure function.

This is the foundation's policy (a static list of accepted and blocked tags
plus what to do with unknown ones); the full model of tokens, user groups and
charge groups replaces the policy object, not the shape of the decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx"]


@dataclass(frozen=True)
class AuthDecision:
    status: Status
    reason: str
    expiry_date: str | None = None
    parent_id_tag: str | None = None

    def id_tag_info(self) -> dict:
        info: dict = {"status": self.status}
        if self.expiry_date:
            info["expiry_date"] = self.expiry_date
        if self.parent_id_tag:
            info["parent_id_tag"] = self.parent_id_tag
        return info


@dataclass(frozen=True)
class TagPolicy:
    accepted: frozenset[str]
    blocked: frozenset[str]
    unknown_tags: Literal["accept", "reject"]


def normalise_tag(id_tag: str) -> str:
    return id_tag.strip().upper()


def decide(id_tag: str, policy: TagPolicy) -> AuthDecision:
    tag = normalise_tag(id_tag)
    if tag in policy.blocked:
        return AuthDecision("Blocked", "tag is blocked")
    if tag in policy.accepted:
        return AuthDecision("Accepted", "tag is on the accepted list")
    if policy.unknown_tags == "accept":
        return AuthDecision("Accepted", "unknown tag, site accepts unknown tags")
    return AuthDecision("Invalid", "unknown tag")
