"""The words the site's core speaks about charging stations, whatever OCPP version they use.

Sessions, authorization, load management, charge records and sync speak these;
a protocol adapter (edge/ocpp/v16, later edge/ocpp/v201) turns them into its
version's messages and back. Plain frozen dataclasses and string enums: no
behaviour beyond small conversions, no OCPP library types.

Addressing. A station (charger id) has EVSEs, numbered from 1; 0 is the whole
station. The site's "connector" in configuration, the journal and events is
the EVSE number: in OCPP 1.6 that is the connectorId (one connector per EVSE),
in 2.0.1 the evseId, whose connectors are addressed only where a message needs
them (`Evse.connector`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from edge.journal import Sample

# A station's EVSE 0: the station as a whole (a limit or availability for every EVSE).
WHOLE_STATION = 0


@dataclass(frozen=True)
class Evse:
    """Where on a station: EVSE `id` (0: the whole station), and in 2.0.1 one
    connector of it when a message needs it (None: the EVSE's only one)."""
    id: int
    connector: int | None = None


class IdTokenType(str, Enum):
    """How a token was presented (2.0.1's IdTokenEnumType). OCPP 1.6 has no
    type: its idTag arrives as ISO14443 (a card), the edge's own as Central."""
    ISO14443 = "ISO14443"
    ISO15693 = "ISO15693"
    CENTRAL = "Central"
    KEY_CODE = "KeyCode"
    EMAID = "eMAID"
    LOCAL = "Local"
    MAC_ADDRESS = "MacAddress"
    NO_AUTHORIZATION = "NoAuthorization"


@dataclass(frozen=True)
class IdToken:
    value: str
    type: IdTokenType = IdTokenType.ISO14443


class ConnectorStatus(str, Enum):
    """A connector's state. The values are OCPP 1.6's words, the finest the
    site sees (2.0.1's Occupied is split by its TransactionEvent's charging
    state into preparing, charging, suspended and finishing by its adapter);
    they are what the journal and the connector.status events hold."""
    AVAILABLE = "Available"
    PREPARING = "Preparing"
    CHARGING = "Charging"
    SUSPENDED_EV = "SuspendedEV"
    SUSPENDED_EVSE = "SuspendedEVSE"
    FINISHING = "Finishing"
    RESERVED = "Reserved"
    UNAVAILABLE = "Unavailable"
    FAULTED = "Faulted"


class Availability(str, Enum):
    OPERATIVE = "Operative"
    INOPERATIVE = "Inoperative"


class ResetKind(str, Enum):
    """SOFT: restart the software when idle (2.0.1 OnIdle); HARD: restart now (Immediate)."""
    SOFT = "Soft"
    HARD = "Hard"


class Trigger(str, Enum):
    """What a station is asked to send again (TriggerMessage)."""
    BOOT = "BootNotification"
    STATUS = "StatusNotification"
    HEARTBEAT = "Heartbeat"
    METER_VALUES = "MeterValues"


class LimitPurpose(str, Enum):
    """Which stack a charging limit goes on (the profile purposes of both versions)."""
    STATION_MAX = "ChargePointMaxProfile"   # the station as a whole (2.0.1 ChargingStationMaxProfile)
    TX_DEFAULT = "TxDefaultProfile"         # every session without its own limit: the fail-safe share
    TX = "TxProfile"                         # one running session


@dataclass(frozen=True)
class ChargingLimit:
    """A limit on what an EVSE may draw, in amps per phase (or watts when the
    station takes only those: `unit`). `duration_s` None: until replaced;
    `start` None: relative to when it applies (the session's or the
    profile's start)."""
    profile_id: int
    purpose: LimitPurpose
    limit: float
    stack_level: int
    evse: int = WHOLE_STATION
    phases: int | None = None
    transaction_id: int | None = None
    unit: str = "A"
    start: datetime | None = None
    duration_s: int | None = None


class Setting(str, Enum):
    """Station settings the edge reads or sets, by meaning; each adapter knows
    its version's name for them (1.6 configuration keys, 2.0.1 component variables)."""
    LOCAL_AUTH_LIST_ENABLED = "local_auth_list_enabled"
    LOCAL_AUTHORIZE_OFFLINE = "local_authorize_offline"
    AUTHORIZATION_CACHE_ENABLED = "authorization_cache_enabled"
    STOP_TRANSACTION_ON_INVALID_ID = "stop_transaction_on_invalid_id"
    SEND_LOCAL_LIST_MAX_LENGTH = "send_local_list_max_length"
    LOCAL_AUTH_LIST_MAX_LENGTH = "local_auth_list_max_length"
    CHARGING_RATE_UNITS = "charging_rate_units"
    MAX_STACK_LEVEL = "max_stack_level"
    SUPPORTED_FEATURES = "supported_features"
    # What a station samples during a transaction for load management (edge/dlm/sampling.py).
    METER_VALUES_INTERVAL = "meter_values_interval"        # seconds between samples
    METER_VALUES_MEASURANDS = "meter_values_measurands"    # the measurands, comma-separated
    METER_VALUES_MAX_LENGTH = "meter_values_max_length"    # how many measurands the list may hold
    # The public key of the station's calibrated meter, for its signed meter values (edge/ocpp/signed_values.py).
    METER_PUBLIC_KEY = "meter_public_key"


class ListUpdateStatus(str, Enum):
    """A station's answer to a local list update."""
    ACCEPTED = "Accepted"
    FAILED = "Failed"
    VERSION_MISMATCH = "VersionMismatch"
    NOT_SUPPORTED = "NotSupported"


# A meter sample as the journal keeps it and meter.values events carry it: connector (EVSE),
# transaction, time, measurand, phase, value, unit, context, location, in the site's units
# (kWh and kW already Wh and W). Signed readings stay with edge/ocpp/signed_values.py.
MeterSample = Sample
