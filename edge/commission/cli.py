"""`edgectl commission [--detect-rotation] [--json]`: the commissioning report of the running edge.

Exit 0 when nothing failed, 1 when a check failed (warnings do not fail), 2 for an invalid config.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, Callable

from edge import ctl

MARK = {"pass": "ok  ", "warn": "WARN", "fail": "FAIL", "skip": "skip"}


def register(sub: argparse._SubParsersAction,
             with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]) -> None:
    p = with_config(sub.add_parser("commission", help="check the site before leaving it: config, meter, chargers, "
                                                      "uplink; --detect-rotation steps each charging car to see "
                                                      "its phases"))
    p.add_argument("--detect-rotation", action="store_true",
                   help="with a car charging on each charger (1-phase cars show the rotation): step one charger at "
                        "a time from 0 A to what the circuit has free and see which grid phases move")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_commission)


def report_text(report: dict[str, Any]) -> str:
    lines = []
    for check in report["checks"]:
        lines.append(f"{MARK.get(check['status'], check['status'])}  {check['name']}: {check['detail']}")
        if check["fix"] and check["status"] in ("fail", "warn"):
            lines += [f"        {line}" for line in check["fix"].splitlines()]
    fixes = [r for r in report["rotation"] if r.get("config_lines")]
    if fixes:
        lines += ["", "corrected config lines (put them in the charger's [[chargers]] table of site.toml):"]
        for r in fixes:
            lines += [f"  {line}" for line in r["config_lines"]] + [""]
    failed = sum(c["status"] == "fail" for c in report["checks"])
    warned = sum(c["status"] == "warn" for c in report["checks"])
    lines.append(f"{'FAILED' if failed else 'OK'}: {failed} failure(s), {warned} warning(s)")
    return "\n".join(lines)


def cmd_commission(args: argparse.Namespace) -> int:
    # The rotation detection waits for cars to follow each step: allow for many chargers.
    report = ctl.ApiClient(ctl.reach_config(args), timeout=1800).request(
        "POST", "/commission", body={"detect_rotation": args.detect_rotation})
    print(json.dumps(report, indent=2) if args.json else report_text(report))
    return 0 if report["ok"] else 1
