"""Commissioning: the checks an installer runs before leaving a site (`edgectl commission`).

Pure decisions in `checks.py` (meter readings, charger facts) and `rotation.py`
(which grid phases moved -> which wiring); `runner.py` gathers the facts from
the running edge and steps chargers for the rotation detection.
"""
