"""Real services the tests start themselves: moto_server (S3, KMS) and an OpenBao dev
server (Vault transit). Each runs as a child process on a free loopback port and is
stopped when the test session ends."""

from __future__ import annotations

import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody is listening on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ephemeral_low() -> int:
    """The lowest port the system hands out for outgoing connections and bind(0): Linux's
    ip_local_port_range, else the IANA dynamic range most other systems use."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 49152


def free_port_pair() -> int:
    """A free port whose next port is free too (a LAN peer's sync port and pairing port),
    below the ephemeral range: a test that stops serving and serves again on the same
    ports must find them free. An ephemeral pair is not: any outgoing connection on the
    machine may take one meanwhile (Linux gives connect() even ports, bind(0) odd ones, so
    PORT+1 is exactly what it picks), and its TIME_WAIT then holds it for a minute."""
    high = max(_ephemeral_low(), 12_000) - 1
    # Its own generator: pytest-randomly seeds the global one alike in every xdist worker.
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(10_000, high)  # above most services' fixed ports
        with socket.socket() as first, socket.socket() as second:
            try:
                first.bind(("127.0.0.1", port))
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
    raise RuntimeError("no two adjacent free ports on 127.0.0.1")


@dataclass
class Service:
    """A started child process and how to reach it."""

    url: str
    process: subprocess.Popen[bytes]
    token: str = ""

    def stop(self) -> None:
        """Terminate, then kill if it lingers."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _wait_http(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: service exited early:\n{log.read_text()[-2000:]}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{url}: service did not answer within {timeout} s")


def start_moto(log_dir: Path) -> Service:
    """moto_server (S3, KMS, ...) on a free port."""
    port = free_port()
    log = log_dir / "moto.log"
    exe = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [exe, "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    _wait_http(url + "/moto-api/", process, log, 30)
    return Service(url, process)


def start_openbao(log_dir: Path) -> Service:
    """An OpenBao dev server (in-memory, unsealed) with a random root token."""
    port = free_port()
    token = secrets.token_hex(16)
    log = log_dir / "openbao.log"
    exe = shutil.which("bao", path=str(Path(sys.executable).parent)) or "bao"
    env = {**os.environ, "HOME": str(log_dir)}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [exe, "server", "-dev", f"-dev-root-token-id={token}",
             f"-dev-listen-address=127.0.0.1:{port}"],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    _wait_http(url + "/v1/sys/health", process, log, 60)
    return Service(url, process, token)


POSTGRES_ADMIN_URL = os.environ.get(
    "CARELINE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def create_postgres_database() -> str:
    """A new, empty PostgreSQL database on the machine's server; returns its URL."""
    import psycopg

    name = f"careline_test_{secrets.token_hex(6)}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")  # random hex name, not input
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{name}?sslmode=disable"


def drop_postgres_database(url: str) -> None:
    """Drop a database made by :func:`create_postgres_database` (closing its sessions)."""
    import psycopg

    name = url.rsplit("/", 1)[1].split("?", 1)[0]
    assert name.startswith("careline_test_")
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
