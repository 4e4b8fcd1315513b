"""The OCPP versions the edge serves, in the order it prefers them when a station
offers several: the subprotocol a station's handshake settles on picks the
handler session for its connection: 1.6 (preferred while the site's sessions,
load management and CDRs are served in 1.6 only) and 2.0.1 (issue 19: what it
does so far, docs/ocpp-201.md).
"""

from __future__ import annotations

from edge.ocpp.v16 import SUBPROTOCOL as OCPP16
from edge.ocpp.v16.session import ChargerSession as Ocpp16Session
from edge.ocpp.v201 import SUBPROTOCOL as OCPP201
from edge.ocpp.v201.session import Ocpp201Session

# subprotocol -> the session class serving a connection that chose it (first: preferred).
SESSIONS: dict[str, type[Ocpp16Session]] = {OCPP16: Ocpp16Session, OCPP201: Ocpp201Session}
