"""edge.auth: who may charge where (decisions are pure functions)."""

from edge.auth.decide import AuthDecision, TagPolicy, decide

__all__ = ["AuthDecision", "TagPolicy", "decide"]
