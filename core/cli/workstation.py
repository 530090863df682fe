"""``careline``: the workstation's command line (DESIGN.md section 4).

Global options come before the command. With no command the desktop app opens (the
``app`` package decides that; this module never imports Qt). ``--json`` prints exactly one
JSON document on stdout; errors go to stderr in plain words (:mod:`core.errors`) with a
non-zero exit code that says what kind of failure it was.

Each command group lives in its own module, which declares its arguments and its handler
together (:class:`core.cli.registry.CommandGroup`); :data:`GROUPS` lists them once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from core import __version__
from core.cli import (
    access,
    allergy,
    appointment,
    attachment,
    audit,
    backup,
    break_glass,
    conflicts,
    db,
    enroll,
    fhir,
    import_,
    init,
    keys,
    med,
    note,
    pair,
    password,
    patient,
    peers,
    print_,
    problem,
    quarantine,
    serve,
    sync,
    user,
    visit,
    vitals,
)
from core.cli.context import (
    EXIT_AUTH,
    EXIT_CHECK_FAILED,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Context,
)
from core.cli.registry import CommandGroup
from core.config.settings import ConfigError
from core.crypto.secure_memory import disable_core_dumps
from core.errors import CarelineError, plain_words
from core.records.errors import AuthenticationError
from core.store.database import DriverError
from core.store.environment import diagnose, from_os_error
from core.store.errors import WrongKeyError

__all__ = [
    "EXIT_AUTH",
    "EXIT_CHECK_FAILED",
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_USAGE",
    "GROUPS",
    "CliError",
    "build_parser",
    "exit_code",
    "run",
]

# In the order ``careline --help`` lists them.
GROUPS: tuple[CommandGroup, ...] = (
    init.GROUP,
    patient.GROUP,
    allergy.GROUP,
    appointment.GROUP,
    visit.GROUP,
    note.GROUP,
    problem.GROUP,
    med.GROUP,
    attachment.GROUP,
    conflicts.GROUP,
    quarantine.GROUP,
    enroll.GROUP,
    pair.GROUP,
    serve.GROUP,
    peers.GROUP,
    sync.GROUP,
    password.GROUP,
    keys.GROUP,
    audit.GROUP,
    break_glass.GROUP,
    access.GROUP,
    db.GROUP,
    vitals.GROUP,
    print_.GROUP,
    user.GROUP,
    backup.GROUP,
    import_.GROUP,
    fhir.GROUP,
)


def build_parser() -> argparse.ArgumentParser:
    """The full ``careline`` grammar: the global options, then every command group."""
    parser = argparse.ArgumentParser(
        prog="careline",
        description="Careline clinic records. With no command, opens the desktop app.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}", help="print the release"
    )
    parser.add_argument("--data-dir", type=Path, help="folder of the clinic database")
    parser.add_argument(
        "--demo",
        action="store_true",
        help="use the demo clinic (sample data) in its own folder beside the data folder",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--user", help="act as this user (default: the admin named at init)")
    parser.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    parser.add_argument(
        "--recovery-key-stdin",
        action="store_true",
        help="keys recover: read the recovery key from standard input (then the new password)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in GROUPS:
        group.add_to(sub)
    return parser


def exit_code(exc: CarelineError) -> int:
    """The contract's exit code for an expected failure."""
    if isinstance(exc, CliError):
        return exc.code
    if isinstance(exc, ConfigError):
        return EXIT_USAGE
    if isinstance(exc, AuthenticationError | WrongKeyError):
        return EXIT_AUTH
    return EXIT_ERROR


def run(argv: Sequence[str] | None, open_gui: Callable[[argparse.Namespace], int]) -> int:
    """Parse and run; ``open_gui`` is called when no command is given."""
    args = build_parser().parse_args(argv)
    disable_core_dumps()
    if args.command is None:
        return open_gui(args)
    ctx: Context | None = None
    try:
        ctx = Context(args)
        code: int = args.handler(ctx)
        return code
    except CarelineError as exc:
        return _fail(plain_words(exc), exit_code(exc))
    except DriverError as exc:
        if ctx is not None and (problem := diagnose(ctx.workstation.db_path)) is not None:
            return _fail(plain_words(problem), EXIT_ERROR)
        return _fail(
            f"the clinic database {ctx.workstation.db_path if ctx else ''} could not be read "
            f"({exc}). Run 'careline db check' for a full report",
            EXIT_ERROR,
        )
    except OSError as exc:
        # A read-only folder, a full disk, missing permission: named, never a traceback.
        if (named := from_os_error(exc, ctx.data_dir if ctx else None)) is not None:
            return _fail(plain_words(named), EXIT_ERROR)
        return _fail(plain_words(exc), EXIT_ERROR)
    except Exception as exc:  # a bug: logged in full, named only in general terms
        return _fail(plain_words(exc), EXIT_ERROR)
    finally:
        if ctx is not None:
            ctx.workstation.lock()


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"careline: error: {message}\n")
    return code
