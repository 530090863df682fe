"""A live careline server for tests: real ClinicServer, real uvicorn over TLS, free port."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from core.cli.server import ensure_tls
from core.crypto.kdf import FAST_PARAMS
from core.keys.providers import provider_from_settings
from core.server.api import create_app
from core.server.service import ClinicServer
from core.server.settings import load_server_settings
from tests.services import free_port


def make_server(data_dir: Path) -> ClinicServer:
    """A server on the embedded store with the local key provider."""
    settings = load_server_settings(cli={"data_dir": data_dir}, env={})
    return ClinicServer(data_dir, provider_from_settings(settings, data_dir), FAST_PARAMS)


@dataclass
class Live:
    """A running server: its URL, the CA to pin, and the service object."""

    url: str
    ca_pem: str
    server: ClinicServer


@contextmanager
def live_server(data_dir: Path) -> Iterator[Live]:
    """Serve ``data_dir`` over HTTPS on 127.0.0.1 until the block ends."""
    server = make_server(data_dir)
    cert, key = ensure_tls(data_dir, "127.0.0.1")
    port = free_port()
    config = uvicorn.Config(
        create_app(server),
        host="127.0.0.1",
        port=port,
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
        log_level="warning",
        lifespan="off",
    )
    web = uvicorn.Server(config)
    thread = threading.Thread(target=web.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not web.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield Live(f"https://127.0.0.1:{port}", cert.read_text(), server)
    finally:
        web.should_exit = True
        thread.join(timeout=20)
        server.close()
