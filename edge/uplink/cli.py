"""edgectl uplink: the link to the cloud, its backlog and the downlink's outcomes."""

from __future__ import annotations

import argparse
import json
from typing import Any, Callable

from contract.v1 import STREAMS
from edge import ctl


def register(sub: argparse._SubParsersAction, with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]
             ) -> None:
    p = with_config(sub.add_parser("uplink", help="the link to the cloud: connected, backlog per stream, "
                                                  "last delivery, configuration received"))
    p.add_argument("action", nargs="?", choices=("status", "release"), default="status",
                   help="status (the default), or release: messages the cloud refused and that were set aside "
                        "go again")
    p.add_argument("--stream", choices=STREAMS, help="release: only this stream's")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_uplink)


def cmd_uplink(args: argparse.Namespace) -> int:
    client = ctl.ApiClient(ctl.reach_config(args))
    if args.action == "release":
        result = client.request("POST", "/uplink/release", {"stream": args.stream} if args.stream else {})
        print(json.dumps(result) if args.json else f"{result['released']} message(s) set aside go again")
        return 0
    body = client.request("GET", "/uplink")
    if args.json:
        print(json.dumps(body, indent=2))
        return 0
    print(render(body))
    return 0


def render(body: dict[str, Any]) -> str:
    if not body.get("enabled"):
        return body.get("note", "the uplink is off")
    state = f"connected since {body['connected_since']}" if body["connected"] else "NOT connected"
    lines = [f"broker {body['broker']} (MQTT {body['protocol']}{', TLS' if body['tls'] else ''}, "
             f"client {body['client_id']}): {state}"]
    if body.get("last_error"):
        lines.append(f"last error: {body['last_error']}")
    if body.get("over_budget"):
        lines.append(f"OVER the disk budget ({body['disk_budget_bytes']} bytes) with CDRs, session events and "
                     "certificate messages only: they are kept")
    rows = [{"stream": name, **s} for name, s in body["streams"].items()]
    # delivered: confirmed stored by the cloud (its receipt); unconfirmed: sent, receipt awaited.
    lines += ["", ctl.table(rows, ["stream", "backlog", "oldest_at", "last_seq", "unconfirmed", "delivered",
                                    "last_delivered_at", "dropped", "held", "refused"])]
    if body.get("held"):
        lines += ["", "set aside (the cloud refused them; `edgectl uplink release` sends them again):",
                  ctl.table(body["held"], ["stream", "seq", "id", "type", "at", "why"])]
    versions = [{"kind": kind, **v} for kind, v in body["downlink"]["versions"].items()]
    if versions:
        lines += ["", ctl.table(versions, ["kind", "version", "mode", "applied_at", "in_force", "message_id"])]
    recent = body["downlink"]["recent"][:10][::-1]
    if recent:
        lines += ["", ctl.table(recent, ["at", "kind", "message_id", "version", "status", "error"])]
    return "\n".join(lines)
