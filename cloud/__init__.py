"""The cloud service: receives what the sites' edges send over MQTT, stores it
once, shows it to operators over a REST API, and pushes configuration and
commands down to the sites.

  mqtt.py        the MQTT connection (paho's thread; explicit hand-over to asyncio)
  ingest.py      validate with contract.v1, store idempotently, then acknowledge
  downlink.py    configuration documents (versioned, retained) and commands (expiring)
  db/ store/     the database (SQLite or PostgreSQL) and every SQL statement
  projections.py what the API shows, derived from messages (pure)
  api/           the REST API and its OpenAPI document
  service.py     wiring;  cli.py: `python -m cloud`
"""
