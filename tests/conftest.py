"""Fixtures for every test of the suite."""

from __future__ import annotations

import logging
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def logging_as_it_was() -> Any:
    """`edgectl run` or `cloud serve` called in-process (main(["run", ...])) sets the process's logging up
    as a real start does: the root logger's only handler writes to the sys.stdout of that moment (the test's capture, closed
    after it) at INFO. Left so, every later test's log line fails on that closed file and says so on the
    sys.stderr of that test ("--- Logging error ---"), which tests reading their stderr see. Put back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: getattr(logger, "level", logging.NOTSET)       # a placeholder has no level of its own
              for name, logger in logging.root.manager.loggerDict.items()}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, was in levels.items():
        logger = logging.root.manager.loggerDict.get(name)
        if isinstance(logger, logging.Logger) and logger.level != was:
            logger.setLevel(was)
