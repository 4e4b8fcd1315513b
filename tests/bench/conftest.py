"""Shared bench runs: one small `python -m bench ocpp_load` with both OCPP versions (the default), checked by
test_ocpp_load.py for 1.6 against both servers and by test_ocpp_load_v201.py for the two versions in one run.
The run is the same code either way; running it once saves the suite half a minute."""

from __future__ import annotations

import pytest

# Small enough for the suite, and every phase still runs: two MeterValues per charger in the steady phase,
# a second of back-to-back messages, half a second of quiet after the edge configured its chargers.
SMALL_LOAD = ("--chargers", "3", "--duration", "1", "--meter-interval", "0.5", "--throughput-duration", "1",
              "--settle", "0.5")


@pytest.fixture(scope="session")
def both_versions_report() -> dict:
    from tests.bench.test_ocpp_load import run_bench

    return run_bench(*SMALL_LOAD, "--json")
