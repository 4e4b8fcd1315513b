"""edgectl: run the edge, check a config, and operate a running edge.

Everything but `run`, `config check` and `password-hash` talks to the running
edge over its local HTTP API (address and token from the site config and its
state directory).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from edge.cdr import cli as cdr_cli
from edge.commission import cli as commission_cli
from edge.uplink import cli as uplink_cli
from edge import security_cli
from edge.web import cli as web_cli
from edge.config import ConfigError, config_warnings, load_config
from edge.ctl import (DEFAULT_CONFIG, DEFAULT_STATE_DIR, PHASES, ApiClient, CliError, cell, config_path_of, fields,
                      reach_config, show, state_dir_of, table)


def _command(result: dict[str, Any]) -> str:
    """A command's answer: one line, then what the charger said as a table (lists of objects as their own)."""
    lines = [f"{result.get('charger_id')} {result.get('action')}: {result.get('outcome')} "
             f"(actions log #{result.get('action_id')})"]
    response = result.get("response")
    if isinstance(response, dict) and response:
        lines.append(fields(response))
        for key, value in response.items():
            if isinstance(value, list) and value and isinstance(value[0], dict):
                lines.append(f"\n{key}:\n" + table(value, list(dict.fromkeys(k for v in value for k in v))))
    elif response not in (None, {}):
        lines.append(f"response: {cell(response)}")
    return "\n".join(lines)


def _known_charger(api: "ApiClient", charger_id: str) -> None:
    """An unknown charger is an error, not an empty answer."""
    try:
        api.request("GET", f"/chargers/{urllib.parse.quote(charger_id)}")
    except CliError as exc:
        if "HTTP 404" in str(exc):
            raise CliError(f"no charger {charger_id!r} at this site (`edgectl chargers` lists them)") from None
        raise


# -- subcommands ------------------------------------------------------------------

def cmd_run(args: argparse.Namespace) -> int:
    from edge.app import run_edge
    from edge.lifecycle import EXIT_CANNOT_START, StartupError, choose_config
    from edge.logs import setup_logging

    setup_logging(args.log_level, args.log_format)
    # An invalid site config: the last good one if there is one (loudly), else exit 2 (main()).
    start = choose_config(Path(config_path_of(args)), state_dir_of(args))
    try:
        asyncio.run(run_edge(start.config, config_text=start.text, config_fallback=start.fallback,
                             config_source=start.source))
    except StartupError as exc:
        print(f"edgectl run: cannot start: {exc}", file=sys.stderr)
        return EXIT_CANNOT_START
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    config = load_config(args.file)
    print(f"{args.file}: OK (site {config.site.id!r}, {len(config.chargers)} charger(s), "
          f"unknown chargers: {config.ocpp.unknown_chargers})")
    for warning in config_warnings(config):
        print(f"warning: {warning}")
    return 0


def cmd_config_status(args: argparse.Namespace) -> int:
    """What the running edge runs on; exit 1 while that is the last good config, not the site config."""
    status = ApiClient(reach_config(args)).request("GET", "/config")
    if args.json:
        print(json.dumps(status, indent=2))
    elif status["ok"]:
        print(f"site {status['site']!r}: running on the site config {status['file']}")
    else:
        print(f"site {status['site']!r}: RUNNING ON THE LAST GOOD CONFIG {status['last_good']} "
              f"(from {status['last_good_saved_at']}): the site config {status['file']} is invalid:")
        for problem in status["problems"]:
            print(f"  {problem}")
    if not args.json:
        for warning in status["warnings"]:
            print(f"warning: {warning}")
    return 0 if status["ok"] else 1


def cmd_password_hash(args: argparse.Namespace) -> int:
    from edge.ocpp.security import hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("charger password: ")
        if getpass.getpass("again: ") != password:
            raise CliError("the passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\n")
    if 0 < len(password) < 16:
        # The only place the edge sees a charger password in the clear: the config holds hashes.
        print(f"edgectl: warning: {len(password)} characters is short; OCPP's security whitepaper asks for "
              "16 to 40 (or let the edge set a long key: `edgectl chargers password ID --rotate`)", file=sys.stderr)
    try:
        print(hash_password(password))
    except ValueError as exc:
        raise CliError(str(exc)) from None
    return 0


def _refusal_line(refusal: dict[str, Any] | None) -> str | None:
    """'refused: offers only ocpp2.0.1 (at ...)' for the chargers list; None once it connected since."""
    if not refusal or refusal["connected_since"]:
        return None
    return f"refused: {refusal['reason']} (at {refusal['at']})"


def cmd_chargers(args: argparse.Namespace) -> int:
    api = ApiClient(reach_config(args))
    quote = urllib.parse.quote
    if args.action == "adopt":
        if not args.id:
            raise CliError("usage: edgectl chargers adopt CHARGER_ID")
        result = api.request("POST", f"/chargers/{quote(args.id)}/adopt")
        if args.json:
            print(json.dumps(result, indent=2))
            return 0
        print(f"{result['adopted']} adopted: it is part of the site from now on")
        if result.get("trigger"):
            print("asked it to boot again now: " + _command(result["trigger"]))
        return 0
    if args.action == "password":
        return _charger_password(api, args)
    refusals = {r["charger_id"]: r for r in api.request(
        "GET", "/refused-handshakes", query={"charger": args.id} if args.id else None)}
    if args.id:
        try:
            view = api.request("GET", f"/chargers/{quote(args.id)}")
        except CliError:
            if args.id not in refusals:
                raise
            # An id that never got past the handshake has no charger record, only its refusals.
            view = {"id": args.id, "registration": "refused at the handshake"}
        view["last_refusal"] = refusals.get(args.id)
        if view.get("known", False):
            view["credentials"] = api.request("GET", f"/chargers/{quote(args.id)}/password")
            view["credentials"].pop("last_refusal", None)
            view["credentials"].pop("charger_id", None)
        if args.json:
            print(json.dumps(view, indent=2))
            return 0
        print(fields(view, skip=("connectors", "active_transactions", "credentials", "last_refusal")))
        if view.get("connectors"):
            print("\nconnectors:\n" + table(view["connectors"], ["connector_id", "status", "error_code", "info",
                                                                  "at"]))
        if view.get("active_transactions"):
            print("\nrunning sessions:\n" + table(view["active_transactions"], [
                "id", "connector_id", "id_tag", "start_time", "meter_start"]))
        if view.get("credentials"):
            print("\ncredentials:\n" + fields(view["credentials"]))
        if line := _refusal_line(view.get("last_refusal")):
            print(f"\nlast {line}")
        return 0
    rows = api.request("GET", "/chargers")
    listed = {row["id"] for row in rows}
    # Chargers refused before they ever connected: the reason is all there is to see.
    rows += [{"id": charger_id, "registration": "refused"} for charger_id in refusals if charger_id not in listed]
    rows.sort(key=lambda row: row["id"])
    for row in rows:
        row["connectors"] = " ".join(f"{c['connector_id']}:{c['status']}" + (
            f"({c['error_code']})" if c["error_code"] != "NoError" else "") for c in row.get("connectors", []))
        row["last_refusal"] = _refusal_line(refusals.get(row["id"]))
        if row["registration"] == "never-connected" and row["last_refusal"]:
            row["registration"] = "refused"
    show(rows, args.json, ["id", "registration", "connection_status", "connected", "hardware_status",
                             "vendor", "model", "last_frame_at", "connectors", "last_refusal"])
    return 0


def _charger_password(api: ApiClient, args: argparse.Namespace) -> int:
    """The edge sets the key itself and never shows it: there is nothing for the operator to type or keep."""
    if not args.id:
        raise CliError("usage: edgectl chargers password CHARGER_ID [--rotate | --forget]")
    path = f"/chargers/{urllib.parse.quote(args.id)}/password"
    if not args.rotate and not args.forget:
        print(json.dumps(api.request("GET", path), indent=2))
        return 0
    body = {"rotate": True} if args.rotate else {"forget": True}
    result = api.request("POST", path, body=body | {"reason": args.reason or "key rotation"})
    if args.json:
        print(json.dumps(result, indent=2))
    elif args.forget:
        print(f"{args.id}: {result['keys_dropped']} key(s) the edge had set dropped; "
              f"now: {result['credentials']['state']}")
    else:
        command = result["command"]
        print(f"{args.id}: ChangeConfiguration(AuthorizationKey) {command['outcome']}: {command['response']} "
              f"(actions log #{command['action_id']})")
        print(f"{args.id}: {result['credentials']['state']}" if result["stored"]
              else f"{args.id}: the charger keeps its key; nothing changed")
    return 0 if result.get("stored", True) else 1


def cmd_health(args: argparse.Namespace) -> int:
    """Is the edge well: the journal commits, and which of its parts failed and were started again.
    Exit 1 while a part has failed since the start (for monitoring scripts)."""
    health = ApiClient(reach_config(args)).request("GET", "/health")
    if args.json:
        print(json.dumps(health, indent=2))
        return 0 if health["healthy"] and not health["failed_parts"] else 1
    print(f"site {health['site']!r}: {'healthy' if health['healthy'] else 'UNHEALTHY (journal stuck)'}, "
          f"{health['connected_chargers']} charger(s) connected, {health['active_transactions']} session(s) active")
    for part in health["failed_parts"]:
        print(f"  part {part['part']} failed {part['count']} time(s), last at {part['at']}: {part['error']} "
              f"({part['where']}); started again")
    return 0 if health["healthy"] and not health["failed_parts"] else 1


def cmd_sessions(args: argparse.Namespace) -> int:
    if args.action == "needs":
        # A session's departure and energy for load management's `scheduled` strategy.
        if args.tx is None or args.departure is None or args.energy is None:
            raise SystemExit("edgectl sessions needs TX --departure 17:30 --energy 20 (kWh)")
        result = ApiClient(reach_config(args)).request("POST", f"/sessions/{args.tx}/needs",
                                                body={"departure": args.departure, "energy_kwh": args.energy})
        print(json.dumps(result, indent=2) if args.json else
              f"session {result['transaction_id']}: leaves {result['departure']}, wants {result['energy_kwh']:g} kWh"
              f" (strategy {result['strategy']})")
        return 0
    rows = ApiClient(reach_config(args)).request("GET", "/sessions", query={
        "charger": args.charger, "state": args.state, "limit": args.limit})
    show(rows, args.json, ["id", "charger_id", "connector_id", "id_tag", "auth_status", "start_time",
                             "stop_time", "energy_wh", "stop_reason", "state"])
    return 0


def cmd_log(args: argparse.Namespace) -> int:
    import time

    api = ApiClient(reach_config(args))
    _known_charger(api, args.charger)
    path = f"/chargers/{urllib.parse.quote(args.charger)}/logs/{args.kind}"
    columns = {"communication": ["at", "direction", "frame"], "network": ["at", "status", "event", "detail"],
               "hardware": ["at", "connector_id", "status", "error_code", "info", "vendor_error_code"],
               "actions": ["at", "actor", "action", "request", "reason", "outcome", "response"],
               "data_transfers": ["at", "vendor_id", "message_id", "data"]}[args.kind]
    rows = list(reversed(api.request("GET", path, query={"limit": args.limit})))
    show(rows, args.json, columns)
    if not args.follow:
        return 0
    # --follow: what is new, once a second, until Ctrl-C (rows are numbered; newest first from the API).
    last = max((row.get("id", 0) for row in rows), default=0)
    try:
        while True:
            time.sleep(1.0)
            new = [r for r in reversed(api.request("GET", path, query={"limit": 500})) if r.get("id", 0) > last]
            for row in new:
                print(json.dumps(row) if args.json else "  ".join(cell(row.get(c)) for c in columns), flush=True)
                last = max(last, row.get("id", 0))
    except KeyboardInterrupt:
        return 0


def parse_params(pairs: list[str], raw_json: str | None) -> dict[str, Any]:
    """key=value pairs; values are read as JSON when they parse (1, true,
    {"a":1}) and as text otherwise."""
    params: dict[str, Any] = {}
    if raw_json:
        try:
            params = json.loads(raw_json)
        except ValueError as exc:
            raise CliError(f"--params is not JSON: {exc}") from None
        if not isinstance(params, dict):
            raise CliError("--params must be a JSON object")
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"parameter {pair!r} must look like key=value, e.g. connectorId=1")
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return params


def cmd_cmd(args: argparse.Namespace) -> int:
    params = parse_params(args.params, args.params_json)
    api = ApiClient(reach_config(args), timeout=120)
    _known_charger(api, args.charger)
    result = api.request(
        "POST", f"/chargers/{urllib.parse.quote(args.charger)}/commands/{urllib.parse.quote(args.action)}",
        body={"params": params, "reason": args.reason})
    print(json.dumps(result, indent=2) if args.json else _command(result))
    return 0 if result.get("outcome") in ("ok", "rejected") else 1


def cmd_tags(args: argparse.Namespace) -> int:
    api = ApiClient(reach_config(args))
    quote = urllib.parse.quote
    if args.action == "list":
        show(api.request("GET", "/tokens"), args.json,
               ["id_tag", "rfid", "user", "user_group", "status", "expiry", "card_number"])
        return 0
    if args.action == "learn":
        if not args.tag:
            rows = api.request("GET", "/tags/learn")
            show(rows, args.json, ["id_tag", "charger_id", "last_seen", "attempts"])
            if rows and not args.json:
                print("\nassign one with: edgectl tags learn TAG --group GROUP [--user NAME]")
            return 0
        args.action = "add"
    if args.action == "add":
        if not args.tag or not args.group:
            raise CliError("usage: edgectl tags add TAG --group GROUP [--user NAME] [--card-number N] [--expiry ISO]")
        entry = {"user_group": args.group, "user": args.user or ""}
        # Whole hex bytes (with or without separators) are an RFID card; anything else an opaque id tag.
        digits = "".join(c for c in args.tag if c not in ":-. ")
        key = "uid" if digits and len(digits) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in digits) \
            else "id_tag"
        entry[key] = args.tag
        if args.card_number:
            entry["card_number"] = args.card_number
        if args.expiry:
            entry["expiry"] = args.expiry
        result = api.request("POST", "/tokens", body=entry)
    elif args.action in ("block", "unblock"):
        result = api.request("POST", f"/tokens/{quote(args.tag or '')}/{args.action}")
    elif args.action == "remove":
        result = api.request("DELETE", f"/tokens/{quote(args.tag or '')}")
    print(f"authorization model is now version {result['version']}")
    return 0


def cmd_authorizations(args: argparse.Namespace) -> int:
    rows = ApiClient(reach_config(args)).request("GET", "/authorizations", query={
        "status": args.status, "charger": args.charger, "limit": args.limit})
    show(list(reversed(rows)), args.json,
           ["at", "charger_id", "connector_id", "id_tag", "user_group", "method", "status", "reason"])
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    api = ApiClient(reach_config(args))
    _known_charger(api, args.charger)
    result = api.request("POST", f"/chargers/{urllib.parse.quote(args.charger)}/remote-start",
                         body={"connector": args.connector, "token": args.token, "reason": args.reason})
    print(json.dumps(result, indent=2) if args.json else _command(result))
    return 0 if result.get("outcome") == "ok" else 1


def cmd_stop(args: argparse.Namespace) -> int:
    result = ApiClient(reach_config(args)).request("POST", f"/sessions/{args.session}/remote-stop",
                                            body={"reason": args.reason})
    print(json.dumps(result, indent=2) if args.json else _command(result))
    return 0 if result.get("outcome") == "ok" else 1


def cmd_reserve(args: argparse.Namespace) -> int:
    api = ApiClient(reach_config(args))
    charger = urllib.parse.quote(args.charger)
    if args.cancel is not None:
        result = api.request("DELETE", f"/chargers/{charger}/reservations/{args.cancel}")
    else:
        if args.connector is None or not args.token:
            raise CliError("usage: edgectl reserve CHARGER --connector N --token TAG [--minutes M] | --cancel ID")
        result = api.request("POST", f"/chargers/{charger}/reservations",
                             body={"connector": args.connector, "token": args.token, "minutes": args.minutes})
    print(json.dumps(result, indent=2))
    return 0 if result.get("outcome") == "ok" else 1


def cmd_dlm(args: argparse.Namespace) -> int:
    api = ApiClient(reach_config(args))
    if args.action == "series":
        rows = api.request("GET", "/dlm/series", query={"circuit": args.circuit, "since": args.since,
                                                        "limit": args.limit})
        if not args.json:   # the journal numbers phases 1-3 and keeps full floats: shown as L1-L3, to 0.1 A
            rows = [{**r, "phase": PHASES[r["phase"] - 1] if r.get("phase") in (1, 2, 3) else r.get("phase")}
                    | {k: cell(v) for k, v in r.items() if isinstance(v, float)} for r in rows]
        show(rows, args.json, ["at", "circuit", "phase", "metered_max", "metered_mean", "unmanaged", "reserved",
                                 "allocated", "limit_a", "failsafe"])
        return 0
    body = api.request("GET", "/dlm", query={"charger": args.charger})
    if args.json:
        print(json.dumps(body, indent=2))
        return 0
    if not body.get("enabled"):
        print(body.get("note", "load management is off"))
        return 0
    phases = [{"circuit": c["id"] + (" (FAILSAFE)" if c["failsafe"] else ""), "limit": c["limit"], **p}
              for c in body["circuits"] for p in c["phases"]]
    if not args.charger:
        print(f"strategy {body['strategy']}, margin {body['margin']:g} A per phase")
        print(table(phases, ["circuit", "phase", "limit", "metered", "unmanaged", "reserved", "allocated",
                              "headroom"]))
        for p in phases:
            if over := p.get("over"):   # measured over its limit (edge/dlm/overload.py)
                state = (f"ALERT: over for longer than the {over['window_s']:g} s reaction window" if over["alert"]
                         else "within the reaction window")
                print(f"OVER THE LIMIT circuit {p['circuit']} {p['phase']}: over {p['limit']:g} A since "
                      f"{over['since']} ({over['lasted_s']:g} s, peak {over['peak']:g} A; {state}): {over['done']}")
        for c in body["circuits"]:
            if cap := c.get("cap"):   # a limit the cloud sent down (docs/load-management.md)
                print(f"cloud cap on circuit {c['id']}: {cap['max_current']:g} A per phase "
                      f"until {cap['until'] or 'further notice'}: {cap['reason'] or 'no reason given'}")
        print()
    connectors = [{**c, "measured": cell(c.get("measured")), "limit": cell(c.get("limit"))}
                  for c in body["connectors"]]
    print(table(connectors, ["charger_id", "connector_id", "transaction_id", "limit", "held", "phases",
                              "measured", "reason"]))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgectl", description="EV charging site controller (edge)")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", help=f"site config (default $EDGE_CONFIG, else a demo running as this user "
                                        f"(edgectl says so), else {DEFAULT_CONFIG})")
        p.add_argument("--state-dir", help="where the journal and API token live (default $STATE_DIRECTORY; "
                                           f"{DEFAULT_STATE_DIR} with the default config; else the config's folder)")
        return p

    p = with_config(sub.add_parser("run", help="run the edge"))
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--log-format", default="logfmt", choices=["logfmt", "json"])
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("config", help="site config tools")
    config_sub = p.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="validate a site config without starting")
    check.add_argument("file")
    check.set_defaults(func=cmd_config_check)
    status = with_config(config_sub.add_parser("status", help="what the running edge runs on: the site config, "
                                                              "or the last good one (and why)"))
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_config_status)

    p = sub.add_parser("password-hash", help="hash a charger password for the config (reads stdin)")
    p.set_defaults(func=cmd_password_hash)

    p = with_config(sub.add_parser("chargers", help="list chargers, show one, adopt a pending one, or set a new key "
                                                    "on one (`password CP-1 --rotate`)"))
    p.add_argument("action", nargs="?", choices=["list", "show", "adopt", "password"], default="list")
    p.add_argument("id", nargs="?")
    p.add_argument("--rotate", action="store_true", help="password: make a new key and set it on the charger "
                                                         "(never shown; the edge keeps its hash)")
    p.add_argument("--forget", action="store_true", help="password: drop the keys the edge set; back to the "
                                                         "config's password_hash")
    p.add_argument("--reason", help="password: why (kept in the actions log)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_chargers)

    p = with_config(sub.add_parser("health", help="journal health and the parts that failed and were started again"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_health)

    p = with_config(sub.add_parser("sessions", help="list charging sessions (transactions), or set one's needs"))
    p.add_argument("action", nargs="?", default="list", choices=["list", "needs"])
    p.add_argument("tx", nargs="?", type=int, help="needs: the session (transaction id)")
    p.add_argument("--departure", help="needs: when the car leaves, 17:30 or an ISO time")
    p.add_argument("--energy", type=float, help="needs: kWh it wants")
    p.add_argument("--charger")
    p.add_argument("--state", choices=["active", "completed"])
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_sessions)

    p = with_config(sub.add_parser("log", help="a charger's logs (communication by default)"))
    p.add_argument("charger")
    p.add_argument("--kind", default="communication",
                   choices=["communication", "network", "hardware", "actions", "data_transfers"])
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--follow", "-f", action="store_true", help="then show what comes, until Ctrl-C")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_log)

    p = with_config(sub.add_parser("cmd", help="send a central-system command, e.g. "
                                               "`edgectl cmd CP-1 Reset type=Soft --reason 'stuck'`"))
    p.add_argument("charger")
    p.add_argument("action", help="OCPP action, e.g. Reset, RemoteStartTransaction, TriggerMessage")
    p.add_argument("params", nargs="*", help="key=value in OCPP's camelCase, e.g. connectorId=1")
    p.add_argument("--params", dest="params_json", help="all parameters as one JSON object")
    p.add_argument("--reason", required=True, help="why (kept in the actions log)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_cmd)

    p = with_config(sub.add_parser("tags", help="id tokens: list, add, block, unblock, remove, learn"))
    p.add_argument("action", nargs="?", default="list", choices=["list", "add", "block", "unblock", "remove", "learn"])
    p.add_argument("tag", nargs="?", help="RFID UID (any spelling) or id tag")
    p.add_argument("--group", help="user group (add, learn)")
    p.add_argument("--user", help="who it belongs to")
    p.add_argument("--card-number")
    p.add_argument("--expiry", help="ISO time with offset, e.g. 2027-01-31T23:59:59+01:00")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_tags)

    p = with_config(sub.add_parser("authorizations", help="authorization records (newest last)"))
    p.add_argument("--status", choices=["Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx"])
    p.add_argument("--charger")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_authorizations)

    p = with_config(sub.add_parser("start", help="remote start for a token on an EVSE, if it may charge there"))
    p.add_argument("charger")
    p.add_argument("connector", type=int)
    p.add_argument("token")
    p.add_argument("--reason", default="remote start", help="why (kept in the actions log)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_start)

    p = with_config(sub.add_parser("stop", help="remote stop of a running session"))
    p.add_argument("session", type=int)
    p.add_argument("--reason", default="remote stop", help="why (kept in the actions log)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_stop)

    p = with_config(sub.add_parser("reserve", help="reserve an EVSE for a token (ReserveNow), or --cancel ID"))
    p.add_argument("charger")
    p.add_argument("--connector", type=int)
    p.add_argument("--token")
    p.add_argument("--minutes", type=int, default=15)
    p.add_argument("--cancel", type=int, metavar="RESERVATION_ID")
    p.set_defaults(func=cmd_reserve)

    cdr_cli.register(sub, with_config)
    commission_cli.register(sub, with_config)
    uplink_cli.register(sub, with_config)
    security_cli.register(sub, with_config)
    web_cli.register(sub, with_config)

    p = with_config(sub.add_parser("dlm", help="load management: circuits against their limits, each car's limit "
                                               "and why; or the per-phase series"))
    p.add_argument("action", nargs="?", choices=["status", "series"], default="status")
    p.add_argument("--charger", help="only this charger's connectors (status)")
    p.add_argument("--circuit", help="only this circuit (series)")
    p.add_argument("--since", help="ISO 8601 time (series)")
    p.add_argument("--limit", type=int, default=500)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_dlm)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        print(f"{len(exc.problems)} problem(s); nothing was started.", file=sys.stderr)
        return 2
    except CliError as exc:
        print(f"edgectl: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
