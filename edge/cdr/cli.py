"""edgectl cdrs: list charge records, show one, export them as CSV; list the quarantined
(transactions whose record could not be made) and retry them (through the local API).

A corrected transaction has several records (revisions): the list and the export show the
latest of each, marked when it revises an earlier one; `show ID` gives the history."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.parse
from pathlib import Path
from typing import Callable

from edge.cdr.plausibility import STATUSES
from edge import ctl


def register(sub: argparse._SubParsersAction, with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]
             ) -> None:
    p = with_config(sub.add_parser("cdrs", help="charge records: list, show ID, export (CSV), quarantined, "
                                                "retry [TRANSACTION_ID]"))
    p.add_argument("action", nargs="?", default="list", choices=["list", "show", "export", "quarantined", "retry"])
    p.add_argument("id", nargs="?", help="record id (show); transaction id (retry; without it every quarantined one)")
    p.add_argument("--from", dest="since", help="first start day or time, e.g. 2026-03-01 (site time zone)")
    p.add_argument("--to", dest="until", help="last start day (included) or time (excluded)")
    p.add_argument("--charger")
    p.add_argument("--user-group")
    p.add_argument("--status", choices=STATUSES)
    p.add_argument("--limit", type=int, default=50, help="list: the latest this many (shown newest last)")
    p.add_argument("--output", "-o", help="export: write the CSV to this file instead of stdout")
    p.add_argument("--items", action="store_true", help="export: one row per price component (invoice lines)")
    p.add_argument("--all-revisions", action="store_true",
                   help="list, export: every revision of a corrected record, not only the latest")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_cdrs)


def cmd_cdrs(args: argparse.Namespace) -> int:
    api = ctl.ApiClient(ctl.reach_config(args))
    if args.action == "show":
        if not args.id:
            raise ctl.CliError("usage: edgectl cdrs show ID")
        record = api.request("GET", f"/cdrs/{urllib.parse.quote(args.id)}")
        history = api.request("GET", f"/cdrs/{urllib.parse.quote(args.id)}/revisions")
        print(json.dumps({**record, "revisions": [{k: r.get(k) for k in HISTORY} for r in history]}, indent=2))
        return 0
    if args.action == "quarantined":
        ctl.show(api.request("GET", "/cdrs/quarantine"), args.json, QUARANTINE_COLUMNS)
        return 0
    if args.action == "retry":
        return _retry(api, args)
    query = {"from": args.since, "to": args.until, "charger": args.charger, "user_group": args.user_group,
             "status": args.status, "revisions": "all" if args.all_revisions else None}
    if args.action == "export":
        text = api.request("GET", "/cdrs/export", query={**query, "items": 1 if args.items else None}, raw=True)
        if args.output:
            Path(args.output).write_text(text, encoding="utf-8")
            print(f"{text.count(chr(10)) - 1} record(s) written to {args.output}", file=sys.stderr)
        else:
            sys.stdout.write(text)
        return 0
    rows = api.request("GET", "/cdrs", query={**query, "limit": args.limit, "newest": 1})[::-1]
    if not args.json:
        rows = [{**row, "revision": revision_mark(row)} for row in rows]
    ctl.show(rows, args.json, ["id", "charger_id", "connector_id", "transaction_id", "id_tag", "start_time",
                                 "energy_kwh", "price_gross", "currency", "tariff", "status", "revision"])
    revised = sum(1 for row in rows if (row.get("supersedes") and not row.get("superseded_by")))
    if revised and not args.json:
        print(f"{revised} record(s) revise an earlier one (the charger's data came after the edge closed the "
              "session); edgectl cdrs show ID shows the history", file=sys.stderr)
    quarantined = api.request("GET", "/cdrs/quarantine")
    if quarantined:
        print(f"{len(quarantined)} transaction(s) without a record: quarantined, see edgectl cdrs quarantined",
              file=sys.stderr)
    return 0


QUARANTINE_COLUMNS = ["transaction_id", "charger_id", "connector_id", "start_time", "stop_time", "attempts",
                      "last_at", "error", "why"]
# What `show` lists of each revision.
HISTORY = ["revision", "id", "created_at", "energy_kwh", "price_gross", "currency", "status", "revision_reason",
           "supersedes", "superseded_by"]


def revision_mark(row: dict) -> str:
    """1; '2 revised' for the latest of a corrected transaction; '1 superseded' for one replaced."""
    number = row.get("revision") or 1
    if row.get("superseded_by"):
        return f"{number} superseded"
    return f"{number} revised" if row.get("supersedes") else str(number)


def _retry(api, args: argparse.Namespace) -> int:
    body = {}
    if args.id:
        try:
            body["transaction_id"] = int(args.id)
        except ValueError:
            raise ctl.CliError(f"usage: edgectl cdrs retry [TRANSACTION_ID] ({args.id!r} is not a number)") from None
    outcomes = api.request("POST", "/cdrs/quarantine/retry", body)
    if args.json:
        print(json.dumps(outcomes, indent=2))
    for outcome in [] if args.json else outcomes:
        if outcome["made"]:
            print(f"transaction {outcome['transaction_id']}: record {outcome['cdr_id'] or ''} made")
        else:
            print(f"transaction {outcome['transaction_id']}: still quarantined: {outcome['error']}")
    if not outcomes and not args.json:
        print("nothing in quarantine")
    return 0 if all(o["made"] for o in outcomes) else 1
