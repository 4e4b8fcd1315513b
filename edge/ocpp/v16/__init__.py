"""The OCPP 1.6J protocol adapter: what turns the site's domain words
(edge/stations/model.py) into 1.6 messages and 1.6 messages into them.

`control.V16Control` sends (the central system's requests); `translate`
reads what a 1.6 station sends (meter values, statuses) into domain terms.
"""

SUBPROTOCOL = "ocpp1.6"
