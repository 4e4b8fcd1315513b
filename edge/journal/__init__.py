"""edge.journal: the one durable store of the edge (SQLite, WAL, synchronous=FULL)."""

from edge.journal.journal import Journal
from edge.journal.store import Sample, StartOutcome, StopOutcome, Store

__all__ = ["Journal", "Sample", "StartOutcome", "StopOutcome", "Store"]
