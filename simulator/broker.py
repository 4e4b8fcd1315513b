"""A real Mosquitto on a free loopback port, with a generated config.

The edge's and the cloud's tests and the demo use it. The broker can be stopped cleanly,
killed (SIGKILL, or frozen with SIGSTOP so nothing is acknowledged), and
started again on the same port with the same persistence directory, so a test
can take the broker away and bring it back.

    with MosquittoBroker(tmp_path) as broker:            # anonymous, no ACL
        ... broker.host, broker.port ...
        broker.kill(); broker.start()

    MosquittoBroker(tmp_path, users={"site-a": "pw", "cloud": "pw"},
                    acl_file=REPO / "config/mosquitto/acl")  # a plain acl_file (no subscription checks)

    MosquittoBroker(tmp_path, shipped=True, users={"site-a": "pw"}, clouds={"cloud": "pw"})
        # config/mosquitto/mosquitto.conf itself, with only ports, paths and TLS adapted: sites on
        # broker.port, the cloud on broker.cloud_port, accounts in the dynamic-security plugin
"""

from __future__ import annotations

import glob
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
SHIPPED_CONF = REPO / "config" / "mosquitto" / "mosquitto.conf"
SITE_LISTENER = "8883"          # the shipped config's listener for sites (the other one is the cloud's)
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


def find_plugin(name: str = "mosquitto_dynamic_security.so") -> str:
    found = sorted(glob.glob(f"/usr/lib/*/{name}") + glob.glob(f"/usr/lib/{name}") + glob.glob(f"/usr/local/lib/{name}"))
    if not found:
        raise RuntimeError(f"{name} is not installed (it comes with the mosquitto package, 2.0 or later)")
    return found[0]


def adapt_shipped(text: str, *, host: str, site_port: int, cloud_port: int, workdir: Path, accounts_file: Path,
                  autosave_interval: int, log_path: Path, tls: "TlsFiles | None") -> str:
    """The shipped config with only what must differ on a test machine: ports, file paths, TLS."""
    out = ["user root"] if os.geteuid() == 0 else []
    tls_keys = {"cafile", "certfile", "keyfile", "tls_version", "require_certificate"}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, _, value = stripped.partition(" ")
        if key == "listener":
            port = site_port if value.split()[0] == SITE_LISTENER else cloud_port
            out.append(f"listener {port} {host}")
        elif key == "plugin":
            out.append(f"plugin {find_plugin()}")
        elif key == "plugin_opt_config_file":
            out.append(f"plugin_opt_config_file {accounts_file}")
        elif key in tls_keys:
            if tls is not None and key != "tls_version":
                value = {"cafile": tls.cafile, "certfile": tls.certfile, "keyfile": tls.keyfile,
                         "require_certificate": str(tls.require_certificate).lower()}[key]
                out.append(f"{key} {value}")
        elif key == "persistence_location":
            out.append(f"persistence_location {workdir}/")
        elif key == "autosave_interval":
            out.append(f"autosave_interval {autosave_interval}")
        elif key == "log_dest":
            out.append(f"log_dest file {log_path}")
        else:
            out.append(stripped)
    return "\n".join(out + ["log_type information"]) + "\n"


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
                 extra: str = "", verbose: bool = False, shipped: bool = False, clouds: dict[str, str] | None = None):
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
        # shipped: config/mosquitto/mosquitto.conf; `users` are sites, `clouds` the cloud's users.
        self.shipped = shipped
        self.clouds = clouds or {}
        self.cloud_port = free_port() if shipped else self.port
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
        if self.shipped:
            from cloud.broker_accounts import accounts, write      # the broker's accounts, as production makes them
            accounts_file = self.workdir / "dynamic-security.json"
            write(accounts_file, accounts(self.users or {}, self.clouds))
            return adapt_shipped(SHIPPED_CONF.read_text(), host=self.host, site_port=self.port,
                                 cloud_port=self.cloud_port, workdir=self.workdir, accounts_file=accounts_file,
                                 autosave_interval=self.autosave_interval, log_path=self.log_path,
                                 tls=self.tls) + ("log_type debug\n" if self.verbose else "") + self.extra
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
        text = self.config_text()
        conf.write_text(text)
        # Ready when every listener takes connections: mosquitto opens them one by one, and a client of the
        # second (the cloud's) may come the moment the first answers.
        ports = [int(line.split()[1]) for line in text.splitlines() if line.startswith("listener ")] or [self.port]
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
                while ports:
                    with socket.create_connection((self.host, ports[0]), timeout=0.2):
                        ports.pop(0)
                return self
            except OSError:
                time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"mosquitto did not listen on port(s) {ports} within {timeout} s\n{self.log_tail()}")

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
