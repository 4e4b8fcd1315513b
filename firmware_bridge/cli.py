"""firmware-bridge: run one bridge, or check its config.

    firmware-bridge --config /etc/sitecontroller/firmware-bridge/ttyUSB0.toml
    firmware-bridge --config FILE --check      # validate and print, then exit
    python -m firmware_bridge --config FILE
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys

from edge.logs import setup_logging
from firmware_bridge.bridge import run_bridge
from firmware_bridge.config import ConfigError, load_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="firmware-bridge",
                                     description="Present a serial wallbox to the edge as an OCPP 1.6J charge point.")
    parser.add_argument("--config", required=True, help="the bridge's TOML file")
    parser.add_argument("--state-dir", help="where the message queue lives (default: state_dir in the file, "
                                            "else $STATE_DIRECTORY, else the file's folder)")
    parser.add_argument("--check", action="store_true", help="validate the config, print it and exit")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log-format", default="logfmt", choices=["logfmt", "json"])
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config, state_dir=args.state_dir)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.check:
        shown = config.model_dump()
        if shown["edge"]["password"]:
            shown["edge"]["password"] = "(set)"
        for section, values in shown.items():
            print(f"{section} = {values}")
        return 0
    setup_logging(args.log_level, args.log_format)
    try:
        asyncio.run(run_bridge(config))
    except (OSError, sqlite3.Error) as exc:  # the state directory cannot be written, most likely
        print(f"firmware-bridge: cannot start: {exc} (state directory {config.state_dir})", file=sys.stderr)
        return 1
    return 0
