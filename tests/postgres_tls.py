"""A private PostgreSQL instance that accepts only TLS, with a certificate from a test CA.

Started by the tests themselves (initdb + pg_ctl from /usr/lib/postgresql/*/bin, in a fresh
temporary folder, on a free 127.0.0.1 port); as root it runs as the ``postgres`` user,
since PostgreSQL refuses to run as root. ``pg_hba.conf`` admits only ``hostssl``
connections (trust auth), so a client that does not use TLS is refused.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from glob import glob
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from core.crypto import certs
from tests.services import free_port


@dataclass
class TestCa:
    """A certificate authority made for one test run."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def make(cls, name: str) -> TestCa:
        """A new self-signed CA (the clinic CA kind Careline itself makes)."""
        key, cert_pem = certs.create_ca(name)
        return cls(key, x509.load_pem_x509_certificate(cert_pem.encode()))

    def pem(self) -> bytes:
        """The CA certificate (what a client trusts)."""
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue_server(self, names: Sequence[str]) -> tuple[bytes, bytes]:
        """(certificate PEM, key PEM) for a TLS server at ``names`` (host names or IPs)."""
        key = ec.generate_private_key(ec.SECP256R1())
        alt: list[x509.GeneralName] = []
        for name in names:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alt.append(x509.DNSName(name))
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM), certs.private_key_pem(key)


@dataclass
class TlsPostgres:
    """A running TLS-only PostgreSQL: where it listens, the CA that signed its certificate
    (``ca_file``) and one that did not (``wrong_ca_file``)."""

    port: int
    folder: Path
    ca_file: Path
    wrong_ca_file: Path
    _run_as: list[str]

    def url(self, database: str = "postgres", **params: str) -> str:
        """A connection URL to 127.0.0.1 with libpq ``params`` (sslmode, sslrootcert...)."""
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}" + (
            f"?{query}" if query else ""
        )

    def stop(self) -> None:
        """Stop the instance (fast shutdown) and delete its folder."""
        subprocess.run(
            [*self._run_as, _bin("pg_ctl"), "-D", str(self.folder / "data"), "-m", "fast",
             "-w", "stop"],
            capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        shutil.rmtree(self.folder, ignore_errors=True)


def _bin(name: str) -> str:
    found = sorted(glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    on_path = shutil.which(name)
    if on_path is None:
        raise RuntimeError(f"{name} not found (install the PostgreSQL server package)")
    return on_path


def start_tls_postgres() -> TlsPostgres:
    """initdb, configure ssl=on with a test CA's certificate for 127.0.0.1/localhost, start.

    The folder is made with ``tempfile.mkdtemp`` (under /tmp, which the ``postgres`` user
    can reach, unlike pytest's root-only tmp folders).
    """
    folder = Path(tempfile.mkdtemp(prefix="careline-pg-tls-"))
    data = folder / "data"
    run_as: list[str] = []
    if os.geteuid() == 0:
        run_as = ["runuser", "-u", "postgres", "--"]
        shutil.chown(folder, "postgres", "postgres")
    ca, wrong = TestCa.make("Careline test CA"), TestCa.make("Some other CA")
    ca_file, wrong_ca_file = folder / "ca.pem", folder / "wrong-ca.pem"
    ca_file.write_bytes(ca.pem())
    wrong_ca_file.write_bytes(wrong.pem())
    port = free_port()
    subprocess.run(
        [*run_as, _bin("initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
         "--no-sync", "-E", "UTF8"],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    cert_pem, key_pem = ca.issue_server(["localhost", "127.0.0.1"])
    (data / "server.crt").write_bytes(cert_pem)
    key_file = data / "server.key"
    key_file.write_bytes(key_pem)
    key_file.chmod(0o600)  # PostgreSQL refuses a key others can read
    if run_as:
        for name in ("server.crt", "server.key"):
            shutil.chown(data / name, "postgres", "postgres")
    with (data / "postgresql.conf").open("a") as conf:
        conf.write(
            f"\nport = {port}\nlisten_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{folder}'\nssl = on\n"
            "ssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
            "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
        )
    # TLS only: a plain connection matches no line and is refused.
    (data / "pg_hba.conf").write_text("hostssl all all 127.0.0.1/32 trust\n")
    started = subprocess.run(
        [*run_as, _bin("pg_ctl"), "-D", str(data), "-l", str(folder / "postgres.log"), "-w",
         "-t", "60", "start"],
        capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    if started.returncode != 0:
        log = (folder / "postgres.log").read_text(errors="replace")[-2000:]
        shutil.rmtree(folder, ignore_errors=True)
        raise RuntimeError(f"TLS PostgreSQL did not start: {started.stderr}\n{log}")
    return TlsPostgres(port, folder, ca_file, wrong_ca_file, run_as)
