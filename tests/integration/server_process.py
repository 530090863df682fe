"""``careline-server run`` as a real child process on 127.0.0.1, and ``careline`` commands.

Shared by the tests that need the server in its own process (the app's tests start the
desktop app's own process too).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from core.server.settings import SERVER_SCHEMA
from tests.conftest import PASSWORD
from tests.services import free_port

REPO = Path(__file__).resolve().parents[2]


def child_env() -> dict[str, str]:
    """No server setting (embedded store, local key file), no OS keyring, unbuffered
    output, Qt offscreen (for the desktop app's process)."""
    names = {s.env for s in SERVER_SCHEMA} | {"CREDENTIALS_DIRECTORY"}
    env = {k: v for k, v in os.environ.items() if k not in names}
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    env["PYTHONUNBUFFERED"] = "1"
    env["QT_QPA_PLATFORM"] = "offscreen"
    return env


def careline(
    data_dir: Path, *args: str, user: str = "admin", timeout: float = 120, module: str = "app.entry"
) -> subprocess.CompletedProcess[str]:
    """One ``careline`` command as ``user`` (password PASSWORD on stdin). ``module``: the
    program (``tests.releases.newer_cli`` runs it as the next release would)."""
    return subprocess.run(
        [sys.executable, "-m", module, "--data-dir", str(data_dir), "--user", user,
         "--password-stdin", *args],
        input=PASSWORD + "\n", capture_output=True, text=True, cwd=REPO, env=child_env(),
        timeout=timeout, check=False,
    )  # fmt: skip


def current(data_dir: Path, *args: str, module: str = "app.entry") -> Any:
    """A current ``careline --json`` command as admin; its JSON document (exit 0 asserted).
    ``module``: as for :func:`careline`."""
    result = careline(data_dir, "--json", *args, module=module)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def server_admin(data_dir: Path, env: Mapping[str, str], *args: str, stdin: str = "") -> Any:
    """A current ``careline-server --json admin ...`` command; its JSON document."""
    result = subprocess.run(
        [sys.executable, "-m", "core.cli.server", "--data-dir", str(data_dir), "--json",
         "admin", *args],
        input=stdin, capture_output=True, text=True, cwd=REPO, env={**child_env(), **env},
        timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


SERVER = (sys.executable, "-m", "core.cli.server")


class ServerProcess:
    """``careline-server run`` on a fixed 127.0.0.1 port, restartable.

    ``program``: the command that is ``careline-server`` (default: this code's); ``env``:
    settings added to :func:`child_env` (e.g. DATABASE_URL); ``host``: the address it
    listens on (``0.0.0.0``: every address, as the shipped service does).
    """

    def __init__(
        self,
        data: Path,
        port: int,
        program: Sequence[str] = SERVER,
        env: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.data = data
        self.port = port
        self.host = host
        self.program = tuple(program)
        self.env = {**child_env(), **(env or {})}
        self.url = f"https://127.0.0.1:{port}"
        self.log = data.parent / f"server-{port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def ca_pem(self) -> str:
        """The server's generated TLS certificate, to pin."""
        return (self.data / "tls" / "server.pem").read_text()

    def start(self) -> None:
        """Start and wait until ``/ready`` answers over TLS (at most 30 s)."""
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [*self.program, "--data-dir", str(self.data), "run",
                 "--host", self.host, "--port", str(self.port)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                env=self.env,
            )  # fmt: skip
        cert = self.data / "tls" / "server.pem"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text(errors="replace")
            if cert.exists():
                try:
                    trust = ssl.create_default_context(cafile=str(cert))
                    if httpx.get(self.url + "/ready", verify=trust, timeout=2).status_code == 200:
                        return
                except (httpx.HTTPError, ssl.SSLError, OSError):
                    pass
            time.sleep(0.05)
        self.stop()  # no process left running behind a failed start
        raise AssertionError(f"server not ready:\n{self.log.read_text(errors='replace')}")

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """One other command of the same program on the same data dir and settings (an
        admin command, or ``run`` expected to stop by itself), PASSWORD on stdin."""
        return subprocess.run(
            [*self.program, "--data-dir", str(self.data), *args],
            input=PASSWORD + "\n", capture_output=True, text=True, cwd=REPO, env=self.env,
            timeout=timeout, check=False,
        )  # fmt: skip

    def kill(self) -> None:
        """SIGKILL, as a crash or power cut would."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """Terminate (then kill if it lingers)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


@contextmanager
def clinic_server(
    data: Path, clinic_name: str, env: Mapping[str, str] | None = None
) -> Iterator[tuple[ServerProcess, str]]:
    """A current server set up with its admin CLI (a clinic, an ``admin`` account with
    password PASSWORD), running on a free port until the block ends; the clinic id.
    ``env``: server settings for the admin commands and the server alike."""
    env = dict(env or {})
    server_admin(data, env, "init")
    clinic = server_admin(data, env, "clinic", "create", clinic_name)["id"]
    server_admin(
        data, env, "user", "add", clinic, "admin", "--role", "admin", stdin=PASSWORD + "\n"
    )
    running = ServerProcess(data, free_port(), env=env)
    running.start()
    try:
        yield running, clinic
    finally:
        running.stop()


def proxy_v2_header(client: tuple[str, int], server: tuple[str, int]) -> bytes:
    """The PROXY protocol v2 header HAProxy sends for a TCP/IPv4 connection."""
    addresses = socket.inet_aton(client[0]) + socket.inet_aton(server[0])
    addresses += struct.pack("!HH", client[1], server[1])
    return b"\r\n\r\n\x00\r\nQUIT\n" + struct.pack("!BBH", 0x21, 0x11, len(addresses)) + addresses


class Relay:
    """A TCP relay on 127.0.0.1 in front of a server: a client given the relay's address
    reaches the server through it, byte for byte (TLS passes through untouched).

    ``cut_when`` is asked as each new connection arrives: the first time it is true,
    ``on_cut`` runs (e.g. the server process is stopped) and from then on every connection
    is closed unanswered, as a server gone away would leave it. This is how a test makes a
    server go away at an exact step of a client's work, between two of its connections
    (e.g. once a marker file the client writes between them exists), on fast and slow
    machines alike.

    ``source``: the address the relay connects to the server from, as a load balancer on
    its own host (or a clinic's NAT) would: every client reaches the server from it.
    ``proxy_v2``: first send a PROXY protocol v2 header naming the client's address, as
    HAProxy's ``send-proxy-v2`` does.
    """

    def __init__(
        self,
        upstream: int,
        cut_when: Callable[[], bool] = lambda: False,
        on_cut: Callable[[], object] = lambda: None,
        source: str = "127.0.0.1",
        proxy_v2: bool = False,
    ) -> None:
        self.upstream = upstream
        self.source = source
        self.proxy_v2 = proxy_v2
        self._cut_when, self._on_cut = cut_when, on_cut
        self.cut = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self.url = f"https://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed: the relay's work is over
                return
            if not self.cut.is_set() and self._cut_when():
                self._on_cut()  # before this connection goes anywhere
                self.cut.set()
            if self.cut.is_set():
                client.close()
                continue
            try:
                server = socket.create_connection(
                    ("127.0.0.1", self.upstream), timeout=5, source_address=(self.source, 0)
                )
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            if self.proxy_v2:
                server.sendall(proxy_v2_header(client.getpeername(), server.getpeername()))
            with self._lock:
                self._open += [client, server]
                for source, sink in ((client, server), (server, client)):
                    pump = threading.Thread(target=self._pump, args=(source, sink), daemon=True)
                    self._threads.append(pump)
                    pump.start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
            sink.shutdown(socket.SHUT_WR)  # the other side's end of the stream
        except OSError:  # either side closed meanwhile
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Stop listening and close every connection passed on (the port is free again)."""
        with contextlib.suppress(OSError):  # wakes the accepting thread (close would not)
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._accepting.join(timeout=10)
        with self._lock:
            for end in self._open:
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                end.close()
            threads, self._threads, self._open = self._threads, [], []
        for pump in threads:
            pump.join(timeout=10)

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
