"""The desktop's settings as every entry point resolves them: command line > environment >
the person's own ``careline.toml`` in the data folder > the machine-wide configuration >
default, except that settings the machine configuration locks are always its own."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.config.machine import load_machine_config
from core.config.settings import (
    CONFIG_FILE_NAME,
    DESKTOP_SCHEMA,
    IgnoredValue,
    MachineLayer,
    default_data_dir,
    ignored_values,
    load_settings,
)

_DATA_DIR_ONLY = tuple(s for s in DESKTOP_SCHEMA if s.name == "data_dir")


def resolve_data_dir(
    given: Path | None,
    env: Mapping[str, str] | None = None,
    machine: MachineLayer | None = None,
) -> Path:
    """The data folder: ``given`` (--data-dir), else CARELINE_DATA_DIR, else the machine
    configuration's ``data_dir``, else the per-user default."""
    machine = load_machine_config(env) if machine is None else machine
    found = load_settings(_DATA_DIR_ONLY, cli={"data_dir": given}, env=env, machine=machine)
    return Path(found["data_dir"] or default_data_dir())


def load_desktop_settings(
    data_dir: Path,
    env: Mapping[str, str] | None = None,
    machine: MachineLayer | None = None,
) -> dict[str, Any]:
    """Every desktop setting for the clinic held in ``data_dir`` (already resolved)."""
    machine = load_machine_config(env) if machine is None else machine
    return load_settings(
        DESKTOP_SCHEMA,
        cli={"data_dir": data_dir},
        env=env,
        config_file=data_dir / CONFIG_FILE_NAME,
        machine=machine,
    )


def ignored_own_settings(
    data_dir: Path,
    env: Mapping[str, str] | None = None,
    machine: MachineLayer | None = None,
) -> list[IgnoredValue]:
    """The person's own values (their ``careline.toml`` in ``data_dir``, the environment)
    of settings the machine configuration locks: what :func:`load_desktop_settings` ignored."""
    machine = load_machine_config(env) if machine is None else machine
    return ignored_values(DESKTOP_SCHEMA, machine, env=env, config_file=data_dir / CONFIG_FILE_NAME)
