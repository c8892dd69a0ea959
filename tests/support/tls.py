"""A throwaway certificate authority for TLS tests, made with the ``openssl`` binary.

:class:`ThrowawayCa` creates a CA in a scratch directory and issues leaf
certificates from it (EC P-256, valid two days, ``subjectAltName`` for
``127.0.0.1`` and ``localhost`` by default, usable as server and as client
certificates). Keys are written mode 0600, as the box requires of key files.
Every ``openssl`` run is waited for (``subprocess.run``); nothing is left running.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["Issued", "ThrowawayCa", "require_openssl"]


def require_openssl() -> str:
    found = shutil.which("openssl")
    if found is None:
        pytest.fail("the openssl binary is required for TLS tests (apt-get install openssl)")
    return found


@dataclass(frozen=True, slots=True)
class Issued:
    cert: Path
    key: Path


class ThrowawayCa:
    """A CA of its own in ``workdir``; :meth:`issue` makes certificates signed by it."""

    def __init__(self, workdir: Path, name: str = "PickEdge test CA") -> None:
        self.openssl = require_openssl()
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cert = self.dir / "ca.pem"
        self.key = self.dir / "ca.key"
        self._serial = 1
        self._run(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", str(self.key), "-out", str(self.cert), "-days", "2",
            "-subj", f"/CN={name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip
        self.key.chmod(0o600)

    def _run(self, *args: str) -> None:
        done = subprocess.run(
            [self.openssl, *args], capture_output=True, text=True, timeout=60, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"openssl {args[0]} failed: {done.stderr.strip()}")

    def issue(self, name: str, *, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> Issued:
        """A certificate for ``hosts`` (IP addresses and DNS names) and its key."""
        cert, key, csr = (self.dir / f"{name}{ext}" for ext in (".pem", ".key", ".csr"))
        ext = self.dir / f"{name}.ext"
        alt = ",".join(
            f"IP:{h}" if h.replace(".", "").isdigit() or ":" in h else f"DNS:{h}" for h in hosts
        )
        ext.write_text(
            f"subjectAltName={alt}\n"
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth,clientAuth\n"
            "subjectKeyIdentifier=hash\n"
            "authorityKeyIdentifier=keyid\n"
        )
        self._run(
            "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}",
        )  # fmt: skip
        self._serial += 1
        self._run(
            "x509", "-req", "-in", str(csr), "-CA", str(self.cert), "-CAkey", str(self.key),
            "-set_serial", str(self._serial), "-days", "2", "-out", str(cert),
            "-extfile", str(ext),
        )  # fmt: skip
        key.chmod(0o600)
        return Issued(cert=cert, key=key)
