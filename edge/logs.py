"""Structured logs to stdout, one event per line, journald-friendly.

`logfmt`-style by default (readable in `journalctl -u edge -f`); JSON lines
with --log-format json for log shippers. No timestamps in logfmt mode when
running under systemd: journald stamps every line itself.
"""

from __future__ import annotations

import json
import logging
import os
import sys

# journald maps these "<N>" prefixes to priorities when SyslogLevelPrefix is on (the default).
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


class LogfmtFormatter(logging.Formatter):
    def __init__(self, with_time: bool, with_priority: bool):
        super().__init__()
        self.with_time, self.with_priority = with_time, with_priority

    def format(self, record: logging.LogRecord) -> str:
        parts = []
        if self.with_time:
            parts.append(self.formatTime(record, "%Y-%m-%dT%H:%M:%S"))
        parts.append(f"level={record.levelname.lower()} logger={record.name}")
        parts.append(record.getMessage())
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if self.with_priority:
            line = f"<{_PRIORITY.get(record.levelno, 6)}>{line}"
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"), "level": record.levelname.lower(),
                "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data)


def setup_logging(level: str = "info", fmt: str = "logfmt") -> None:
    under_journald = bool(os.environ.get("JOURNAL_STREAM"))
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter() if fmt == "json"
                         else LogfmtFormatter(with_time=not under_journald, with_priority=under_journald))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The ocpp library logs every frame at INFO; we keep frames in the
    # communication log instead of flooding the system journal.
    logging.getLogger("ocpp").setLevel(logging.WARNING)
    logging.getLogger("websockets").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # pymodbus logs every meter timeout as an error with a frame dump; the
    # meter poller reports problems itself, rate-limited.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
