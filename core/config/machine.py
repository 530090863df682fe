"""The machine-wide configuration IT deploys (silent install and mass enrollment).

Where it is read from, first found value winning per setting:

* Windows: the registry values under ``HKLM\\SOFTWARE\\Policies\\Careline`` (Group Policy),
  then ``HKLM\\SOFTWARE\\Careline`` (the MSI writes these), then
  ``%ProgramData%\\Careline\\careline.toml``;
* macOS: ``/Library/Application Support/Careline/careline.toml``;
* Linux and others: ``/etc/careline/careline.toml``;
* ``CARELINE_MACHINE_CONFIG`` names another file, only on a computer IT does not manage:
  where the platform's file exists (or, on Windows, the registry holds Careline values)
  it is ignored with a warning, because anyone can set it in their own environment and it
  would replace IT's locks with theirs. Otherwise that file alone is read (and the Windows
  registry is not), for a test or a trial run.

Locked settings win over a person's own ``careline.toml``, their environment and the
command line alike (an admin script changes the machine file, not the lock). They are
policy, not a sandbox: a person who may run programs of their own can run another copy
of Careline. On Windows ``%ProgramData%`` is read from the process environment, which a
person can change; IT that relies on locks there should use the registry values (Group
Policy), which are read first.

It holds any desktop setting of :data:`core.config.settings.DESKTOP_SCHEMA` (defaults a
person's own ``careline.toml`` in the data folder may change) and ``locked``, a list of
setting names a person may not change. The enrollment settings
(:data:`core.config.settings.ENROLLMENT_SETTINGS`) are locked as a group as soon as the
machine configuration sets any of them. A bad value stops start-up with an error naming
the setting and the file (or registry key).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.config.settings import (
    CONFIG_FILE_NAME,
    DESKTOP_SCHEMA,
    ENROLLMENT_SETTINGS,
    ConfigError,
    MachineLayer,
    Setting,
    read_toml_file,
)

log = logging.getLogger(__name__)

MACHINE_CONFIG_ENV = "CARELINE_MACHINE_CONFIG"
LOCKED_KEY = "locked"
# The data folder holds the person's own config file; locking it would make no sense.
UNLOCKABLE = frozenset({"data_dir"})


def machine_config_path(env: Mapping[str, str] | None = None) -> Path:
    """The machine-wide file: the platform's, or the one ``CARELINE_MACHINE_CONFIG`` names
    when the platform has none (module docstring)."""
    env = os.environ if env is None else env
    platform = platform_config_path(env)
    if env.get(MACHINE_CONFIG_ENV):
        if not platform.is_file():
            return Path(env[MACHINE_CONFIG_ENV]).expanduser()
        _ignore_override(platform)
    return platform


def _ignore_override(managed_by: object) -> None:
    log.warning(
        "%s is ignored: this computer's machine-wide configuration (%s) is IT's, and a "
        "person's environment cannot replace it",
        MACHINE_CONFIG_ENV, managed_by,
    )  # fmt: skip


def platform_config_path(env: Mapping[str, str]) -> Path:
    """Where this platform keeps the machine-wide file IT deploys."""
    if sys.platform == "win32":
        program_data = env.get("ProgramData") or env.get("PROGRAMDATA") or r"C:\ProgramData"
        return Path(program_data) / "Careline" / CONFIG_FILE_NAME
    if sys.platform == "darwin":
        return Path("/Library/Application Support/Careline") / CONFIG_FILE_NAME
    return Path("/etc/careline") / CONFIG_FILE_NAME


def load_machine_config(
    env: Mapping[str, str] | None = None,
    schema: tuple[Setting, ...] = DESKTOP_SCHEMA,
    registry: Mapping[str, tuple[str, str]] | None = None,
) -> MachineLayer:
    """Read and validate the machine-wide configuration (empty if there is none).

    ``registry`` maps a setting name to (value, registry key) as
    :func:`core.config.windows_registry.read_values` returns them; by default it is read on
    Windows only; when it holds Careline values, ``CARELINE_MACHINE_CONFIG`` is ignored.
    """
    env = os.environ if env is None else env
    if registry is None:
        registry = {}
        if sys.platform == "win32":
            from core.config import windows_registry

            registry = windows_registry.read_values([s.name for s in schema] + [LOCKED_KEY])
            if registry and env.get(MACHINE_CONFIG_ENV):
                _ignore_override(next(iter(registry.values()))[1])
                env = {k: v for k, v in env.items() if k != MACHINE_CONFIG_ENV}
    path = machine_config_path(env)
    raw: dict[str, tuple[Any, str]] = {}
    if path.is_file():
        known = [s.name for s in schema] + [LOCKED_KEY]
        for name, value in read_toml_file(path, known).items():
            raw[name] = (value, str(path))
    for name, (value, where) in registry.items():
        raw[name] = (value, where)  # the registry (Group Policy first) beats the file
    by_name = {s.name: s for s in schema}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, (value, where) in raw.items():
        if name == LOCKED_KEY:
            continue
        parsed = by_name[name].parse(value, where)
        if isinstance(parsed, Path) and not parsed.is_absolute() and where == str(path):
            # IT writes paths relative to the file it deploys, not to whatever folder the
            # app happens to start in.
            parsed = path.parent / parsed
        values[name] = parsed
        sources[name] = where
    locked = _locked(raw.get(LOCKED_KEY), set(by_name))
    if any(name in values for name in ENROLLMENT_SETTINGS):
        locked |= set(ENROLLMENT_SETTINGS)
        for name in ENROLLMENT_SETTINGS:
            sources.setdefault(name, _first_source(sources, ENROLLMENT_SETTINGS))
    _check_enrollment(values, sources)
    return MachineLayer(values, sources, frozenset(locked))


def _locked(entry: tuple[Any, str] | None, known: set[str]) -> set[str]:
    """The ``locked`` list: TOML array of names, or (registry) names separated by commas."""
    if entry is None:
        return set()
    value, where = entry
    if isinstance(value, str):
        names: list[Any] = [n.strip() for n in value.replace("\n", ",").split(",") if n.strip()]
    elif isinstance(value, list):
        names = value
    else:
        raise ConfigError(f"{LOCKED_KEY} ({where}): must be a list of setting names")
    for name in names:
        if not isinstance(name, str) or name not in known:
            raise ConfigError(
                f"{LOCKED_KEY} ({where}): {name!r} is not a setting "
                f"(known: {', '.join(sorted(known))})"
            )
        if name in UNLOCKABLE:
            raise ConfigError(
                f"{LOCKED_KEY} ({where}): {name} cannot be locked (the person's own "
                "config file lives in it); set it in the machine configuration as a default"
            )
    return set(names)


def _first_source(sources: Mapping[str, str], names: tuple[str, ...]) -> str:
    return next((sources[n] for n in names if n in sources), "machine configuration")


def _check_enrollment(values: Mapping[str, Any], sources: Mapping[str, str]) -> None:
    """An enrollment code is useless without a server to redeem it at, and the server is
    trusted only through a pinned CA: say which setting is missing."""
    if "enroll_code" not in values:
        return
    where = sources["enroll_code"]
    if "server_url" not in values:
        raise ConfigError(f"server_url ({where}): missing; enroll_code needs the server's URL")
    if "server_ca_file" not in values and "server_ca_fingerprint" not in values:
        raise ConfigError(
            f"server_ca_fingerprint ({where}): missing; give server_ca_fingerprint or "
            "server_ca_file so the workstation knows the server before sending it the code"
        )
