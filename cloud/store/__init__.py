"""Every SQL statement of the cloud lives in this package: plain functions
taking a `cloud.db.Connection` (and running inside the transaction that
`Database.read` / `Database.write` opened). Nothing else talks SQL.

  ingest.py   up-batches, site state, acks, rejection counts (the subscriber)
  pushes.py   configuration documents and commands going down, and their acks
  views.py    what the REST API reads
  admin.py    operators, API tokens, which operator owns which site
"""
