"""Tell systemd how the edge is doing: ready, stopping, status, alive.

This is the sd_notify protocol (man sd_notify): one datagram of
``KEY=VALUE`` lines sent to the AF_UNIX socket named in ``$NOTIFY_SOCKET``.
It is a few lines of stdlib, so the edge carries no C extension (python-
systemd needs libsystemd headers to build on the Pi) for it.

Every call is a no-op returning False when the edge does not run under
systemd (a developer's shell, the tests, a container), so callers never
ask where they run.

How the shell uses it (``systemd/edge.service`` has Type=notify and
WatchdogSec=30)::

    async with asyncio.TaskGroup() as tasks:
        ...                       # open the journal, bind the OCPP listener
        systemd.ready()           # now chargers can connect: unit is "active"
        tasks.create_task(systemd.Watchdog(healthy=core.healthy).run())
    ...
    systemd.stopping()            # on SIGTERM, before flushing the journal
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable

__all__ = [
    "Watchdog",
    "extend_timeout",
    "notify",
    "ready",
    "status",
    "stopping",
    "watchdog_interval",
    "watchdog_ping",
]

log = logging.getLogger(__name__)

# PID 1 drains the notify socket at once; if its queue is ever full, wait a
# moment rather than lose READY=1, but never stall the event loop for long.
_SEND_TIMEOUT_S = 1.0


def _socket_address(value: str) -> str | None:
    # '@name' is an abstract socket (no file, lives in the network namespace);
    # the kernel spells it with a leading NUL byte.
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None


def notify(message: str) -> bool:
    """Send one sd_notify message; True if systemd's socket accepted it.

    False, without raising, when not under systemd. A send that fails under
    systemd is logged and also returns False: losing one status line must
    not take the edge down (a lost READY=1 or watchdog ping shows up in
    systemd's own log as a start timeout or a watchdog restart).
    """
    target = os.environ.get("NOTIFY_SOCKET")
    if not target:
        return False
    address = _socket_address(target)
    if address is None:
        log.warning("NOTIFY_SOCKET=%r is not a unix socket path or @abstract name; not notifying systemd", target)
        return False
    try:
        # A new socket per message, as libsystemd does: nothing to keep open,
        # and nothing stale after `systemctl daemon-reexec`.
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.settimeout(_SEND_TIMEOUT_S)
            sock.sendto(message.encode("utf-8"), address)
    except OSError as exc:
        log.warning("could not notify systemd (%s): %s", message.partition("\n")[0], exc)
        return False
    return True


def ready() -> bool:
    """Start-up is complete: systemd marks the unit active and arms the watchdog."""
    return notify("READY=1")


def stopping() -> bool:
    """The edge is shutting down; shown by `systemctl status` while it flushes."""
    return notify("STOPPING=1")


def status(text: str) -> bool:
    """A one-line status for `systemctl status edge`."""
    # A newline would start a new assignment: a charger id or an error text
    # echoed here must not be able to send READY=1 or WATCHDOG=trigger.
    return notify("STATUS=" + " ".join(text.splitlines()))


def watchdog_ping() -> bool:
    """Tell systemd the edge is alive; needed more often than WatchdogSec."""
    return notify("WATCHDOG=1")


def extend_timeout(seconds: float) -> bool:
    """Ask for more time to start or stop (journal migrations on a slow SD card)."""
    return notify(f"EXTEND_TIMEOUT_USEC={max(0, int(seconds * 1_000_000))}")


def watchdog_interval() -> float | None:
    """systemd's watchdog timeout for this process, in seconds, or None.

    From WATCHDOG_USEC, which systemd sets when the unit has WatchdogSec=.
    The variable is inherited by child processes, so when WATCHDOG_PID is set
    it counts only for that pid: a helper started by the edge must not think
    the edge's watchdog is its own.
    """
    usec = os.environ.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = os.environ.get("WATCHDOG_PID")
    try:
        if pid and int(pid) != os.getpid():
            return None
        value = int(usec)
    except ValueError:
        log.warning("ignoring malformed WATCHDOG_USEC=%r / WATCHDOG_PID=%r", usec, pid)
        return None
    if value <= 0:
        return None
    return value / 1_000_000


class Watchdog:
    """Pings systemd's watchdog from the event loop while the edge is healthy.

    The ping is sent from an asyncio task, not a thread, on purpose: a thread
    would keep pinging while the event loop is wedged (a blocking call, a
    livelock) and systemd would never restart an edge that no longer answers
    its chargers. From the loop, a wedged loop stops the pings by itself, and
    ``healthy`` (for instance: every part's task still running, the journal
    writable) stops them when the core is broken though the loop turns.
    Either way systemd kills and restarts the edge after WatchdogSec.
    """

    def __init__(self, healthy: Callable[[], bool], interval: float | None = None) -> None:
        """``interval`` is the watchdog timeout in seconds; by default systemd's
        (``watchdog_interval()``), and None when there is no watchdog."""
        if interval is None:
            interval = watchdog_interval()
        if interval is not None and interval <= 0:
            raise ValueError(f"watchdog interval must be positive, got {interval!r}")
        self._healthy = healthy
        self.interval = interval

    async def run(self) -> None:
        """Ping until cancelled; returns at once when there is no watchdog."""
        if self.interval is None:
            log.info("no systemd watchdog for this process; not pinging")
            return
        # Half the timeout, as sd_watchdog_enabled(3) advises: one late tick
        # (a long journal commit, a GC pause) is not yet a restart.
        period = self.interval / 2
        withheld = False
        while True:
            if self._is_healthy():
                if withheld:
                    log.warning("edge healthy again; resuming systemd watchdog pings")
                    withheld = False
                watchdog_ping()
            elif not withheld:
                log.error(
                    "edge unhealthy: withholding the systemd watchdog ping; "
                    "systemd restarts the edge if this lasts %.0f s",
                    self.interval,
                )
                withheld = True
            await asyncio.sleep(period)

    def _is_healthy(self) -> bool:
        # A health check that raises says nothing good about the edge: count
        # it as unhealthy (fail closed, so systemd restarts us) and log the
        # traceback, rather than let it end the watchdog task or be ignored.
        try:
            return bool(self._healthy())
        except Exception:
            log.exception("health check raised; treating the edge as unhealthy")
            return False
