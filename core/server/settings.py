"""careline-server's settings: one schema, validated at start-up (names operators know)."""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import platformdirs

from core.config.logs import log_settings
from core.config.settings import DESKTOP_SCHEMA, ConfigError, Setting, load_settings
from core.keys.providers import SERVER_KEY_SETTINGS
from core.server.postgres.urls import check_url, ssl_mode
from core.server.proxy_protocol import parse_networks
from core.server.tls_certificate import parse_tls_names

SERVER_SCHEMA: tuple[Setting, ...] = (
    Setting("data_dir", Path, None, "Server data folder.", "CARELINE_DATA_DIR"),
    Setting(
        "DATABASE_URL", str, None,
        "PostgreSQL connection URL; unset: the embedded SQLCipher store.", "DATABASE_URL",
    ),
    Setting(
        "ENABLE_DATABASE_TDE", bool, True,
        "Encrypt clinical data before it reaches the database (cannot be turned off).",
        "ENABLE_DATABASE_TDE",
    ),
    Setting(
        "DATABASE_SSL_MODE", str, None,
        "libpq sslmode for DATABASE_URL (default verify-full); an sslmode in the URL "
        "itself must agree with it. The CA to verify against: sslrootcert= in the URL.",
        "DATABASE_SSL_MODE",
        choices=("disable", "allow", "prefer", "require", "verify-ca", "verify-full"),
    ),
    Setting(
        "STORAGE_BACKEND", str, "filesystem", "Where attachments go.", "STORAGE_BACKEND",
        choices=("filesystem", "s3"),
    ),
    Setting("S3_BUCKET", str, None, "Bucket for attachments (STORAGE_BACKEND=s3).", "S3_BUCKET"),
    Setting("S3_ENDPOINT_URL", str, None, "S3 endpoint (non-AWS or tests).", "S3_ENDPOINT_URL"),
    Setting(
        "S3_ENCRYPTION_THRESHOLD", int, 8 * 1024 * 1024,
        "Attachments at least this large upload in multipart.", "S3_ENCRYPTION_THRESHOLD",
        minimum=5 * 1024 * 1024, maximum=5 * 1024**3,
    ),
    Setting(
        "ENABLE_MEMORY_LOCKING", bool, True,
        "Lock key memory in RAM (mlock); true: failing to is a start-up error naming the "
        "limit to raise (RLIMIT_MEMLOCK); false: keys may be swapped to disk (a warning is "
        "logged).", "ENABLE_MEMORY_LOCKING",
    ),
    Setting(
        "ENABLE_CONSTANT_TIME_OPS", bool, True,
        "Secrets are always compared with hmac.compare_digest; only true is accepted.",
        "ENABLE_CONSTANT_TIME_OPS",
    ),
    Setting(
        "SNAPSHOT_IMAGES", bool, True,
        "Offer a joining workstation a large clinic (5,000 records or more) as one file, "
        "built in the background, instead of record pages: about a seventh of the "
        "workstation's CPU. false: pages only, for workstations on a link slower than about "
        "50 Mbit/s, "
        "where the file's bytes (about twice the pages') take longer than the work they save.",
        "SNAPSHOT_IMAGES",
    ),
    Setting(
        "METRICS_TOKEN", str, None,
        "Bearer token a Prometheus scraper sends for /metrics; unset: /metrics answers "
        "clients on this machine (loopback) only.", "METRICS_TOKEN",
    ),
    Setting(
        "PROXY_PROTOCOL_FROM", str, None,
        "Addresses or networks of TCP load balancers sending PROXY protocol v2 headers "
        "(HAProxy send-proxy-v2), comma-separated: their connections must begin with one, "
        "and the client it names is the one rate-limited and logged; unset: no PROXY "
        "header is read.", "PROXY_PROTOCOL_FROM",
    ),
    Setting(
        "TLS_NAMES", str, None,
        "DNS names and IP addresses the generated TLS certificate must also name, "
        "comma-separated: the name workstations use in the server address, a load "
        "balancer's name or address. The host's own names and addresses are always named.",
        "TLS_NAMES",
    ),
    Setting(
        "SECURITY_AUDIT_LOG", Path, None,
        "Append security events (failed sign-ins, enrollments, revocations, key changes, "
        "admin actions, refused sync requests) to this file, one JSON line each, mode 0600.",
        "SECURITY_AUDIT_LOG",
    ),
    *log_settings(""),
    *SERVER_KEY_SETTINGS,
)  # fmt: skip


# Names other programs on a server machine read that look like a server setting; never
# taken for a misspelling of one.
OTHER_PROGRAMS_NAMES = frozenset({
    "CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET",  # systemd
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION",
    "AWS_PROFILE", "AWS_CA_BUNDLE",  # boto3
    "VAULT_CACERT", "VAULT_NAMESPACE", "VAULT_SKIP_VERIFY",  # the vault CLI, hvac
})  # fmt: skip
# SequenceMatcher ratio from which an unknown name is taken for a misspelt setting: one
# letter added, dropped, swapped or changed in names of 9 letters or more (DATABASE_URI,
# KMS_PROVIDR, PROXY_PROTOCOL_FORM), not another word (AWS_DEFAULT_REGION: 0.71).
NEAR_MISS_CUTOFF = 0.85


def misspelt_settings(env: Mapping[str, str]) -> list[tuple[str, str]]:
    """Each environment name that is no setting but a near miss of one: (name, setting).

    The environment holds many names of other programs, so only near misses count: a
    setting's name with a letter or two wrong, in another case, or its words reordered.
    A setting's name followed by ``_SOMETHING`` (boto3's AWS_ENDPOINT_URL_S3) is another
    program's name, not a misspelling.
    """
    settings = [s.env for s in SERVER_SCHEMA]
    known = {*settings, *(s.env for s in DESKTOP_SCHEMA), *OTHER_PROGRAMS_NAMES}
    words = {_words(name): name for name in settings}
    found: list[tuple[str, str]] = []
    for name in sorted(env):
        if name in known or any(name.startswith(f"{k}_") for k in settings):
            continue
        upper = name.upper()
        close = difflib.get_close_matches(upper, settings, n=1, cutoff=NEAR_MISS_CUTOFF)
        if close:
            found.append((name, close[0]))
        elif _words(upper) in words:
            found.append((name, words[_words(upper)]))
    return found


def _words(name: str) -> str:
    return "_".join(sorted(w for w in name.split("_") if w))


def check_setting_names(env: Mapping[str, str]) -> None:
    """Refuse a misspelt setting (ConfigError naming it and the setting it resembles): the
    server would otherwise start without it, e.g. on the embedded store with a local key
    when DATABASE_URI and KMS_PROVIDR were meant."""
    found = misspelt_settings(env)
    if found:
        raise ConfigError(
            "; ".join(
                f"{name} is not a setting (did you mean {setting}?)" for name, setting in found
            )
            + ' (README.md, "Server settings (environment variables)")'
        )


def default_server_dir() -> Path:
    """Per-user data folder of the server (set CARELINE_DATA_DIR for a system service)."""
    return Path(platformdirs.user_data_dir("careline-server", appauthor=False))


def load_server_settings(
    cli: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Resolve and cross-check every server setting; ConfigError names the culprit."""
    check_setting_names(os.environ if env is None else env)
    settings = load_settings(SERVER_SCHEMA, cli=cli, env=env)
    settings["data_dir"] = settings["data_dir"] or default_server_dir()
    if settings["DATABASE_URL"]:
        check_url(settings["DATABASE_URL"])
        settings["DATABASE_SSL_MODE"] = ssl_mode(
            settings["DATABASE_URL"], settings["DATABASE_SSL_MODE"]
        )
    if not settings["ENABLE_DATABASE_TDE"]:
        raise ConfigError(
            "ENABLE_DATABASE_TDE=false is not allowed: Careline never stores clinical data "
            "unencrypted"
        )
    if not settings["ENABLE_CONSTANT_TIME_OPS"]:
        raise ConfigError(
            "ENABLE_CONSTANT_TIME_OPS=false is not allowed: Careline always compares secrets "
            "(tokens, verifiers) with hmac.compare_digest, and looks enrollment codes up by "
            "their SHA-256 digest only, and that cannot be turned off. (Python promises no "
            "more than that: compare_digest does not stop at the first difference, but no "
            "Python code is guaranteed constant-time.)"
        )
    if settings["PROXY_PROTOCOL_FROM"] is not None:
        try:
            parse_networks(settings["PROXY_PROTOCOL_FROM"])
        except ValueError as exc:
            raise ConfigError(f"PROXY_PROTOCOL_FROM: {exc}") from None
    if settings["TLS_NAMES"] is not None:
        try:
            parse_tls_names(settings["TLS_NAMES"])
        except ValueError as exc:
            raise ConfigError(f"TLS_NAMES: {exc}") from None
    if settings["STORAGE_BACKEND"] == "s3" and not settings["S3_BUCKET"]:
        raise ConfigError("S3_BUCKET is required when STORAGE_BACKEND=s3")
    return settings
