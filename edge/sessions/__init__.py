"""edge.sessions: transactions, from StartTransaction to StopTransaction, journaled."""

from edge.sessions.service import Sessions

__all__ = ["Sessions"]
