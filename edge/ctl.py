"""edgectl's common ground: where the running edge is (site config, state directory, or the demo), how
to talk to it (its local API with the token), and how to print what it says. edge/cli.py and each
area's sub-commands (edge/cdr/cli.py, edge/commission/cli.py, ...) import from here, so no sub-command
module needs edge/cli.py, which registers them."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from edge import demo_link
from edge.config import SiteConfig

DEFAULT_CONFIG = "/etc/sitecontroller/site.toml"
PHASES = ("L1", "L2", "L3")
# Where systemd's StateDirectory= puts the journal and token for the default config.
DEFAULT_STATE_DIR = "/var/lib/sitecontroller"


class CliError(Exception):
    pass


def config_path_of(args: argparse.Namespace) -> str:
    return args.config or os.environ.get("EDGE_CONFIG") or DEFAULT_CONFIG


def state_dir_of(args: argparse.Namespace) -> str | None:
    state_dir = args.state_dir or os.environ.get("STATE_DIRECTORY")
    if not state_dir and Path(config_path_of(args)) == Path(DEFAULT_CONFIG):
        state_dir = DEFAULT_STATE_DIR
    return state_dir.split(":")[0] if state_dir else None


def told_where(args: argparse.Namespace) -> bool:
    return bool(args.config or args.state_dir or os.environ.get("EDGE_CONFIG") or os.environ.get("STATE_DIRECTORY"))


def reach_config(args: argparse.Namespace) -> SiteConfig:
    """The config to reach the running edge by: the site config or, while that is invalid,
    the last good one the edge runs on (edge/lifecycle.py), so edgectl keeps working.
    Told nothing of where, while a demo runs (edge/demo_link.py): the demo's."""
    from edge.lifecycle import choose_config

    demo = None if told_where(args) else demo_link.running()
    if demo is not None:
        print(f"edgectl: using the demo at {demo.url} (config {demo.config}, state {demo.state_dir})",
              file=sys.stderr)
        args.config, args.state_dir = demo.config, demo.state_dir
    start = choose_config(Path(config_path_of(args)), state_dir_of(args))
    if start.fallback is not None:
        print(f"edgectl: warning: {start.fallback.summary()}", file=sys.stderr)
    if demo is None:
        return start.config
    # The API where the demo's edge listens, whatever its config file says.
    where = urllib.parse.urlsplit(demo.url)
    api = start.config.api.model_copy(update={"host": where.hostname, "port": where.port})
    return start.config.model_copy(update={"api": api})


# -- talking to the running edge ------------------------------------------------

class ApiClient:
    def __init__(self, config: SiteConfig, timeout: float = 60.0):
        host = "127.0.0.1" if config.api.host in ("0.0.0.0", "::") else config.api.host
        self.base = f"http://{host}:{config.api.port}/api/v1"
        token_path = config.state_path(config.api.token_file)
        try:
            self.token = token_path.read_text().strip()
        except OSError as exc:
            raise CliError(f"cannot read the API token {token_path}: {exc.strerror} "
                           "(is the edge running, and are you its user or root? --state-dir may help)") from None
        self.timeout = timeout

    def request(self, method: str, path: str, body: Any = None, query: dict | None = None, raw: bool = False) -> Any:
        query = {k: v for k, v in (query or {}).items() if v is not None}
        url = self.base + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": "application/json",
            "X-Actor": f"edgectl:{getpass.getuser()}"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.read().decode("utf-8") if raw else json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                payload = json.loads(exc.read())
            except ValueError:
                payload = {"error": exc.reason}
            if isinstance(payload, dict) and "outcome" in payload:
                return payload  # a command result with a non-2xx status: show it as is
            raise CliError(f"{method} {path}: HTTP {exc.code}: {payload.get('error', payload)}") from None
        except urllib.error.URLError as exc:
            raise CliError(f"cannot reach the edge at {self.base}: {exc.reason} (is it running?)") from None


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def show(data: Any, as_json: bool, columns: list[str]) -> None:
    if as_json:
        print(json.dumps(data, indent=2))
    elif not data:
        print("(none)")
    else:
        print(table(data, columns))


def cell(value: Any) -> str:
    """One table cell: numbers rounded to 0.1, three phases as L1/L2/L3, objects as key=value."""
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, list) and len(value) == 3 and all(isinstance(v, (int, float)) or v is None for v in value):
        return " ".join(f"{name} " + ("-" if v is None else f"{v:.1f}") for name, v in zip(PHASES, value))
    if isinstance(value, dict):
        return " ".join(f"{k}={cell(v) or '-'}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(cell(v) for v in value) if value else "-"
    return "" if value is None else str(value)


def fields(data: dict[str, Any], skip: tuple[str, ...] = ()) -> str:
    """A key/value table of an object's plain fields."""
    rows = [{"field": k, "value": cell(v)} for k, v in data.items()
            if k not in skip and not (isinstance(v, list) and v and isinstance(v[0], dict))]
    return table(rows, ["field", "value"])
