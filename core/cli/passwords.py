"""Where an unattended command gets its password: stdin, a file, or a prompt."""

from __future__ import annotations

import getpass
import os
import stat
import sys
from pathlib import Path

from core.config.settings import ConfigError

PASSWORD_FILE_ENV = "CARELINE_PASSWORD_FILE"  # noqa: S105 (a variable name, not a secret)


def read_password(
    from_stdin: bool, password_file: Path | None, source: str = PASSWORD_FILE_ENV
) -> str | None:
    """The password from ``--password-stdin`` or ``CARELINE_PASSWORD_FILE``, else None
    (``source`` names where the file was given, in messages).

    Only the first line counts and its line ending is dropped. The returned ``str`` is
    immutable: Python cannot wipe it, so callers drop it as soon as the slot is open.
    """
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise ConfigError("--password-stdin: standard input was empty")
        return line.rstrip("\r\n")
    if password_file is not None:
        try:
            text = password_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read {password_file}: {exc.strerror}") from None
        lines = text.splitlines()
        if not lines or not lines[0]:
            raise ConfigError(f"{source}: {password_file} is empty")
        _warn_if_others_may_read(password_file, source)
        return lines[0]
    return None


def _warn_if_others_may_read(path: Path, source: str) -> None:
    """Say on stderr when other users of this computer may read the password file. A
    warning, not a refusal: a container's secrets are often mounted 0444 inside a
    container nobody else uses, and a scheduled job that stopped would be worse."""
    if os.name != "posix":
        return  # Windows: the file's ACLs decide, which a mode cannot show
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return  # it was read a moment ago; nothing to add
    if mode & 0o044:
        sys.stderr.write(
            f"careline: warning: {source}: other users of this computer may read "
            f"{path} (mode {mode:04o}); make it yours alone: chmod 600 {path}\n"
        )


def read_stdin_line(flag: str, what: str) -> str:
    """The next line of standard input (line ending dropped), for a command that reads more
    than one secret from it; ``flag`` and ``what`` name the missing line in the error."""
    line = sys.stdin.readline()
    if not line or not line.rstrip("\r\n"):
        raise ConfigError(f"{flag}: standard input has no {what} line")
    return line.rstrip("\r\n")


def _require_terminal(what: str, flags: str) -> None:
    if not sys.stdin.isatty():
        raise ConfigError(f"no {what} given: use {flags}, or run in a terminal")


def prompt_secret(prompt: str, what: str, flags: str) -> str:
    """Ask once on the terminal without echo; refuse when there is no terminal (naming the
    ``flags`` that give ``what`` instead)."""
    _require_terminal(what, flags)
    value = getpass.getpass(prompt)
    if not value:
        raise ConfigError(f"no {what} given")
    return value


def prompt_new_password(prompt: str = "New password: ") -> str:
    """Ask twice on the terminal; refuse when there is no terminal."""
    _require_terminal("password", f"--password-stdin or set {PASSWORD_FILE_ENV}")
    first = getpass.getpass(prompt)
    if getpass.getpass("Repeat password: ") != first:
        raise ConfigError("the two passwords differ")
    return first


def env_password_file() -> Path | None:
    """The password file named in the environment, if any."""
    value = os.environ.get(PASSWORD_FILE_ENV)
    return Path(value) if value else None
