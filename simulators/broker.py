"""A real Mosquitto broker on a free loopback port, with its own configuration.

:class:`MosquittoBroker` writes its configuration into a scratch directory — no
anonymous access, a password file made with ``mosquitto_passwd`` (or an
equivalent PBKDF2-SHA512 ``$7$`` hash when that tool is missing), persistence on
so persistent sessions and their queued QoS 1 messages survive a restart — and
can be stopped (gracefully or with SIGKILL) and restarted on the same port.
With ``tls=BrokerTls(...)`` it listens with TLS as well, on ``tls_port``, like
a remote broker (issue 14). Used by ``pickedge demo``, the tests and the
benchmarks; it never touches a broker the machine already runs.
"""

from __future__ import annotations

import base64
import contextlib
import getpass
import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from devices.driver import MqttSettings

USERNAME = "pickedge"


def find_mosquitto() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in (
        "/usr/sbin/mosquitto",
        "/usr/local/sbin/mosquitto",
        "/opt/homebrew/sbin/mosquitto",
    ):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pbkdf2_line(username: str, password: str) -> str:
    """A mosquitto 2.x password-file line (``$7$`` = PBKDF2-SHA512)."""
    salt = secrets.token_bytes(12)
    iterations = 101
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return (
        f"{username}:$7${iterations}${base64.b64encode(salt).decode()}"
        f"${base64.b64encode(digest).decode()}\n"
    )


@dataclass(frozen=True, slots=True)
class BrokerTls:
    """The broker's TLS listener: its certificate and key, and the CA its
    clients' certificates must come from when ``require_certificate``."""

    cert_file: str
    key_file: str
    ca_file: str
    require_certificate: bool = False


class MosquittoBroker:
    """One broker process with its own config, password and persistence files."""

    def __init__(
        self,
        workdir: Path,
        *,
        binary: str | None = None,
        port: int | None = None,
        username: str = USERNAME,
        password: str | None = None,
        extra_config: str = "",
        tls: BrokerTls | None = None,
        own_process_group: bool = False,
    ) -> None:
        found = binary or find_mosquitto()
        if found is None:
            raise FileNotFoundError(
                "mosquitto broker binary not found (looked on PATH and in /usr/sbin): "
                "install it, e.g. `apt-get install mosquitto`"
            )
        self.binary = found
        self.workdir = workdir
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.username = username
        self.password = password or secrets.token_urlsafe(12)
        self.extra_config = extra_config
        #: start the broker in a process group of its own, so that a terminal's
        #: Ctrl-C (SIGINT to the whole foreground group) leaves it to its owner
        #: to stop in order (``pickedge demo``)
        self.own_process_group = own_process_group
        self.tls = tls
        self.tls_port = free_port() if tls is not None else None
        self.config_path = workdir / "mosquitto.conf"
        self.log_path = workdir / "mosquitto.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._write_files()

    def _write_files(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        passwd = self.workdir / "passwd"
        tool = shutil.which("mosquitto_passwd")
        if tool:
            subprocess.run(
                [tool, "-b", "-c", str(passwd), self.username, self.password],
                check=True,
                capture_output=True,
            )
        else:
            passwd.write_text(_pbkdf2_line(self.username, self.password))
        passwd.chmod(0o600)
        data = self.workdir / "data"
        data.mkdir(exist_ok=True)
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous false",
            f"password_file {passwd}",
            "persistence true",
            f"persistence_location {data}/",
            "persistence_file mosquitto.db",
            "autosave_interval 1",
            # Enough room for a reader's whole replayed backlog per subscriber.
            "max_queued_messages 200000",
            "max_queued_bytes 0",
            "max_inflight_messages 100",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "connection_messages true",
        ]
        if self.tls is not None:
            lines += [
                f"listener {self.tls_port} 127.0.0.1",
                f"certfile {self.tls.cert_file}",
                f"keyfile {self.tls.key_file}",
                f"cafile {self.tls.ca_file}",
                f"require_certificate {'true' if self.tls.require_certificate else 'false'}",
            ]
        if os.geteuid() == 0:
            # Run as root, mosquitto drops to user "mosquitto", which cannot read
            # our scratch files; stay as the invoking user instead.
            lines.append(f"user {getpass.getuser()}")
        self.config_path.write_text("\n".join(lines) + "\n" + self.extra_config)

    def settings(self, prefix: str = "pickedge-test") -> MqttSettings:
        return MqttSettings(
            host=self.host,
            port=self.port,
            username=self.username,
            password=self.password,
            client_id_prefix=prefix,
        )

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        self._proc = subprocess.Popen(
            [self.binary, "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            process_group=0 if self.own_process_group else None,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), timeout=0.2),
            ):
                return
            time.sleep(0.02)
        self.stop(kill=True)
        raise RuntimeError(f"mosquitto did not start on port {self.port}:\n{self.logs()}")

    def stop(self, *, kill: bool = False, timeout: float = 10.0) -> None:
        """Stop the broker: SIGTERM saves the persistence file, SIGKILL does not."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()

    def restart(self) -> None:
        self.stop()
        self.start()

    def logs(self) -> str:
        text = ""
        if self.log_path.exists():
            text = self.log_path.read_text(errors="replace")[-4000:]
        return text

    def __enter__(self) -> MosquittoBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
