"""What every protocol's session of one station connection shares, whatever its OCPP version.

Each version's handler session (edge/ocpp/v16/session.py; 2.0.1's next) offers
`request(payload)` for the edge's own calls, `ready` and `closed`, and raises
`ChargerGone` when the connection closes before the station answered.
"""

from __future__ import annotations


class ChargerGone(ConnectionError):
    """The connection to the charger closed before it answered."""
