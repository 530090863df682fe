"""DATABASE_URL checks that need no database driver (run when settings load)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit, urlunsplit

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


DEFAULT_SSL_MODE = "verify-full"


def ssl_mode(url: str, setting: str | None) -> str:
    """The sslmode to connect with: the URL's or DATABASE_SSL_MODE (default verify-full).

    Both set and different is refused rather than one silently winning: an operator who
    sets DATABASE_SSL_MODE=verify-full must not be left on an unverified connection by an
    ``sslmode=disable`` copied into the URL (or the other way round).
    """
    in_url = parse_qs(urlsplit(url).query).get("sslmode")
    if not in_url:
        return setting or DEFAULT_SSL_MODE
    if len(set(in_url)) > 1:
        raise ConfigError(f"DATABASE_URL: sslmode is given more than once ({', '.join(in_url)})")
    if setting is not None and setting != in_url[0]:
        raise ConfigError(
            f"DATABASE_URL says sslmode={in_url[0]} but DATABASE_SSL_MODE={setting}: they "
            "contradict each other; keep one (or make them agree)"
        )
    return in_url[0]
