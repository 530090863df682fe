"""The container recipe (installers/container): no image is built here (no container
engine runs in this sandbox), so this checks what can be checked without one. The
Containerfile runs the server extra as a fixed non-root uid with a health check of the real
/health; the compose file gives the server only real settings, consistent with its
PostgreSQL and S3 services, and waits for them to be healthy; the health-check script and
the master-key secret work against a real server process."""

from __future__ import annotations

import base64
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from core.keys.providers.local import CREDENTIAL_NAME, KEY_FILE_NAME
from core.server.settings import SERVER_SCHEMA, load_server_settings
from tests.integration.server_process import REPO, child_env, clinic_server, server_admin

FOLDER = REPO / "installers" / "container"
HEALTHCHECK = FOLDER / "healthcheck.py"
# Environment the compose file gives the server that are not Careline settings.
NOT_SETTINGS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "CREDENTIALS_DIRECTORY"}


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Containerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (FOLDER / "Containerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _final_stage() -> list[tuple[str, str]]:
    steps = _instructions()
    starts = [i for i, (word, _) in enumerate(steps) if word == "FROM"]
    assert len(starts) >= 2, "a multi-stage build: tools stay out of the final image"
    return steps[starts[-1] :]


def test_the_image_runs_the_server_as_a_fixed_non_root_user() -> None:
    final = _final_stage()
    users = [rest for word, rest in final if word == "USER"]
    assert users, "no USER: the server would run as root"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) >= 1000, users[-1]
    assert gid.isdigit() and int(gid) >= 1000, users[-1]
    setup = " ".join(rest for word, rest in final if word == "RUN")
    assert f"--uid {uid}" in setup and f"--gid {gid}" in setup
    # Nothing after USER switches back to root.
    after = final[[w for w, _ in final].index("USER") :]
    assert all(word != "RUN" for word, _ in after)


def test_the_image_installs_the_server_extra_only_and_serves_on_the_exposed_port() -> None:
    steps = _instructions()
    installs = [rest for word, rest in steps if word == "RUN" and "pip install" in rest]
    assert any('".[server]"' in rest for rest in installs), installs
    assert not any(extra in rest for rest in installs for extra in ("gui", "PySide6", "dev]"))
    final = dict(_final_stage())
    assert final["ENTRYPOINT"] == '["careline-server"]'
    command = yaml.safe_load(final["CMD"])
    assert command[0] == "run"
    port = command[command.index("--port") + 1]
    assert final["EXPOSE"] == port
    data_dir = re.search(r"CARELINE_DATA_DIR=(\S+)", final["ENV"])
    assert data_dir, final["ENV"]
    assert yaml.safe_load(final["VOLUME"]) == [data_dir.group(1)]
    # The health check runs the script this module tests below, with Python (no curl).
    assert final["HEALTHCHECK"].endswith('CMD ["python", "/usr/local/bin/careline-healthcheck"]')
    assert "COPY installers/container/healthcheck.py /usr/local/bin/careline-healthcheck" in {
        f"COPY {rest}" for word, rest in steps if word == "COPY"
    }


def test_the_build_context_keeps_out_everything_the_image_does_not_copy() -> None:
    ignore = (FOLDER / "Containerfile.dockerignore").read_text().splitlines()
    assert ignore[ignore.index("*")] == "*"  # everything out, then the copied parts back in
    copied = {rest.split()[0] for word, rest in _instructions() if word == "COPY" and
              not rest.startswith("--from")}  # fmt: skip
    for source in copied - {"."}:
        kept = f"!{source}/" if (REPO / source).is_dir() else f"!{source}"
        assert kept in ignore, source


def _compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((FOLDER / "compose.yaml").read_text())
    return document


def test_compose_gives_the_server_real_settings_only_and_they_validate() -> None:
    server = _compose()["services"]["server"]
    env: dict[str, str] = {k: str(v) for k, v in server["environment"].items()}
    known = {s.env for s in SERVER_SCHEMA}
    assert set(env) - known - NOT_SETTINGS == set(), sorted(set(env) - known - NOT_SETTINGS)
    settings = load_server_settings(env={k: v for k, v in env.items() if k in known})
    assert settings["STORAGE_BACKEND"] == "s3"
    assert settings["DATABASE_URL"].startswith("postgresql://")


def test_compose_wires_the_server_to_its_database_store_and_secret() -> None:
    compose = _compose()
    services = compose["services"]
    env = services["server"]["environment"]
    database = urlsplit(env["DATABASE_URL"])
    pg = services["postgres"]["environment"]
    assert database.hostname == "postgres"
    assert (database.username, database.password) == (pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"])
    assert database.path == "/" + pg["POSTGRES_DB"]
    assert urlsplit(env["S3_ENDPOINT_URL"]).hostname == "minio"
    minio = services["minio"]["environment"]
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == (
        minio["MINIO_ROOT_USER"], minio["MINIO_ROOT_PASSWORD"],
    )  # fmt: skip
    assert f"store/{env['S3_BUCKET']}" in " ".join(services["bucket"]["command"])
    # The master key reaches the local provider as a credential file, as under systemd.
    assert services["server"]["secrets"] == [CREDENTIAL_NAME]
    assert env["CREDENTIALS_DIRECTORY"] == "/run/secrets"
    assert CREDENTIAL_NAME in compose["secrets"]
    build = services["server"]["build"]
    assert (FOLDER / build["context"] / build["dockerfile"]).resolve() == FOLDER / "Containerfile"


def test_compose_starts_the_server_after_healthy_dependencies() -> None:
    services = _compose()["services"]
    server = services["server"]
    for name, condition in server["depends_on"].items():
        if "healthcheck" in services[name]:
            assert condition == {"condition": "service_healthy"}, name
        else:  # the one-shot bucket job
            assert condition == {"condition": "service_completed_successfully"}, name
    assert set(server["depends_on"]) >= {"postgres", "minio"}
    for name in ("postgres", "minio", "server"):
        assert services[name]["healthcheck"]["test"][0] == "CMD", name
    assert services["server"]["healthcheck"]["test"][1:] == [
        "python", "/usr/local/bin/careline-healthcheck",
    ]  # fmt: skip
    memlock = server["ulimits"]["memlock"]
    assert memlock["soft"] >= 64 * 1024 * 1024


def _healthcheck(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK)], capture_output=True, text=True, timeout=30,
        env={**child_env(), **env}, check=False,
    )  # fmt: skip


def test_the_health_check_script_passes_on_a_real_server_and_fails_once_it_stops(
    tmp_path: Path,
) -> None:
    with clinic_server(tmp_path / "server", "Container Clinic") as (running, _):
        env = {
            "CARELINE_DATA_DIR": str(running.data),
            "CARELINE_HEALTH_URL": f"{running.url}/health",
        }
        healthy = _healthcheck(env)
        assert healthy.returncode == 0, healthy.stderr
    down = _healthcheck(env)
    assert down.returncode == 1
    assert f"careline-healthcheck: {running.url}/health:" in down.stderr


def test_the_master_key_secret_is_what_the_server_uses(tmp_path: Path) -> None:
    """compose's secret, made as its comment says (openssl rand -base64 32, with its
    newline), read through CREDENTIALS_DIRECTORY: no key file is made in the data dir."""
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    key = secrets_dir / CREDENTIAL_NAME
    key.write_text(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
    os.chmod(key, 0o600)
    data = tmp_path / "server"
    env = {"KMS_PROVIDER": "local", "CREDENTIALS_DIRECTORY": str(secrets_dir)}
    server_admin(data, env, "init")
    made = server_admin(data, env, "clinic", "create", "Secret Clinic")
    assert server_admin(data, env, "clinic", "list")[0]["id"] == made["id"]
    assert not (data / KEY_FILE_NAME).exists()
