"""edge.systemd against a real notify socket, as systemd would listen on it.

Each test binds an AF_UNIX datagram socket (a file in a temporary
directory, or an abstract name) and points NOTIFY_SOCKET at it, then reads
what arrives. Waits are socket reads and events with timeouts, never sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edge import systemd

TIMEOUT_S = 5.0


@pytest.fixture(autouse=True)
def not_under_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    # The suite itself may run under systemd (a CI runner as a service).
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        monkeypatch.delenv(name, raising=False)


class Listener:
    """What systemd's end of the notify socket sees."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def receive(self) -> str:
        self.sock.settimeout(TIMEOUT_S)
        return self.sock.recv(4096).decode()

    def pending(self) -> list[str]:
        """Every datagram already queued, without waiting for more."""
        messages = []
        self.sock.setblocking(False)
        while True:
            try:
                messages.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return messages


@contextlib.contextmanager
def _listening(address: str, env_value: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Listener]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        monkeypatch.setenv("NOTIFY_SOCKET", env_value)
        yield Listener(sock)


@pytest.fixture
def path_listener(monkeypatch: pytest.MonkeyPatch) -> Iterator[Listener]:
    # A short directory of our own: socket paths are limited to 107 bytes and
    # pytest's tmp_path grows with the test's name.
    with tempfile.TemporaryDirectory(prefix="sdnotify-") as directory:
        path = str(Path(directory) / "notify")
        with _listening(path, path, monkeypatch) as listener:
            yield listener


@pytest.fixture
def abstract_listener(monkeypatch: pytest.MonkeyPatch) -> Iterator[Listener]:
    name = f"sitecontroller-test-{uuid.uuid4().hex}"
    with _listening("\0" + name, "@" + name, monkeypatch) as listener:
        yield listener


@pytest.fixture(params=["path", "abstract"])
def listener(request: pytest.FixtureRequest) -> Listener:
    return request.getfixturevalue(f"{request.param}_listener")


# --- notify and its messages ---------------------------------------------------


def test_ready(listener: Listener) -> None:
    assert systemd.ready() is True
    assert listener.receive() == "READY=1"


def test_stopping(listener: Listener) -> None:
    assert systemd.stopping() is True
    assert listener.receive() == "STOPPING=1"


def test_status(listener: Listener) -> None:
    assert systemd.status("12 chargers connected, uplink offline") is True
    assert listener.receive() == "STATUS=12 chargers connected, uplink offline"


def test_status_cannot_smuggle_other_assignments(listener: Listener) -> None:
    systemd.status("charger\nREADY=1")
    assert listener.receive() == "STATUS=charger READY=1"


def test_watchdog_ping(listener: Listener) -> None:
    assert systemd.watchdog_ping() is True
    assert listener.receive() == "WATCHDOG=1"


def test_extend_timeout(listener: Listener) -> None:
    assert systemd.extend_timeout(45) is True
    assert listener.receive() == "EXTEND_TIMEOUT_USEC=45000000"


def test_notify_sends_the_message_as_given(listener: Listener) -> None:
    assert systemd.notify("READY=1\nSTATUS=up") is True
    assert listener.receive() == "READY=1\nSTATUS=up"


def test_not_under_systemd_notify_returns_false() -> None:
    assert systemd.notify("READY=1") is False
    assert systemd.ready() is False
    assert systemd.watchdog_ping() is False


def test_unsupported_address_returns_false(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")
    assert systemd.notify("READY=1") is False


def test_nobody_listening_returns_false(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # systemd went away (or the socket was never there): log, do not raise.
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone"))
    assert systemd.notify("WATCHDOG=1") is False


# --- watchdog_interval ------------------------------------------------------------


def test_no_watchdog_without_watchdog_usec() -> None:
    assert systemd.watchdog_interval() is None


def test_watchdog_interval_for_our_pid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert systemd.watchdog_interval() == 30.0


def test_watchdog_interval_without_watchdog_pid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "2500000")
    assert systemd.watchdog_interval() == 2.5


def test_watchdog_of_another_pid_is_not_ours(monkeypatch: pytest.MonkeyPatch) -> None:
    # Inherited by a child of the edge: the watchdog belongs to the parent.
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getppid()))
    assert systemd.watchdog_interval() is None


@pytest.mark.parametrize("usec, pid", [("soon", None), ("0", None), ("-5", None), ("30000000", "me")])
def test_malformed_watchdog_variables_mean_no_watchdog(monkeypatch: pytest.MonkeyPatch, usec: str, pid: str | None) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", usec)
    if pid is not None:
        monkeypatch.setenv("WATCHDOG_PID", pid)
    assert systemd.watchdog_interval() is None


# --- Watchdog --------------------------------------------------------------------


def scripted_health(*answers: bool | Exception) -> tuple[Callable[[], bool], asyncio.Event]:
    """A health check that gives these answers in turn, then sets the event.

    After the script it keeps answering False, so a ping seen beyond the
    script's True answers is a ping the Watchdog should not have sent.
    """
    calls = 0
    exhausted = asyncio.Event()

    def healthy() -> bool:
        nonlocal calls
        answer = answers[calls] if calls < len(answers) else False
        calls += 1
        if calls >= len(answers):
            exhausted.set()
        if isinstance(answer, Exception):
            raise answer
        return answer

    return healthy, exhausted


async def run_until(watchdog: systemd.Watchdog, event: asyncio.Event) -> None:
    task = asyncio.create_task(watchdog.run())
    try:
        await asyncio.wait_for(event.wait(), TIMEOUT_S)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_watchdog_stops_pinging_when_unhealthy(path_listener: Listener) -> None:
    healthy, exhausted = scripted_health(True, True, True, False, False, False)
    await run_until(systemd.Watchdog(healthy, interval=0.02), exhausted)
    # A ping is sent in the same step as the health check that allowed it,
    # and a datagram is queued when sendto returns: all of them are here.
    assert path_listener.pending() == ["WATCHDOG=1"] * 3


async def test_watchdog_resumes_when_healthy_again(path_listener: Listener) -> None:
    healthy, exhausted = scripted_health(True, False, False, True)
    await run_until(systemd.Watchdog(healthy, interval=0.02), exhausted)
    assert path_listener.pending() == ["WATCHDOG=1"] * 2


async def test_a_health_check_that_raises_counts_as_unhealthy(path_listener: Listener) -> None:
    healthy, exhausted = scripted_health(True, RuntimeError("journal gone"), False)
    await run_until(systemd.Watchdog(healthy, interval=0.02), exhausted)
    assert path_listener.pending() == ["WATCHDOG=1"]


async def test_watchdog_takes_systemds_interval(monkeypatch: pytest.MonkeyPatch, abstract_listener: Listener) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "40000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    watchdog = systemd.Watchdog(lambda: True)
    assert watchdog.interval == 0.04
    task = asyncio.create_task(watchdog.run())
    try:
        loop = asyncio.get_running_loop()
        abstract_listener.sock.setblocking(False)
        for _ in range(3):
            message = await asyncio.wait_for(loop.sock_recv(abstract_listener.sock, 4096), TIMEOUT_S)
            assert message == b"WATCHDOG=1"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_watchdog_without_systemd_watchdog_returns_at_once() -> None:
    watchdog = systemd.Watchdog(lambda: True)
    assert watchdog.interval is None
    await asyncio.wait_for(watchdog.run(), TIMEOUT_S)


def test_watchdog_interval_must_be_positive() -> None:
    with pytest.raises(ValueError):
        systemd.Watchdog(lambda: True, interval=0)
