"""`python -m cloud` (also installed as `cloud`): run the service, and manage
operators, their API tokens and their sites in the database DATABASE_URL names.

    cloud serve
    cloud operators add acme          cloud operators list
    cloud tokens add acme --label ci  cloud tokens list [acme]    cloud tokens revoke sct_AbCdEfGh
    cloud sites assign site-17 acme   cloud sites unassign site-17  cloud sites list
    cloud brokers                     cloud brokers which site-17 [site-18 ...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import Any, Callable

from cloud.brokers import broker_of
from cloud.config import ConfigError, Settings, load_settings
from cloud.db import Database
from cloud.db.migrations import migrate
from cloud.service import CloudService, StartupError, open_database
from cloud.store import admin
from cloud.tokens import new_token, token_hash, token_prefix
from contract.v1 import SITE_ID
from edge.clock import Clock
from edge.logs import setup_logging


# As the edge's (edge/lifecycle.py); systemd restarts the service, which tries the database again.
EXIT_CANNOT_START = 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cloud", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="overrides DATABASE_URL (default sqlite:///cloud.db)")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the subscriber, the downlink and the REST API")
    serve.add_argument("--http-host", help="overrides CLOUD_HTTP_HOST")
    serve.add_argument("--http-port", type=int, help="overrides CLOUD_HTTP_PORT")
    commands.add_parser("migrate", help="create or upgrade the database schema, then exit")

    operators = commands.add_parser("operators", help="cloud operators (each sees only its own sites)")
    ops = operators.add_subparsers(dest="action", required=True)
    ops.add_parser("add").add_argument("name")
    ops.add_parser("remove").add_argument("name")
    ops.add_parser("list")

    tokens = commands.add_parser("tokens", help="API tokens (bearer); the token is shown once, only its hash is kept")
    tks = tokens.add_subparsers(dest="action", required=True)
    add = tks.add_parser("add")
    add.add_argument("operator")
    add.add_argument("--label", default="", help="what the token is for (shown in listings)")
    tks.add_parser("list").add_argument("operator", nargs="?")
    tks.add_parser("revoke").add_argument("prefix", help="the token's first characters, as `tokens list` shows")

    sites = commands.add_parser("sites", help="which operator sees which site")
    sts = sites.add_subparsers(dest="action", required=True)
    assign = sts.add_parser("assign")
    assign.add_argument("site")
    assign.add_argument("operator")
    sts.add_parser("unassign").add_argument("site")
    sts.add_parser("list")

    brokers = commands.add_parser("brokers", help="the brokers (CLOUD_MQTT_BROKERS) and which site is on which")
    brk = brokers.add_subparsers(dest="action")
    brk.add_parser("which", help="the broker each site is on (CLOUD_MQTT_SITE_BROKERS, else a hash of its id): "
                                 "its [uplink] host").add_argument("sites", nargs="+")
    return parser


def _brokers_command(args: argparse.Namespace, settings: Settings) -> int:
    """No database needed: the map is the settings'."""
    mqtt = settings.mqtt
    if args.action == "which":
        bad = [site for site in args.sites if not SITE_ID.match(site)]
        if bad:
            print(f"error: {', '.join(map(repr, bad))}: not a site id (letters, digits, . _ - only, at most 64)",
                  file=sys.stderr)
            return 2
        shards = {b.name: b for b in mqtt.shards}
        _table([{"site": site, "broker": (b := shards[broker_of(site, mqtt)]).name, "address": f"{b.host}:{b.port}"}
                for site in args.sites], ["site", "broker", "address"])
    else:
        _table([{"broker": b.name, "address": f"{b.host}:{b.port}",
                 "sites": ", ".join([p for p, name in mqtt.site_brokers if name == b.name] + ["others by hash"])}
                for b in mqtt.shards], ["broker", "address", "sites"])
    return 0


def _table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    if not rows:
        print("(none)")
        return
    widths = [max(len(c), *(len(str(r.get(c) if r.get(c) is not None else "-")) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for r in rows:
        print("  ".join(str(r.get(c) if r.get(c) is not None else "-").ljust(w) for c, w in zip(columns, widths)))


async def _admin(settings: Settings, fn: Callable[..., Any], *args: Any) -> Any:
    db = Database(settings.database_url)
    await open_database(db, settings.database_url)
    try:
        return await db.write(fn, *args)
    finally:
        await db.close()


async def _serve(settings: Settings) -> None:
    service = CloudService(settings)
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await service.run()


def _admin_command(args: argparse.Namespace, settings: Settings) -> int:
    now = Clock().now_iso()

    def run(fn: Callable[..., Any], *args: Any) -> Any:
        return asyncio.run(_admin(settings, fn, *args))

    if args.command == "migrate":
        print(f"schema version {run(migrate)}")
    elif args.command == "operators":
        if args.action == "add":
            run(admin.add_operator, args.name, now)
            print(f"operator {args.name} added; give it a token: cloud tokens add {args.name}")
        elif args.action == "remove":
            run(admin.remove_operator, args.name)
            print(f"operator {args.name} removed, with its tokens and site assignments")
        else:
            _table(run(admin.operators), ["name", "sites", "tokens", "created_at"])
    elif args.command == "tokens":
        if args.action == "add":
            token = new_token()
            run(admin.add_token, args.operator, token_hash(token), token_prefix(token), args.label, now)
            print(token)
            print(f"(the API token for {args.operator}; shown only now: store it, only its hash is kept)",
                  file=sys.stderr)
        elif args.action == "list":
            _table(run(admin.tokens, args.operator), ["prefix", "operator", "label", "created_at"])
        else:
            run(admin.revoke_token, args.prefix)
            print(f"token {args.prefix}... revoked")
    elif args.command == "sites":
        if args.action == "assign":
            if not SITE_ID.match(args.site):
                raise admin.AdminError(f"site id {args.site!r}: letters, digits, . _ - only, at most 64")
            before = run(admin.assign_site, args.site, args.operator, now)
            print(f"site {args.site} -> {args.operator}" + (f" (was {before})" if before else ""))
        elif args.action == "unassign":
            print(f"site {args.site} unassigned" if run(admin.unassign_site, args.site) else
                  f"site {args.site} was not assigned")
        else:
            _table(run(admin.site_assignments), ["site", "operator", "last_seen"])
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        overrides: dict[str, Any] = {"database_url": args.database_url}
        if args.command == "serve":
            overrides |= {"http_host": args.http_host, "http_port": args.http_port}
        settings = load_settings(**overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # The edge's log format (logfmt; journald's priorities under systemd): one way to read both.
    setup_logging(settings.log_level)
    try:
        if args.command == "serve":
            asyncio.run(_serve(settings))
            return 0
        if args.command == "brokers":
            return _brokers_command(args, settings)
        return _admin_command(args, settings)
    except StartupError as exc:
        print(f"cloud {args.command}: cannot start: {exc}", file=sys.stderr)
        return EXIT_CANNOT_START
    except admin.AdminError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
