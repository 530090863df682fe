"""DATABASE_URL checks that need no database driver (run when settings load)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from core.config.settings import ConfigError


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host += f":{parts.port}"
    user = f"{parts.username}:***@" if parts.username else "***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


def check_url(url: str) -> None:
    """ConfigError unless ``url`` looks like a PostgreSQL URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres") or not parts.path.strip("/"):
        raise ConfigError(
            f"DATABASE_URL: {redact(url)!r} is not a PostgreSQL URL "
            "(postgresql://user@host:port/database)"
        )
