"""The firmware bridge: one serial wallbox presented to the edge as an OCPP 1.6J charge point.

One process per wallbox (systemd/firmware-bridge@.service). It drives the
wallbox's controller board over its serial protocol (a driver in
`firmware_bridge.drivers`) and speaks OCPP to the edge like any charger, so
authorization, load management, charge records and cloud sync need nothing
special for it. Installers: docs/firmware-bridge.md.
"""
