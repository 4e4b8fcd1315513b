"""edgectl cdrs: list charge records, show one, export them as CSV (through the local API)."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.parse
from pathlib import Path
from typing import Callable

from edge.cdr.api import STATUSES


def register(sub: argparse._SubParsersAction, with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]
             ) -> None:
    p = with_config(sub.add_parser("cdrs", help="charge records: list, show ID, export (CSV)"))
    p.add_argument("action", nargs="?", default="list", choices=["list", "show", "export"])
    p.add_argument("id", nargs="?", help="record id (show)")
    p.add_argument("--from", dest="since", help="first start day or time, e.g. 2026-03-01 (site time zone)")
    p.add_argument("--to", dest="until", help="last start day (included) or time (excluded)")
    p.add_argument("--charger")
    p.add_argument("--user-group")
    p.add_argument("--status", choices=STATUSES)
    p.add_argument("--limit", type=int, default=50, help="list: the latest this many (shown newest last)")
    p.add_argument("--output", "-o", help="export: write the CSV to this file instead of stdout")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_cdrs)


def cmd_cdrs(args: argparse.Namespace) -> int:
    from edge import cli   # edge.cli registers this module: import it late

    api = cli.ApiClient(cli._load(args))
    if args.action == "show":
        if not args.id:
            raise cli.CliError("usage: edgectl cdrs show ID")
        print(json.dumps(api.request("GET", f"/cdrs/{urllib.parse.quote(args.id)}"), indent=2))
        return 0
    query = {"from": args.since, "to": args.until, "charger": args.charger, "user_group": args.user_group,
             "status": args.status}
    if args.action == "export":
        text = api.request("GET", "/cdrs/export", query=query, raw=True)
        if args.output:
            Path(args.output).write_text(text, encoding="utf-8")
            print(f"{text.count(chr(10)) - 1} record(s) written to {args.output}", file=sys.stderr)
        else:
            sys.stdout.write(text)
        return 0
    rows = api.request("GET", "/cdrs", query={**query, "limit": args.limit, "newest": 1})[::-1]
    cli._print(rows, args.json, ["id", "charger_id", "connector_id", "transaction_id", "id_tag", "start_time",
                                 "energy_kwh", "price_gross", "currency", "tariff", "status"])
    return 0
