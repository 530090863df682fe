"""Whether a data folder holds a careline-server, checked before a command that only uses an
existing server opens it: opening makes a new registry and a new master key wherever there
are none, so a mistyped or forgotten ``--data-dir`` would otherwise back up, or issue codes
from, an empty server of its own."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from core.config.settings import ConfigError
from core.keys.providers.factory import local_key_file
from core.server.service import REGISTRY_KEY_FILE

# Where the careline-server package (and the container image) keep the server's data; the
# systemd unit passes it as --data-dir.
PACKAGE_DATA_DIR = Path("/var/lib/careline-server")
REGISTRY_FILE = "registry.db"


class NoServerError(ConfigError):
    """The data folder holds no server (or not its master key); nothing was created."""


def holds_server(settings: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> bool:
    """True when opening the server on ``settings`` would create nothing new: the embedded
    registry is there (or the registry is in PostgreSQL), and so is the master key file
    when the master key comes from one."""
    return _missing(settings, environ) is None


def require_server(
    settings: Mapping[str, Any], given_by: str, environ: Mapping[str, str] | None = None
) -> None:
    """Refuse (NoServerError) a data folder that holds no server, naming it, where it came
    from (``given_by``: "--data-dir", "CARELINE_DATA_DIR" or "the default for this user"),
    where the package keeps its data and how to pass that."""
    missing = _missing(settings, environ)
    if missing is None:
        return
    data_dir = Path(settings["data_dir"])
    hint = (
        f"The careline-server package keeps its data in {PACKAGE_DATA_DIR}: pass --data-dir "
        f"{PACKAGE_DATA_DIR} (or set CARELINE_DATA_DIR={PACKAGE_DATA_DIR}) and run the "
        "command as the service's user with its settings (installers/README.md, \"The server "
        'as a service"). To start a new server in this folder instead: careline-server '
        f"--data-dir {data_dir} admin init"
    )
    raise NoServerError(f"{missing} (data folder from {given_by}); nothing was created. {hint}")


def _missing(settings: Mapping[str, Any], environ: Mapping[str, str] | None) -> str | None:
    """What the folder lacks, as a phrase; None when it holds a server."""
    data_dir = Path(settings["data_dir"])
    key_file = local_key_file(settings, data_dir, environ=environ)
    key_there = key_file is None or key_file.exists()
    if not settings.get("DATABASE_URL"):
        registry = (data_dir / REGISTRY_KEY_FILE).exists() or (data_dir / REGISTRY_FILE).exists()
        if not registry:
            what = "no registry" + ("" if key_file is None else " and no master key")
            return f"there is no Careline server in {data_dir} ({what} there)"
    if not key_there:
        return (
            f"the master key file {key_file} is missing, so the server's data keys in "
            f"{'PostgreSQL' if settings.get('DATABASE_URL') else data_dir} cannot be "
            "unwrapped (restore it with the keys file made with the backup, or set "
            "MASTER_ENCRYPTION_KEY or the systemd credential if the key lives there)"
        )
    return None


@contextmanager
def created_whole_or_not_at_all(data_dir: Path) -> Iterator[None]:
    """Making a new server in ``data_dir``: if the block fails (PostgreSQL refuses the
    connection, a KMS does not answer), what it made is removed again, the folder itself
    (and any parent made for it) or the files new in it, so no master key file is left
    to make the folder pass for a server the next time (:func:`holds_server`)."""
    made = _first_missing(data_dir)
    before = set() if made is not None else set(os.listdir(data_dir))
    try:
        yield
    except BaseException:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
        elif data_dir.is_dir():
            for name in set(os.listdir(data_dir)) - before:
                new = data_dir / name
                if new.is_dir() and not new.is_symlink():
                    shutil.rmtree(new, ignore_errors=True)
                else:
                    new.unlink(missing_ok=True)
        raise


def _first_missing(path: Path) -> Path | None:
    """The outermost folder of ``path`` that does not exist yet; None if it exists."""
    if path.exists():
        return None
    missing = path
    while not missing.parent.exists() and missing.parent != missing:
        missing = missing.parent
    return missing
