"""One settings schema: name, type, default, description; CLI > environment > file > default.

Every value is validated when loaded, and a bad one stops start-up with an error that
names the setting, where it came from, and what is allowed.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from core.errors import CarelineError


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
)

CONFIG_FILE_NAME = "careline.toml"


def load_settings(
    schema: tuple[Setting, ...],
    cli: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
    defaults: Mapping[str, Callable[[], Any]] | None = None,
) -> dict[str, Any]:
    """Resolve every setting in ``schema`` (CLI > environment > file > default)."""
    cli = cli or {}
    env = os.environ if env is None else env
    file_values: dict[str, Any] = {}
    if config_file is not None and config_file.exists():
        try:
            file_values = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {config_file} is not valid TOML: {exc}") from None
        known = {s.name for s in schema}
        unknown = sorted(set(file_values) - known)
        if unknown:
            raise ConfigError(
                f"config file {config_file}: unknown setting {unknown[0]!r} "
                f"(known: {', '.join(sorted(known))})"
            )
    resolved: dict[str, Any] = {}
    for setting in schema:
        if cli.get(setting.name) is not None:
            resolved[setting.name] = setting.parse(cli[setting.name], "command line")
        elif env.get(setting.env):
            resolved[setting.name] = setting.parse(env[setting.env], f"environment {setting.env}")
        elif setting.name in file_values:
            resolved[setting.name] = setting.parse(file_values[setting.name], str(config_file))
        elif defaults and setting.name in defaults:
            resolved[setting.name] = defaults[setting.name]()
        else:
            resolved[setting.name] = setting.default
    return resolved
