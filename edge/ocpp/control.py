"""The core's one StationControl for a site of 1.6 and 2.0.1 stations: each
request goes to the adapter of the protocol the station is connected with
(the subprotocol its handshake settled on, edge/ocpp/protocols.py). A station
not connected now is asked through the adapter of the protocol it last
connected with (1.6 for one not seen since the edge started), so the actions
log names the message it would have been sent. What the site's code asks of it,
`speaks_201(control, charger_id)`, is in edge/ocpp/site.py: the sessions' services ask it, and this
module imports the sessions.
"""

from __future__ import annotations

import inspect
from typing import Any, Mapping

from edge.ocpp.protocols import OCPP16, OCPP201, SESSIONS
from edge.stations.control import StationControl

# A live session's class -> the subprotocol it serves.
_PROTOCOL_OF = {cls: protocol for protocol, cls in SESSIONS.items()}


class ControlByProtocol:
    """StationControl (edge/stations/control.py) that hands each request to `adapters[protocol]`."""

    def __init__(self, sessions: Mapping[str, Any], adapters: Mapping[str, StationControl],
                 default: str = OCPP16):
        self._sessions = sessions      # charger id -> its live session (owned by the OCPP server)
        self.adapters = dict(adapters)
        self._default = default
        self._last: dict[str, str] = {}   # charger id -> the protocol it last connected with

    def protocol(self, charger_id: str) -> str:
        session = self._sessions.get(charger_id)
        if session is not None:
            self._last[charger_id] = _PROTOCOL_OF.get(type(session), self._default)
        return self._last.get(charger_id, self._default)

    def speaks_201(self, charger_id: str) -> bool:
        """Whether the station is (or was last) connected with OCPP 2.0.1: its requests are worded so."""
        return self.protocol(charger_id) == OCPP201

    def adapter(self, charger_id: str) -> StationControl:
        return self.adapters[self.protocol(charger_id)]

    def is_connected(self, charger_id: str) -> bool:
        return self.adapter(charger_id).is_connected(charger_id)

    def is_ready(self, charger_id: str) -> bool:
        return self.adapter(charger_id).is_ready(charger_id)


def _forward(name: str) -> Any:
    async def forward(self: ControlByProtocol, charger_id: str, *args: Any, **kwargs: Any) -> Any:
        return await getattr(self.adapter(charger_id), name)(charger_id, *args, **kwargs)
    forward.__name__ = forward.__qualname__ = name
    forward.__doc__ = getattr(StationControl, name).__doc__
    return forward


# Every request of StationControl goes to the station's adapter as it was asked.
for _name, _member in vars(StationControl).items():
    if inspect.iscoroutinefunction(_member):
        setattr(ControlByProtocol, _name, _forward(_name))
