"""The journal's records: one Store over one sqlite3 connection, composed of each domain's store.

Every SQL statement of the edge lives in the module of the domain whose rows it writes
(chargers.py, transactions.py, samples.py, authorization.py, cdrs.py, outbox.py, downlink.py,
logs.py, load_series.py, certificates.py, security.py, credentials.py, signed_values.py, device_model.py,
station_events.py, notified_events.py, charging_limits.py, smart_charging.py), each a
mixin over base.StoreBase; Store is all of them, so callers keep writing `journal.write(Store.method, ...)`.

A Store is used from the journal's own thread, and for quick reads by the event loop over a second,
read-only connection (see journal.py). Its methods do not commit: the journal groups them into
transactions and commits before anyone is answered.
"""

from __future__ import annotations

import sqlite3

from edge.journal.authorization import AuthorizationStore
from edge.journal.base import Sample, StartOutcome, StopOutcome
from edge.journal.cdrs import CdrStore, transaction_mark
from edge.journal.certificates import CertificateStore
from edge.journal.chargers import ChargerStore
from edge.journal.charging_limits import ChargingLimitStore
from edge.journal.credentials import CredentialStore
from edge.journal.device_model import DeviceModelStore
from edge.journal.downlink import DownlinkStore
from edge.journal.load_series import LoadSeriesStore
from edge.journal.logs import LogStore
from edge.journal.migrations import migrate
from edge.journal.notified_events import NotifiedEventStore
from edge.journal.outbox import OutboxStore
from edge.journal.samples import SampleStore
from edge.journal.security import SecurityStore
from edge.journal.signed_values import SignedValueStore
from edge.journal.smart_charging import SmartChargingStore
from edge.journal.station_events import StationEventStore
from edge.journal.transactions import TransactionStore

__all__ = ["Sample", "StartOutcome", "StopOutcome", "Store", "connect", "transaction_mark"]


# How long a commit waits for another writer (an operator's sqlite3 shell, a backup) to let go of the
# database before it fails; tests that hold the database on purpose shorten it.
BUSY_TIMEOUT_MS = 5000


def connect(path: str) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN/COMMIT ourselves (group commit).
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit is on the disk (fsync) before we acknowledge anything to
    # a charger; NORMAL would lose the last transactions on a power cut.
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_MS)}")
    migrate(conn)
    return conn


class Store(ChargerStore, TransactionStore, SampleStore, AuthorizationStore, CdrStore,
            OutboxStore, DownlinkStore, LogStore, LoadSeriesStore, CertificateStore, SecurityStore,
            CredentialStore, SignedValueStore, DeviceModelStore, StationEventStore, NotifiedEventStore,
            ChargingLimitStore, SmartChargingStore):
    """Every domain's records over the one connection (see the modules above)."""
