"""How a running demo tells edgectl where it is, so `edgectl chargers` in a second terminal needs no
EDGE_CONFIG or STATE_DIRECTORY.

The demo (simulator/demo.py) writes one small JSON file in the user's own state directory,
$XDG_STATE_HOME/sitecontroller/demo.json (default ~/.local/state/...): its local API's URL and
token, the config and state directory it runs on, and its process id. The file is the user's
alone (mode 0600 in a 0700 folder: it holds the API token) and is removed when the demo stops.
edgectl reads it only when it was told nothing (no --config, $EDGE_CONFIG, --state-dir or
$STATE_DIRECTORY), and only while that process lives: a file a killed demo left behind is ignored.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

FILE_NAME = "demo.json"


@dataclass(frozen=True)
class DemoLink:
    url: str            # the local API's base, http://127.0.0.1:8180/api/v1
    token: str          # the API's bearer token (what the state directory's api-token holds)
    config: str         # the site config the demo runs on (absolute)
    state_dir: str      # its state directory (absolute)
    pid: int


def path(environ: dict[str, str] | os._Environ = os.environ) -> Path:
    """The user's demo file (XDG base directory spec: $XDG_STATE_HOME, else ~/.local/state)."""
    state_home = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state_home) / "sitecontroller" / FILE_NAME


def publish(link: DemoLink, where: Path | None = None) -> Path:
    """Write the file for edgectl: created 0600 (never readable by others, not even for a moment),
    then renamed into place, so a reader sees the whole file or none."""
    target = where or path()
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(asdict(link), out)
    os.replace(partial, target)
    return target


def withdraw(where: Path, pid: int | None = None) -> None:
    """Remove the file at the demo's end; only if it is still this demo's (another may have started)."""
    link = read(where)
    if link is not None and link.pid == (pid if pid is not None else os.getpid()):
        where.unlink(missing_ok=True)


def read(where: Path) -> DemoLink | None:
    try:
        data = json.loads(where.read_text())
        return DemoLink(url=str(data["url"]), token=str(data["token"]), config=str(data["config"]),
                        state_dir=str(data["state_dir"]), pid=int(data["pid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def running(where: Path | None = None) -> DemoLink | None:
    """The demo that is running now, if its file says so and its process lives."""
    link = read(where or path())
    if link is None:
        return None
    try:
        os.kill(link.pid, 0)
    except (ProcessLookupError, PermissionError):
        # Gone (killed before it could remove its file), or its number now another user's process.
        return None
    return link
