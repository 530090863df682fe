"""careline-server on a PostgreSQL that takes only TLS (DATABASE_SSL_MODE, sslrootcert)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from core.config.settings import ConfigError
from tests.integration.server_fixtures import make_server
from tests.integration.server_process import ServerProcess, server_admin
from tests.postgres_tls import TlsPostgres
from tests.services import free_port


def _tls_in_use(url: str) -> bool:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
    return bool(row and row[0])


def _fresh_database(tls_postgres: TlsPostgres, name: str) -> str:
    admin = tls_postgres.url(sslmode="require")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")  # a fixed test name
        conn.execute(f"CREATE DATABASE {name}")
    return name


@pytest.mark.parametrize("mode", ["require", "verify-full"])
def test_server_runs_on_tls_postgres(mode: str, tls_postgres: TlsPostgres, tmp_path: Path) -> None:
    database = _fresh_database(tls_postgres, f"careline_tls_{mode.replace('-', '_')}")
    # DATABASE_SSL_MODE, not the URL, chooses the mode; the CA goes in the URL.
    params = {"sslrootcert": str(tls_postgres.ca_file)} if mode == "verify-full" else {}
    env = {"DATABASE_URL": tls_postgres.url(database, **params), "DATABASE_SSL_MODE": mode}
    data = tmp_path / "server"
    server_admin(data, env, "init")
    clinic = server_admin(data, env, "clinic", "create", "TLS Clinic")
    running = ServerProcess(data, free_port(), env=env)
    running.start()
    running.stop()
    assert server_admin(data, env, "clinic", "list") == [clinic]
    assert _tls_in_use(tls_postgres.url(database, sslmode=mode, **params))


def test_a_wrong_ca_is_refused_clearly(tls_postgres: TlsPostgres, tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": tls_postgres.url(sslrootcert=str(tls_postgres.wrong_ca_file)),
        "DATABASE_SSL_MODE": "verify-full",
    }
    running = ServerProcess(tmp_path / "server", free_port(), env=env)
    # init, as a new server's first command: other admin commands refuse a folder without
    # the master key file before they connect.
    result = running.run("admin", "init")
    assert result.returncode == 2, result.stderr
    assert "DATABASE_URL: cannot connect to" in result.stderr
    assert "sslmode=verify-full" in result.stderr
    assert "certificate verify failed" in result.stderr and "sslrootcert" in result.stderr
    assert "Traceback" not in result.stderr


def test_without_tls_a_tls_only_server_refuses_with_its_reason(
    tls_postgres: TlsPostgres, tmp_path: Path
) -> None:
    settings = {"DATABASE_URL": tls_postgres.url(), "DATABASE_SSL_MODE": "disable"}
    with pytest.raises(ConfigError, match=r"no pg_hba\.conf entry.*no encryption"):
        make_server(tmp_path / "server", settings)
