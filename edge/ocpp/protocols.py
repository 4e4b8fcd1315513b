"""The OCPP versions the edge serves, in the order it prefers them when a station
offers several: the subprotocol a station's handshake settles on picks the
handler session for its connection. Only 1.6 is registered so far; 2.0.1's
session goes here beside it (issue 19).
"""

from __future__ import annotations

from edge.ocpp.v16 import SUBPROTOCOL as OCPP16
from edge.ocpp.v16.session import ChargerSession as Ocpp16Session

# subprotocol -> the session class serving a connection that chose it (first: preferred).
SESSIONS: dict[str, type[Ocpp16Session]] = {OCPP16: Ocpp16Session}
