"""One settings schema: name, type, default, description; CLI > environment > file > default.

Every value is validated when loaded, and a bad one stops start-up with an error that
names the setting, where it came from, and what is allowed.
"""

from __future__ import annotations

import logging
import os
import tomllib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import platformdirs

from core.errors import CarelineError

log = logging.getLogger(__name__)


class ConfigError(CarelineError, ValueError):
    """A setting has a bad value; the message names the setting and its source."""

    plain_template = "configuration: {detail}"


@dataclass(frozen=True)
class Setting:
    """One configurable value."""

    name: str
    type: type
    default: Any
    description: str
    env: str
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] = ()
    # Other spellings operators write (e.g. the seed's ``aws_kms``), each mapped to its
    # choice; matched without regard to case.
    aliases: Mapping[str, str] = field(default_factory=dict, hash=False)
    # Checks and normalises the typed value (a URL's form, a fingerprint's digits); raises
    # ValueError with what is wrong, reported with the setting's name and source.
    check: Callable[[Any], Any] | None = field(default=None, hash=False, compare=False)

    def parse(self, raw: Any, source: str) -> Any:
        """Convert ``raw`` to this setting's type, or raise ConfigError naming it."""
        where = f"{self.name} ({source})"
        try:
            if self.type is bool:
                value: Any = _parse_bool(raw)
            elif self.type is int:
                if isinstance(raw, bool):
                    raise ValueError("not an integer")
                value = int(raw)
            elif self.type is Path:
                value = Path(str(raw)).expanduser()
            else:
                value = str(raw)
                value = self.aliases.get(value.strip().lower(), value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: {raw!r} is not a valid {self.type.__name__}") from None
        if self.minimum is not None and value < self.minimum:
            raise ConfigError(f"{where}: {value} is below the minimum {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise ConfigError(f"{where}: {value} is above the maximum {self.maximum}")
        if self.choices and value not in self.choices:
            spellings = [*self.choices, *(a for a in self.aliases if a not in self.choices)]
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(spellings)}")
        if self.check is not None:
            try:
                value = self.check(value)
            except ValueError as exc:
                raise ConfigError(f"{where}: {exc}") from None
        return value


def _parse_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ValueError(raw)


def default_data_dir() -> Path:
    """Per-user data folder (``~/.local/share/careline`` on Linux)."""
    return Path(platformdirs.user_data_dir("careline", appauthor=False))


def check_server_url(value: str) -> str:
    """An ``https://host[:port]`` address (the workstation sends its enrollment code there)."""
    parts = urlsplit(value.strip())
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"{value!r} is not an https://host[:port] address")
    return value.strip().rstrip("/")


def check_fingerprint(value: str) -> str:
    """A SHA-256 fingerprint: 64 hex digits, colons and spaces allowed; returned as lowercase
    digits only."""
    digits = value.replace(":", "").replace(" ", "").lower()
    if len(digits) != 64 or any(ch not in "0123456789abcdef" for ch in digits):
        raise ValueError(f"{value!r} is not a SHA-256 fingerprint (64 hex digits, colons allowed)")
    return digits


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("is empty")
    return value.strip()


# Silent enrollment (installers/README.md, "Silent install and mass enrollment"): which
# server to join, how to trust it, and the code. They decide which server this workstation
# trusts, so once the machine-wide configuration sets any of them, all of them come from it
# alone (a user's own file or environment cannot point a managed workstation elsewhere).
ENROLLMENT_SETTINGS = (
    "server_url", "server_ca_file", "server_ca_fingerprint", "enroll_code", "device_name",
)  # fmt: skip

DESKTOP_SCHEMA: tuple[Setting, ...] = (
    Setting(
        "data_dir",
        Path,
        None,
        "Folder holding the encrypted clinic database and its key slots.",
        "CARELINE_DATA_DIR",
    ),
    Setting(
        "auto_lock_minutes",
        int,
        10,
        "Minutes without keyboard or mouse input before the app signs the person out "
        "(HIPAA 164.312(a)(2)(iii)).",
        "CARELINE_AUTO_LOCK_MINUTES",
        minimum=1,
        maximum=240,
    ),
    Setting(
        "attachment_cache_mb",
        int,
        2048,
        "Megabytes of disk the workstation's encrypted copies of chart attachments may use; "
        "the least recently opened files past it are dropped (files not yet uploaded never).",
        "CARELINE_ATTACHMENT_CACHE_MB",
        minimum=0,
        maximum=1_000_000,
    ),
    Setting(
        "attachment_prefetch_percent",
        int,
        50,
        "Percent of attachment_cache_mb that files fetched ahead of need may take (booked "
        "and in-visit patients' first, then the newest), so they open offline; 0 turns the "
        "prefetch off. It uses only free room: it never evicts an opened file.",
        "CARELINE_ATTACHMENT_PREFETCH_PERCENT",
        minimum=0,
        maximum=90,
    ),
    Setting(
        "close_after_idle_hours",
        int,
        12,
        "Hours a signed-out workstation keeps the clinic open (database key in locked memory, "
        "so any staff member can sign in) before closing it; 0 closes it at every sign-out.",
        "CARELINE_CLOSE_AFTER_IDLE_HOURS",
        minimum=0,
        maximum=72,
    ),
    Setting(
        "break_glass_minutes",
        int,
        60,
        "Minutes an emergency (break-glass) opening of a chart lasts on this workstation.",
        "CARELINE_BREAK_GLASS_MINUTES",
        minimum=5,
        maximum=720,
    ),
    Setting(
        "password_file",
        Path,
        None,
        "File holding the password used to unlock without a person at the keyboard.",
        "CARELINE_PASSWORD_FILE",
    ),
    Setting(
        "server_url", str, None,
        "The clinic server this workstation joins at its first start (https://host:port).",
        "CARELINE_SERVER_URL", check=check_server_url,
    ),
    Setting(
        "server_ca_file", Path, None,
        "PEM file of the CA certificate that issued the server's TLS certificate (pinned).",
        "CARELINE_SERVER_CA_FILE",
    ),
    Setting(
        "server_ca_fingerprint", str, None,
        "SHA-256 fingerprint of that CA certificate (hex, colons allowed), instead of the file.",
        "CARELINE_SERVER_CA_FINGERPRINT", check=check_fingerprint,
    ),
    Setting(
        "enroll_code", str, None,
        "Enrollment code from 'careline-server admin enroll-code' for the first start.",
        "CARELINE_ENROLL_CODE", check=_not_blank,
    ),
    Setting(
        "device_name", str, None,
        "How the server lists this workstation (default: the computer's host name).",
        "CARELINE_DEVICE_NAME", check=_not_blank,
    ),
    Setting(
        "backup_dir",
        Path,
        None,
        "Folder for this workstation's scheduled backups (sealed to its recovery key); "
        "none: no scheduled backups.",
        "CARELINE_BACKUP_DIR",
    ),
    Setting(
        "backup_keep",
        int,
        7,
        "How many scheduled backups to keep in backup_dir (the oldest are deleted).",
        "CARELINE_BACKUP_KEEP",
        minimum=1,
        maximum=365,
    ),
    Setting(
        "backup_every_hours",
        int,
        24,
        "Hours between scheduled backups while the app is open.",
        "CARELINE_BACKUP_EVERY_HOURS",
        minimum=1,
        maximum=720,
    ),
)  # fmt: skip

CONFIG_FILE_NAME = "careline.toml"


@dataclass(frozen=True)
class MachineLayer:
    """The machine-wide configuration IT set (core.config.machine reads it): values already
    parsed, where each came from, and which of them a person's own settings cannot change."""

    values: Mapping[str, Any] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)
    locked: frozenset[str] = frozenset()


def read_toml_file(config_file: Path, known: Collection[str]) -> dict[str, Any]:
    """A config file's table; refuses bad TOML and unknown names, naming the file."""
    try:
        values = tomllib.loads(config_file.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {config_file} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"config file {config_file} cannot be read: {exc.strerror}") from None
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(
            f"config file {config_file}: unknown setting {unknown[0]!r} "
            f"(known: {', '.join(sorted(known))})"
        )
    return values


def load_settings(
    schema: tuple[Setting, ...],
    cli: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
    defaults: Mapping[str, Callable[[], Any]] | None = None,
    machine: MachineLayer | None = None,
) -> dict[str, Any]:
    """Resolve every setting in ``schema``: CLI > environment > file > machine > default.

    A setting the ``machine`` layer locks takes the machine's value whatever the CLI, the
    environment or the (person's own) file say; each value so ignored is logged as a
    warning naming the setting and where the machine's value comes from.
    """
    cli = cli or {}
    env = os.environ if env is None else env
    machine = machine or MachineLayer()
    file_values: dict[str, Any] = {}
    if config_file is not None and config_file.exists():
        file_values = read_toml_file(config_file, {s.name for s in schema})
    resolved: dict[str, Any] = {}
    for setting in schema:
        if setting.name in machine.locked:
            # Locked and left unset by the machine: the default, not the person's value.
            _warn_overridden(setting, machine, cli, env, file_values, config_file)
            resolved[setting.name] = machine.values.get(setting.name, setting.default)
        elif cli.get(setting.name) is not None:
            resolved[setting.name] = setting.parse(cli[setting.name], "command line")
        elif env.get(setting.env):
            resolved[setting.name] = setting.parse(env[setting.env], f"environment {setting.env}")
        elif setting.name in file_values:
            resolved[setting.name] = setting.parse(file_values[setting.name], str(config_file))
        elif setting.name in machine.values:
            resolved[setting.name] = machine.values[setting.name]
        elif defaults and setting.name in defaults:
            resolved[setting.name] = defaults[setting.name]()
        else:
            resolved[setting.name] = setting.default
    return resolved


@dataclass(frozen=True)
class IgnoredValue:
    """A person's own value of a setting the machine-wide configuration locks: not used."""

    name: str
    value: Any  # as the person gave it
    given_in: str  # "the command line", "environment NAME" or their config file
    locked_by: str  # where the machine's value comes from (file or registry key)


def ignored_values(
    schema: tuple[Setting, ...],
    machine: MachineLayer,
    cli: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> list[IgnoredValue]:
    """Every value the command line, the environment or the person's own config file gives
    a setting that ``machine`` locks (so :func:`load_settings` does not use it)."""
    env = os.environ if env is None else env
    file_values: dict[str, Any] = {}
    if config_file is not None and config_file.exists():
        file_values = read_toml_file(config_file, {s.name for s in schema})
    found: list[IgnoredValue] = []
    for setting in schema:
        if setting.name in machine.locked:
            found += _overridden(setting, machine, cli or {}, env, file_values, config_file)
    return found


def _overridden(
    setting: Setting,
    machine: MachineLayer,
    cli: Mapping[str, Any],
    env: Mapping[str, str],
    file_values: Mapping[str, Any],
    config_file: Path | None,
) -> list[IgnoredValue]:
    locked_by = machine.sources.get(setting.name, "machine configuration")
    attempts = []
    if cli.get(setting.name) is not None:
        given = cli[setting.name]
        attempts.append(IgnoredValue(setting.name, given, "the command line", locked_by))
    if env.get(setting.env):
        attempts.append(
            IgnoredValue(setting.name, env[setting.env], f"environment {setting.env}", locked_by)
        )
    if setting.name in file_values:
        attempts.append(
            IgnoredValue(setting.name, file_values[setting.name], str(config_file), locked_by)
        )
    return attempts


def _warn_overridden(
    setting: Setting,
    machine: MachineLayer,
    cli: Mapping[str, Any],
    env: Mapping[str, str],
    file_values: Mapping[str, Any],
    config_file: Path | None,
) -> None:
    """Log each attempt to change a locked setting (a person cannot fix the machine file,
    so it is not an error: they are told why their value has no effect; the app also says
    so in its status bar, app/locked_settings.py)."""
    for ignored in _overridden(setting, machine, cli, env, file_values, config_file):
        log.warning(
            "%s from %s is ignored: the machine-wide configuration (%s) locks it; "
            "ask IT to change it there",
            ignored.name, ignored.given_in, ignored.locked_by,
        )  # fmt: skip
