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
import os
import sys
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

from core import __version__
from core.cli.context import (
    EXIT_AUTH,
    EXIT_CHECK_FAILED,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Context,
)
from core.cli.registry import CommandGroup, LazyGroup
from core.cli.terminal import printable
from core.config.logs import configure_logging, log_settings, withhold_exception_messages
from core.config.settings import ConfigError, load_settings
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
    "parse",
    "run",
]

# In the order ``careline --help`` lists them. Each is imported only when it runs (its
# module's GROUP has the same name and help; a unit test holds them equal).
GROUPS: tuple[CommandGroup | LazyGroup, ...] = (
    LazyGroup("init", "create a new encrypted clinic database (or --demo)", "core.cli.init"),
    LazyGroup("patient", "patients", "core.cli.patient"),
    LazyGroup("allergy", "allergies", "core.cli.allergy"),
    LazyGroup("appointment", "the schedule", "core.cli.appointment"),
    LazyGroup("visit", "visits (encounters)", "core.cli.visit"),
    LazyGroup("note", "clinical notes", "core.cli.note"),
    LazyGroup("problem", "problems (diagnoses) coded with ICD-10-CM", "core.cli.problem"),
    LazyGroup("med", "medications: start, stop, change dose, list", "core.cli.med"),
    LazyGroup("attachment", "files in a chart (letters, lab PDFs, photos)", "core.cli.attachment"),
    LazyGroup("conflicts", "concurrent edits waiting for a decision", "core.cli.conflicts"),
    LazyGroup("quarantine", "changes refused by signature checks", "core.cli.quarantine"),
    LazyGroup(
        "enroll",
        "join a clinic server with an enrollment code (--machine: silent install)",
        "core.cli.enroll",
    ),
    LazyGroup("pair", "pair LAN workstations", "core.cli.pair"),
    LazyGroup("serve", "run headless as a LAN peer until stopped", "core.cli.serve"),
    LazyGroup("peers", "LAN peers seen over mDNS, and which are trusted", "core.cli.peers"),
    LazyGroup(
        "sync", "sync with the clinic server or a LAN peer (every 30 s, or --once)", "core.cli.sync"
    ),
    LazyGroup("password", "your password", "core.cli.password"),
    LazyGroup("keys", "recovery key, re-keying, forgotten passwords", "core.cli.keys"),
    LazyGroup("audit", "audit log", "core.cli.audit"),
    LazyGroup("break-glass", "emergency access to a chart, and its review", "core.cli.break_glass"),
    LazyGroup("access", "who may read a chart: restricted charts, care teams", "core.cli.access"),
    LazyGroup("db", "database", "core.cli.db"),
    LazyGroup("vitals", "vital signs", "core.cli.vitals"),
    LazyGroup("print", "print reports as PDF (summary, visit, day)", "core.cli.print_"),
    LazyGroup("user", "staff accounts (administrators)", "core.cli.user"),
    LazyGroup(
        "backup", "sealed backups, and restoring one as a new workstation", "core.cli.backup"
    ),
    LazyGroup("import", "move a clinic in: import a patient list", "core.cli.import_"),
    LazyGroup("fhir", "FHIR R4 bundles: export charts, import a bundle", "core.cli.fhir"),
)


def build_parser(loaded: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The ``careline`` grammar: the global options, then the command groups.

    ``loaded``: the groups whose own grammar is loaded (the others are listed by name and
    help only); by default all of them, the full grammar.
    """
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
        if isinstance(group, CommandGroup):
            group.add_to(sub)
        elif loaded is None or group.name in loaded:
            group.load().add_to(sub)
        else:
            group.add_stub_to(sub)
    return parser


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """``argv`` parsed as :func:`build_parser`'s full grammar would, importing only the
    named command's group: a first pass with every group a stub finds the command (and
    handles ``--help``, ``--version`` and a mistyped command as the full grammar does);
    the second parses the whole line with that group's real grammar."""
    command = build_parser(loaded=()).parse_known_args(argv)[0].command
    return build_parser(loaded=() if command is None else (command,)).parse_args(argv)


def exit_code(exc: CarelineError) -> int:
    """The contract's exit code for an expected failure."""
    if isinstance(exc, CliError):
        return exc.code
    if isinstance(exc, ConfigError):
        return EXIT_USAGE
    if isinstance(exc, AuthenticationError | WrongKeyError):
        return EXIT_AUTH
    return EXIT_ERROR


# The commands that read a recovery key from standard input (command, action).
_TAKE_KEY = {("keys", "recover"), ("backup", "restore")}


def run(argv: Sequence[str] | None, open_gui: Callable[[argparse.Namespace], int]) -> int:
    """Parse and run; ``open_gui`` is called when no command is given."""
    args = parse(argv)
    disable_core_dumps()
    # The desktop app and every command log a bug's traceback to stderr, which the
    # desktop session or a service manager may keep (journald): never with its message.
    withhold_exception_messages()
    if args.recovery_key_stdin and (args.command, getattr(args, "action", None)) not in _TAKE_KEY:
        # Read by nothing else: a script giving it elsewhere (to open a closed clinic, say)
        # would otherwise go on as if it had been used.
        return _fail(
            "--recovery-key-stdin is read only by 'keys recover' and 'backup restore'",
            EXIT_USAGE,
        )
    if args.command is None:
        return open_gui(args)
    ctx: Context | None = None
    try:
        _log_as_asked()
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


def _log_as_asked() -> None:
    """A command's log goes to stderr, which the person reads: by default only warnings
    and errors (Python's own default), the diagnostic detail behind a message they were
    given (a connection's own text: :mod:`core.sync.reach`) left out. ``CARELINE_LOG_LEVEL``
    (and ``CARELINE_LOG_FORMAT``), as ``careline serve`` reads them, show more for whoever
    looks into a problem."""
    settings = log_settings("CARELINE_")
    if any(setting.env in os.environ for setting in settings):
        logs = load_settings(settings)
        configure_logging(logs["LOG_FORMAT"], logs["LOG_LEVEL"])


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"careline: error: {printable(message)}\n")
    return code
