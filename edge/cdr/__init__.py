"""edge.cdr: charge detail records.

Pure: tariffs and tariff groups (tariffs.py), the energy curve (energy.py),
pricing (pricing.py), plausibility (plausibility.py), the record (record.py),
CSV (export.py). Shell: service.py keeps the records, watch.py ends the
sessions the edge must end itself. Nothing is imported here, so the config
loader can import edge.cdr.config without pulling in the shell.
"""
