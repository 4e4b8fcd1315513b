"""The OCPP 2.0.1 protocol adapter (issue 19): what a 2.0.1 charging station
sends, read into the site's domain words (edge/stations/model.py), and the
answers worded back.

`session.Ocpp201Session` serves a connection that chose the `ocpp2.0.1`
subprotocol (edge/ocpp/protocols.py); `translate` holds the pure mappings
(boot info, connector statuses, the boundary's 2.0.1 bounds); `control.V201Control` words
the core's requests as 2.0.1 messages. What works and
what does not yet: docs/ocpp-201.md.
"""

SUBPROTOCOL = "ocpp2.0.1"
