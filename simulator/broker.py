"""A real Mosquitto on a free loopback port, with a generated config.

The edge's and the cloud's tests and the demo use it. The broker can be stopped cleanly,
killed (SIGKILL, or frozen with SIGSTOP so nothing is acknowledged), and
started again on the same port with the same persistence directory, so a test
can take the broker away and bring it back.

    with MosquittoBroker(tmp_path) as broker:            # anonymous, no ACL
        ... broker.host, broker.port ...
        broker.kill(); broker.start()

    MosquittoBroker(tmp_path, users={"site-a": "pw", "cloud": "pw"},
                    acl_file=REPO / "config/mosquitto/acl")  # the production ACL
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ACL_FILE = REPO / "config" / "mosquitto" / "acl"
# Above contract.v1.MAX_PAYLOAD_BYTES by room for the topic and properties, as in config/mosquitto/mosquitto.conf.
MAX_PACKET_SIZE = 270_000


def find_mosquitto(name: str = "mosquitto") -> str:
    """The broker is often in /usr/sbin, which is not on every user's PATH."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")
    if path is None:
        raise RuntimeError(f"{name} is not installed (apt-get install mosquitto; scripts/test does it)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class TlsFiles:
    cafile: Path
    certfile: Path
    keyfile: Path
    require_certificate: bool = False      # clients must show a certificate signed by the CA
    use_identity_as_username: bool = False  # ... and its CN is their username (for the ACL)


class MosquittoBroker:
    def __init__(self, workdir: Path, port: int | None = None, *, users: dict[str, str] | None = None,
                 acl_file: Path | None = None, tls: TlsFiles | None = None, autosave_interval: int = 1,
                 extra: str = "", verbose: bool = False):
        self.workdir = Path(workdir) / f"mosquitto-{id(self):x}"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.users = users
        self.acl_file = acl_file
        self.tls = tls
        self.autosave_interval = autosave_interval
        self.extra = extra
        self.verbose = verbose
        self.process: subprocess.Popen | None = None
        self.log_path = self.workdir / "mosquitto.log"
        self.starts = 0

    # -- config ---------------------------------------------------------------------------------------

    def _password_file(self) -> Path:
        path = self.workdir / "passwd"
        path.write_text("")
        passwd = find_mosquitto("mosquitto_passwd")
        for user, password in (self.users or {}).items():
            subprocess.run([passwd, "-b", str(path), user, password], check=True, capture_output=True)
        return path

    def config_text(self) -> str:
        lines = [
            f"listener {self.port} {self.host}",
            "per_listener_settings false",
            f"allow_anonymous {'false' if self.users is not None or self.tls and self.tls.require_certificate else 'true'}",
            "persistence true",
            f"persistence_location {self.workdir}/",
            f"autosave_interval {self.autosave_interval}",
            f"max_packet_size {MAX_PACKET_SIZE}",
            "max_queued_messages 1000000",
            f"log_dest file {self.log_path}",
            "log_type error", "log_type warning", "log_type notice", "log_type information",
            *(["log_type debug"] if self.verbose else []),
            "connection_messages true",
        ]
        if os.geteuid() == 0:
            # Started as root, mosquitto becomes the `mosquitto` user and could not write its
            # log and persistence in a test's private temporary directory.
            lines.append("user root")
        if self.users is not None:
            lines.append(f"password_file {self._password_file()}")
        if self.acl_file is not None:
            lines.append(f"acl_file {self.acl_file}")
        if self.tls is not None:
            lines += [f"cafile {self.tls.cafile}", f"certfile {self.tls.certfile}", f"keyfile {self.tls.keyfile}",
                      f"require_certificate {str(self.tls.require_certificate).lower()}",
                      f"use_identity_as_username {str(self.tls.use_identity_as_username).lower()}"]
        if self.extra:
            lines.append(self.extra)
        return "\n".join(lines) + "\n"

    # -- life cycle -----------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 10.0) -> "MosquittoBroker":
        if self.running:
            return self
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(self.config_text())
        self.process = subprocess.Popen([find_mosquitto(), "-c", str(conf)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"mosquitto exited at start (code {self.process.returncode}): {err}\n"
                                   f"{self.log_tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"mosquitto did not listen on port {self.port} within {timeout} s\n{self.log_tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM: a clean shutdown (the broker saves its persistence file)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reap()

    def kill(self) -> None:
        """SIGKILL: what it kept in memory since its last autosave is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._reap()

    def freeze(self) -> None:
        """SIGSTOP: connections stay open, nothing is read or acknowledged."""
        assert self.process is not None and self.running
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def restart(self) -> "MosquittoBroker":
        self.kill()
        return self.start()

    def _reap(self) -> None:
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no broker log)"

    def __enter__(self) -> "MosquittoBroker":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
