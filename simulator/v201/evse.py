"""What the simulated 2.0.1 station keeps per EVSE: its connector, the transaction on it, who is authorized.

The station (station.py) changes them; its handlers and link read them. They live apart from the station
so that those can name them without importing it (the station imports its link, which imports the handlers).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from simulator.connector import Connector


def token_key(id_token: dict) -> str:
    """Local list and cache key: 2.0.1 tells tokens apart by value and type."""
    return f"{id_token.get('type')}:{id_token.get('id_token')}"


@dataclass(eq=False)
class Tx:
    evse_id: int
    transaction_id: str  # the station makes it (a UUID), not the CSMS
    started: datetime
    id_token: dict | None = None  # who authorized it, once someone did
    remote_start_id: int | None = None
    charging_state: str | None = None  # as last reported
    stopped_reason: str | None = None  # a de-authorization the stop point has not ended the transaction on

    # What simulator.connector.Connector.snapshot reads of a transaction.
    @property
    def id(self) -> str:
        return self.transaction_id

    @property
    def id_tag(self) -> str | None:
        return self.id_token.get("id_token") if self.id_token else None


@dataclass(eq=False)
class Evse:
    id: int
    connector: Connector
    tx: Tx | None = None
    token: dict | None = None  # the idToken authorized on this EVSE (before or during its transaction)
    remote_start_id: int | None = None
    token_deadline: datetime | None = None  # EVConnectionTimeOut: authorized, no cable yet
    pending_profile: dict | None = None  # RequestStartTransaction's TxProfile, until the transaction exists
    scheduled_operative: bool | None = None  # ChangeAvailability waiting for the transaction to end
    reported: str | None = None  # the connector status the CSMS acknowledged
