"""How the edge starts and stops: what it starts on, what it keeps, how it ends.

- A start that cannot proceed (a port taken, the journal or the token file
  unreadable, the state directory not writable) raises StartupError: one line
  naming the port or the file, printed by `edgectl run`, exit 1, no traceback.
- The last good config: once an edge has started on a site config, its text is
  kept in the state directory (LAST_GOOD_NAME, written atomically, mode 0600:
  it may hold the MQTT password). A file next to the journal rather than a
  journal table, so that it is there whatever state the journal is in. When the
  site config is invalid (or unreadable) at a later start, the edge runs on the
  last good one, loudly, rather than leave the site unmanaged; with none, it
  refuses to start (exit 2).
- SIGTERM and SIGINT are honoured at any moment (edge.app.run_edge): before the
  edge is ready they cancel the start, after it they stop it in order; a second
  signal, or STOP_GRACE_S after the first, ends the process at once, even while
  the event loop is stuck in a computation.
- Within that, no part holds the stop up: each is cancelled again after
  supervision.STOP_GRACE_S and left behind, named in the log, after
  supervision.STOP_CANCELS cancellations (about 6 s), so the logs' last flush
  and the journal's close have the rest.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from edge.config import ConfigError, SiteConfig, parse_config, read_config_text

LAST_GOOD_NAME = "last-good-site.toml"
STOP_GRACE_S = 10.0
EXIT_CANNOT_START = 1
EXIT_CUT_SHORT = 1
# What the cloud alert and the API show of the problems: enough to act on, bounded in size.
MAX_PROBLEMS_SHOWN = 20
MAX_PROBLEM_CHARS = 300


class StartupError(Exception):
    """A start that cannot proceed; the message is one line naming the port or file."""


@dataclass(frozen=True)
class ConfigFallback:
    """The site config could not be used; the edge runs on the last good one."""

    file: str                  # the site config that is invalid
    problems: list[str]
    last_good: str             # the file the edge runs on instead
    saved_at: str              # when that one was last started on (its modification time)

    def summary(self) -> str:
        return (f"the site config {self.file} is invalid ({len(self.problems)} problem(s)); running on the last "
                f"good config {self.last_good} from {self.saved_at}")

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "problems": shown_problems(self.problems), "last_good": self.last_good,
                "last_good_saved_at": self.saved_at}


@dataclass(frozen=True)
class StartConfig:
    config: SiteConfig
    text: str | None = None                       # to keep as the last good config once started
    fallback: ConfigFallback | None = None
    source: str = ""                              # the site config file
    warnings: list[str] = field(default_factory=list)


def shown_problems(problems: list[str]) -> list[str]:
    shown = [p if len(p) <= MAX_PROBLEM_CHARS else p[:MAX_PROBLEM_CHARS] + "... (cut)"
             for p in problems[:MAX_PROBLEMS_SHOWN]]
    if len(problems) > MAX_PROBLEMS_SHOWN:
        shown.append(f"... and {len(problems) - MAX_PROBLEMS_SHOWN} more (`edgectl config check`)")
    return shown


def last_good_path(state_dir: str | Path) -> Path:
    return Path(state_dir) / LAST_GOOD_NAME


def choose_config(path: Path, state_dir: str | None) -> StartConfig:
    """The config to start on: the site config, else the last good one (with why);
    raises the site config's ConfigError when there is no usable last good config."""
    state = state_dir or str(path.resolve().parent)
    try:
        text = read_config_text(path)
        return StartConfig(parse_config(text, str(path), state), text=text, source=str(path))
    except ConfigError as invalid:
        kept = last_good_path(state)
        try:
            saved = kept.read_text(encoding="utf-8")
            saved_at = datetime.fromtimestamp(kept.stat().st_mtime, timezone.utc).isoformat(timespec="seconds")
        except FileNotFoundError:
            raise invalid from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(invalid.source, [*invalid.problems,
                                               f"(and the last good config {kept} cannot be read: {exc})"]) from None
        try:
            config = parse_config(saved, str(kept), state)
        except ConfigError as stale:       # e.g. an upgrade made a key of it unknown
            raise ConfigError(invalid.source, [*invalid.problems, f"(and the last good config {kept} is no "
                                               f"longer valid either: {'; '.join(stale.problems)[:300]})"]) from None
        return StartConfig(config, fallback=ConfigFallback(str(path), invalid.problems, str(kept), saved_at),
                           source=str(path))


def save_last_good(state_dir: str | Path, text: str) -> Path | None:
    """Keep `text` as the last good config, atomically (a power cut leaves the old or the
    new one, never half); None when it is already the one kept (no write: SD cards wear)."""
    path = last_good_path(state_dir)
    try:
        if path.read_text(encoding="utf-8") == text:
            return None
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    temporary = path.with_name(path.name + ".new")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)     # the rename itself survives a power cut
    finally:
        os.close(directory)
    return path


class SignalStop:
    """SIGTERM/SIGINT at any moment, within STOP_GRACE_S.

    The handlers are Python-level (signal.signal), not the event loop's: those
    run only when the loop turns, so a loop stuck in a computation would never
    see the signal. A Python handler runs between two bytecodes of whatever the
    main thread does; it only asks the loop to stop (thread-safely) and arms a
    deadline thread that ends the process if the stop has not happened in time.
    That thread is started with the handlers, not in one: starting a thread
    takes a lock that the interrupted code may hold.
    """

    def __init__(self, request_stop: Callable[[], None], grace: float = STOP_GRACE_S,
                 exit_now: Callable[[int], None] = os._exit):
        self._request_stop = request_stop
        self.grace = grace
        self._exit_now = exit_now
        self.signals = 0
        self._first = ""
        self._armed = threading.Event()
        self._retired = False
        self._previous: dict[int, Any] = {}
        self._loop: Any = None

    def install(self, loop: Any) -> None:
        self._loop = loop
        threading.Thread(target=self._deadline, name="stop-deadline", daemon=True).start()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)

    def uninstall(self) -> None:
        """Handlers back as they were; a deadline already armed stays armed (the process is ending)."""
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()
        if not self.signals:
            self._retired = True
            self._armed.set()

    def _handle(self, signum: int, frame: Any) -> None:
        self.signals += 1
        name = signal.Signals(signum).name
        if self.signals > 1:
            self._die(f"edge: {name} again: exiting at once\n")
        self._first = name
        self._armed.set()
        try:
            self._loop.call_soon_threadsafe(self._request_stop)
        except RuntimeError:        # the loop is closed already: the process is ending anyway
            pass

    def _deadline(self) -> None:
        self._armed.wait()
        if self._retired:
            return
        time.sleep(self.grace)
        self._die(f"edge: not stopped {self.grace:g} s after {self._first}: exiting at once\n")

    def _die(self, message: str) -> None:
        # No logging here: the logging lock may be held by the very code this interrupted.
        try:
            os.write(2, message.encode())
        finally:
            self._exit_now(EXIT_CUT_SHORT)
