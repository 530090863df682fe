"""``careline backup create|restore|info``: sealed backups of this workstation, and restoring
one into a new folder as a new replica (core.sync.backup says what and why)."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.cli.context import EXIT_AUTH, EXIT_OK, EXIT_USAGE, CliError, Context
from core.cli.joining import rejoin_command
from core.cli.registry import CommandGroup, actions
from core.records.errors import AuthenticationError


def arguments(parser: argparse.ArgumentParser) -> None:
    """backup create (FILE | --dir D [--keep N]) [--passphrase-stdin | --passphrase-file F]
    | backup restore FILE --data-dir NEW (--recovery-key-stdin | --recovery-key-file F
    | --passphrase-stdin | --passphrase-file F) | backup info FILE."""
    bsub = actions(parser)
    create = bsub.add_parser(
        "create", help="back up this workstation, sealed to its recovery key (and a passphrase)"
    )
    create.add_argument("file", nargs="?", type=Path, help="the new backup file")
    create.add_argument("--dir", type=Path, help="scheduled: a dated file in this folder")
    create.add_argument("--keep", type=int, default=7, help="with --dir: keep the newest N")
    _passphrase_arguments(create, "also seal the backup to a passphrase")
    restore = bsub.add_parser(
        "restore", help="restore a backup into a new folder, as a new workstation identity"
    )
    restore.add_argument("file", type=Path, help="the backup file")
    restore.add_argument(
        "--data-dir", dest="restore_dir", type=Path, required=True, help="new, empty folder"
    )
    restore.add_argument(
        "--recovery-key-file", type=Path, metavar="FILE", help="read the recovery key from FILE"
    )
    # Accepted here too; SUPPRESS keeps the global flag's value when this one is absent.
    restore.add_argument(
        "--recovery-key-stdin",
        action="store_true",
        default=argparse.SUPPRESS,
        help="read the recovery key from standard input (after the password)",
    )
    _passphrase_arguments(restore, "open the backup with its passphrase")
    info = bsub.add_parser("info", help="what a backup file is and which secrets open it")
    info.add_argument("file", type=Path, help="the backup file")


def _passphrase_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--passphrase-stdin",
        action="store_true",
        help=f"{what}: read it from standard input (the line after the password)",
    )
    parser.add_argument("--passphrase-file", type=Path, metavar="FILE", help=f"{what}: from FILE")


def _first_line(path: Path, flag: str, what: str) -> str:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not a text file"
        raise CliError(f"{flag}: cannot read {path}: {reason}", EXIT_USAGE) from None
    if not lines or not lines[0]:
        raise CliError(f"{flag}: {path} holds no {what}", EXIT_USAGE)
    return lines[0]


def _passphrase(args: argparse.Namespace) -> str | None:
    from core.cli.passwords import read_stdin_line

    if args.passphrase_stdin and args.passphrase_file is not None:
        raise CliError("give the passphrase once: --passphrase-stdin or --passphrase-file")
    if args.passphrase_stdin:
        return read_stdin_line("--passphrase-stdin", "passphrase")
    if args.passphrase_file is not None:
        return _first_line(args.passphrase_file, "--passphrase-file", "passphrase")
    return None


def run(ctx: Context) -> int:
    """backup create | restore | info."""
    action = ctx.args.action
    if action == "create":
        return _create(ctx)
    if action == "restore":
        return _restore(ctx)
    return _info(ctx)


def _create(ctx: Context) -> int:
    from core.sync.backup import create_backup
    from core.sync.backup_schedule import backup_into

    args = ctx.args
    if (args.file is None) == (args.dir is None):
        raise CliError("give the backup FILE or --dir FOLDER (one of them)", EXIT_USAGE)
    records = ctx.open_records()  # the password (if any) is the first line of stdin
    passphrase = _passphrase(args)
    pruned: list[Path] = []
    if args.dir is not None:
        result, pruned = backup_into(
            ctx.workstation, args.dir, args.keep, records.actor, passphrase
        )
    else:
        result = create_backup(ctx.workstation, args.file, passphrase, records.actor)
    doc = {
        "file": str(result.path),
        "size": result.size,
        "created": result.created,
        "opens_with": result.openers,
        "attachments": result.attachments,
        "attachment_bytes": result.attachment_bytes,
        "attachments_pending": result.pending,
        "attachments_not_held": result.not_held,
        "pruned": [str(p) for p in pruned],
    }
    openers = " or ".join("the recovery key" if o == "recovery" else "the passphrase"
                          for o in result.openers)  # fmt: skip
    text = (
        f"Backed up to {result.path} ({result.size} bytes); it opens with {openers}. "
        + held_files(result.attachments, result.not_held)
    )
    if pruned:
        text += f" Removed {len(pruned)} older backup(s)."
    ctx.emit(doc, text)
    return EXIT_OK


def held_files(included: int, not_held: int) -> str:
    """What a backup holds, as people read it: the database and how many chart files, and
    how many it leaves out (not held on this workstation)."""
    text = (
        f"It holds the clinic database and {included} attached "
        f"file{'' if included == 1 else 's'} (encrypted)."
    )
    if not_held:
        text += (
            f" Not in it: {not_held} file{'' if not_held == 1 else 's'} this workstation "
            "never fetched or no longer keeps (the clinic server or the workstation that "
            "added them holds them)."
        )
    return text


def _restore(ctx: Context) -> int:
    from core.cli.passwords import read_stdin_line
    from core.sync.backup import restore_backup

    args = ctx.args
    if not args.user:
        raise CliError("--user is required: the administrator restoring (their password "
                       "from --password-stdin or CARELINE_PASSWORD_FILE)", EXIT_USAGE)  # fmt: skip
    password = ctx.password()
    if password is None:
        raise CliError("give the password with --password-stdin or CARELINE_PASSWORD_FILE",
                       EXIT_USAGE)  # fmt: skip
    given = [bool(args.recovery_key_stdin), args.recovery_key_file is not None,
             bool(args.passphrase_stdin), args.passphrase_file is not None]  # fmt: skip
    if sum(given) != 1:
        raise CliError(
            "give exactly one of --recovery-key-stdin, --recovery-key-file, "
            "--passphrase-stdin, --passphrase-file",
            EXIT_USAGE,
        )
    if args.recovery_key_stdin:
        kind, secret = "recovery", read_stdin_line("--recovery-key-stdin", "recovery key")
    elif args.recovery_key_file is not None:
        kind = "recovery"
        secret = _first_line(args.recovery_key_file, "--recovery-key-file", "recovery key")
    else:
        kind, secret = "passphrase", _passphrase(args) or ""

    def sign_in(ws: object) -> None:
        from core.records.workstation import Workstation

        assert isinstance(ws, Workstation)
        ctx.workstation = ws  # a two-factor code is asked for as for any sign-in
        ctx.sign_in_with(args.user.strip().lower(), password)

    try:
        result = restore_backup(
            args.file, args.restore_dir, kind, secret, args.user, password, sign_in,
            ctx.workstation.kdf_params,
        )  # fmt: skip
    except AuthenticationError as exc:
        raise CliError(f"{exc.plain_words()}; nothing was restored", EXIT_AUTH) from None
    doc = {
        "data_dir": str(result.data_dir),
        "old_replica_id": result.old_replica_id,
        "replica_id": result.new_replica_id,
        "backup_created": result.backup_created,
        "needs_join": result.needs_join,
        "server": result.server_url,
        "attachments": result.attachments,
        "attachments_pending": result.pending,
        "recovery_key": result.recovery_key,
    }
    if result.needs_join:
        command = rejoin_command(result.data_dir, args.user, result.server_url)
        doc["join_command"] = command
        code = "an enrollment code" if result.server_url else "a pairing code"
        step = (
            f"It must join the clinic again before it syncs: ask an administrator for {code} "
            f"and run\n\n    {command}\n\nwith your password, then the code, on standard "
            "input. Its records are kept; the changes others made since the backup then "
            "arrive, and its own unsent changes from before the backup are sent."
        )
    else:
        step = "It holds the clinic CA and certified its new identity itself."
    ctx.emit(
        doc,
        f"Restored the backup of {result.backup_created} into {result.data_dir} as a new "
        f"workstation identity ({result.new_replica_id}; it was {result.old_replica_id}), "
        f"with {result.attachments} attached file(s), {result.pending} of them still to "
        f"upload. {step}\n\nRECOVERY KEY for this workstation (shown only now):\n\n"
        f"    {result.recovery_key}\n",
    )
    return EXIT_OK


def _count(info: dict[str, object], key: str) -> int:
    """A count from a header that is read before anything authenticates it."""
    value = info.get(key, 0)
    return value if isinstance(value, int) and value >= 0 else 0


def _info(ctx: Context) -> int:
    from core.sync.backup import read_backup_header

    header = read_backup_header(ctx.args.file)
    # ``info`` is the file's own, unauthenticated claim (read_header keeps it to short
    # plain facts): under its own key, it cannot stand in for what this reports.
    doc = {"kind": header.kind, "created": header.created, "opens_with": header.kinds(),
           "info": header.info}  # fmt: skip
    holds = ""
    if header.kind == "workstation":
        # A version 1 backup's header names no attachments: it holds none.
        info = header.info
        holds = " " + held_files(_count(info, "attachments"), _count(info, "attachments_not_held"))
    ctx.emit(
        doc,
        f"A {header.kind} backup made {header.created}; it opens with "
        f"{' or '.join(header.kinds())}.{holds}",
    )
    return EXIT_OK


GROUP = CommandGroup("backup", "sealed backups, and restoring one as a new workstation",
                     arguments, run)  # fmt: skip
