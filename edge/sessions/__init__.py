"""edge.sessions: transactions, from StartTransaction to StopTransaction, journaled."""

from edge.sessions.meter_values import parse_meter_values
from edge.sessions.service import Sessions

__all__ = ["Sessions", "parse_meter_values"]
