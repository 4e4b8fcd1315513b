"""Failure domains: work repeated per record or per tick (a session checked every
few seconds, a telemetry sample every second) that fails must be loud, but not
once per repetition. `Failing` logs a key's failure with its traceback the first
time, stays quiet while it keeps failing the same way, and speaks again when the
error changes or after it recovered."""

from __future__ import annotations

import logging
from typing import Hashable, Iterable


def describe(exc: BaseException, limit: int = 500) -> str:
    """`Type: message`, cut to `limit` characters (a message may quote what a charger sent)."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[:limit - 20] + f" ... ({len(text)} chars)"


class Failing:
    def __init__(self, log: logging.Logger):
        self._log = log
        self.errors: dict[Hashable, str] = {}       # key -> the error it last failed with

    def failed(self, key: Hashable, exc: BaseException, message: str, *args: object) -> bool:
        """Log `message % args` with the error (loud the first time); True when it was logged."""
        error = describe(exc)
        if self.errors.get(key) == error:
            return False
        self.errors[key] = error
        self._log.error(message + ": %s", *args, error, exc_info=exc)
        return True

    def ok(self, key: Hashable) -> None:
        self.errors.pop(key, None)

    def keep_only(self, keys: Iterable[Hashable]) -> None:
        """Forget the keys that are gone (sessions that ended)."""
        for gone in self.errors.keys() - set(keys):
            del self.errors[gone]
