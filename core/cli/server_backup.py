"""``careline-server admin backup|restore``: the embedded server's data and its master key,
sealed to the operator's passphrase (core.server.backup says what and why)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Protocol

from core.cli.passwords import read_password
from core.config.settings import ConfigError
from core.server.backup import adopt_restored, backup_server, restore_server
from core.server.service import ClinicServer


class Emitter(Protocol):
    """The server CLI's output (core.cli.server.Output)."""

    def emit(self, document: Any, text: str) -> None:
        """Print the result."""
        ...


def add_arguments(admin: Any) -> None:
    """admin backup FILE [--keys-out KEYS] | admin restore FILE [--keys-file KEYS]."""
    backup = admin.add_parser(
        "backup",
        help="embedded server: back up every store and the attachments (operator passphrase "
        "on stdin); the master key goes to a file of its own (--keys-out)",
    )
    backup.add_argument("file", type=Path, help="the new backup file")
    backup.add_argument("--keys-out", type=Path, help="the new master key file (keep it apart)")
    _passphrase_file(backup)
    restore = admin.add_parser(
        "restore", help="restore a backup into the (new, empty) --data-dir; passphrase on stdin"
    )
    restore.add_argument("file", type=Path, help="the backup file")
    restore.add_argument("--keys-file", type=Path, help="the master key file made with it")
    _passphrase_file(restore)
    admin.add_parser(
        "new-identity",
        help="PostgreSQL: run once after pg_restore of the server's database, before serving "
        "it: the server takes new op identities, so it never reuses op numbers the lost "
        "server handed out after the dump",
    )


def _passphrase_file(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--passphrase-file", type=Path, metavar="FILE",
        help="read the operator passphrase from FILE (default: standard input)",
    )  # fmt: skip


def _passphrase(args: argparse.Namespace) -> str:
    passphrase = read_password(
        args.passphrase_file is None, args.passphrase_file, "--passphrase-file"
    )
    if not passphrase:
        raise ConfigError(
            "the operator passphrase is read from standard input or --passphrase-file"
        )
    return passphrase


def check_destination(args: argparse.Namespace) -> None:
    """Refuse, before anything is read or written, a backup (or keys) file whose folder does
    not exist, naming it."""
    for option, path in (("the backup file", args.file), ("--keys-out", args.keys_out)):
        if path is None:
            continue
        folder = Path(path).expanduser().absolute().parent
        if not folder.is_dir():
            raise ConfigError(
                f"{option} {path}: the folder {folder} does not exist; create it first "
                f"(mkdir -p {folder}) or name a file in an existing folder"
            )


def backup(args: argparse.Namespace, server: ClinicServer, out: Emitter) -> None:
    """admin backup FILE [--keys-out KEYS]."""
    made = backup_server(server, args.file, args.keys_out, _passphrase(args))
    keys = (
        f" The master key is in {made.keys_path}: keep it apart from the backup."
        if made.keys_path is not None
        else " The master key is not in the data folder: keep it where it lives."
    )
    out.emit(
        {"file": str(made.path), "keys_file": None if made.keys_path is None else
         str(made.keys_path), "clinics": made.clinics, "files": made.files},
        f"Backed up {made.clinics} clinic(s), {made.files} files, to {made.path}.{keys}",
    )  # fmt: skip


def restore(args: argparse.Namespace, settings: dict[str, Any], out: Emitter) -> int:
    """admin restore FILE [--keys-file KEYS] into the configured data folder."""
    data_dir: Path = settings["data_dir"]

    def opens(folder: Path) -> None:
        # The restored stores must open with the keys at hand before anything is moved,
        # and take new identities before anything can write an op.
        adopt_restored(folder, settings)

    count = restore_server(args.file, args.keys_file, data_dir, _passphrase(args), opens)
    out.emit(
        {"data_dir": str(data_dir), "files": count},
        f"Restored {count} files into {data_dir}; start the server on it "
        "(careline-server --data-dir ... run).",
    )
    return 0
