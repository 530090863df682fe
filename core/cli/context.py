"""What every ``careline`` command shares: exit codes, :class:`CliError`, and
:class:`Context` (settings, output, unlocking the clinic for one invocation)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn

from core.cli.terminal import printable
from core.config import desktop
from core.config.machine import load_machine_config
from core.errors import CarelineError
from core.keys.errors import KeyringUnavailableError, NoSlotError, WrongSecretError
from core.records.chart_lists import DuplicateWarning
from core.records.clinic import ClinicRecords
from core.records.demo import DEMO_NOTICE, DEMO_PASSWORD, demo_folder, is_demo_folder
from core.records.errors import AuthenticationError, SecondFactorRequiredError
from core.records.workstation import Workstation

# The contract (DESIGN.md section 4, README "Command line").
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_AUTH, EXIT_CHECK_FAILED = 0, 1, 2, 3, 4


class CliError(CarelineError):
    """A failure to report on stderr with an exit code."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


# A refused duplicate list item, by its list's noun (``DuplicateWarning.noun``): what adding
# it would have done (the --json document's key), and what the person may do instead.
_DUPLICATE_REFUSALS = {
    "problem": ("recorded", "Add --allow-duplicate to record it again anyway"),
    "medication": (
        "started",
        "Change its dose instead, or add --allow-duplicate to start it again anyway",
    ),
}


def refuse_duplicate(
    ctx: Context, exc: DuplicateWarning, shown: Callable[[Any, Mapping[str, str]], str]
) -> NoReturn:
    """Name the active problems or medications this one repeats (nothing was written),
    each as ``shown`` says it (the item, full names by user name), and fail; with --json
    ``{"recorded"|"started": null, "duplicates": [...]}`` on stdout first."""
    done, instead = _DUPLICATE_REFUSALS[exc.noun]
    if ctx.args.json:
        ctx.emit({done: None, "duplicates": [e.to_dict() for e in exc.existing]}, "")
    listed = "\n".join(f"  {shown(e, exc.names)}" for e in exc.existing)
    raise CliError(
        f"not {done}: {exc.what} is already an active {exc.noun} of this patient:\n"
        f"{listed}\n{instead}",
        EXIT_ERROR,
    )


class Context:
    """Resolved settings and output for one invocation."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        # The machine-wide configuration IT deployed (read once per invocation).
        self.machine = load_machine_config()
        data_dir: Path = desktop.resolve_data_dir(args.data_dir, machine=self.machine)
        # The real clinic's folder; ``--demo`` works on the demo's folder beside it.
        self.clinic_data_dir = data_dir
        self.demo_requested = bool(getattr(args, "demo", False))
        if self.demo_requested:
            data_dir = demo_folder(data_dir)
        self.settings = desktop.load_desktop_settings(data_dir, machine=self.machine)
        self.data_dir = data_dir
        self.workstation = Workstation(data_dir)
        self.demo = is_demo_folder(data_dir)
        if self.demo:
            sys.stderr.write(f"careline: {DEMO_NOTICE} ({data_dir})\n")
        elif self.demo_requested and args.command != "init":
            raise CliError(f"no demo clinic in {data_dir}; run 'careline init --demo' first")

    def emit(self, document: Any, text: str) -> None:
        """Print the JSON document or the human text (its control characters escaped:
        it holds what records say, and JSON escapes them itself)."""
        if self.args.json:
            sys.stdout.write(json.dumps(document, ensure_ascii=False) + "\n")
        else:
            sys.stdout.write(printable(text.rstrip("\n")) + "\n")

    def password(self) -> str | None:
        """Password from --password-stdin or CARELINE_PASSWORD_FILE (the demo clinic's
        published password when neither is given for the demo)."""
        from core.cli.passwords import read_password

        given = read_password(self.args.password_stdin, self.settings["password_file"])
        return DEMO_PASSWORD if given is None and self.demo else given

    def require_clinic(self) -> None:
        """Refuse a command that needs a clinic in a data folder without one, or with a
        person's unfinished join (only that join opens it: its records may hold no account
        of theirs yet, so neither a password nor the OS keyring proves who is here)."""
        if not self.workstation.is_initialized():
            # A data folder holding no clinic is the wrong --data-dir (or none set up yet):
            # configuration, exit 2, as careline-server says of a folder holding no server.
            raise CliError(f"no clinic in {self.data_dir}; run 'careline init' first", EXIT_USAGE)
        joiner = self.workstation.unfinished_join_by()
        if joiner is not None:
            raise CliError(
                f"{self.data_dir} holds {joiner}'s unfinished join (enrolled, but the clinic's "
                "records have not all arrived): nothing opens it until it is finished. Finish "
                f"it with 'careline --user {joiner} --password-stdin enroll --resume' (their "
                "password, no new code), or remove it with 'careline enroll "
                "--discard-unfinished'",
                EXIT_AUTH,
            )

    def user(self) -> str:
        """``--user``, else the admin named at ``init``."""
        return (self.args.user or self.workstation.keychain().default_user).strip().lower()

    def open_database(self) -> None:
        """Open the database for a check, without signing anyone in: nothing is written
        (no audit entry either), so a damaged file is examined as it is."""
        self._unlock(sign_in=False)

    def open_records(self) -> ClinicRecords:
        """Unlock for an unattended command: the user's password, else the OS keyring."""
        user, signed_in = self._unlock(sign_in=True)
        if signed_in:
            return self.workstation.records
        try:
            return self.workstation.unlock_for(user)
        except AuthenticationError as exc:
            raise CliError(str(exc), EXIT_AUTH) from None

    def _unlock(self, sign_in: bool) -> tuple[str, bool]:
        """Open the database with ``--user``'s password (signing them in when ``sign_in``),
        else with the OS keyring. Returns the user and whether they were signed in."""
        ws = self.workstation
        self.require_clinic()
        user = self.args.user or ws.keychain().default_user
        password = self.password()
        try:
            if password is None:
                ws.unlock_with_keyring()
            elif sign_in:
                self.sign_in_with(user, password)
            else:
                ws.unlock_with_password(user, password)
        except AuthenticationError as exc:
            raise CliError(str(exc), EXIT_AUTH) from None
        except KeyringUnavailableError as exc:
            raise CliError(
                f"cannot unlock: {exc}. Give the password of {user!r} with --password-stdin "
                "or CARELINE_PASSWORD_FILE",
                EXIT_AUTH,
            ) from None
        except (NoSlotError, WrongSecretError) as exc:
            raise CliError(
                f"cannot unlock with the OS keyring ({exc}); give the password of {user!r} with "
                "--password-stdin or CARELINE_PASSWORD_FILE",
                EXIT_AUTH,
            ) from None
        return user, password is not None and sign_in

    def sign_in_person(self) -> ClinicRecords:
        """Sign ``--user`` in with their password (--password-stdin, CARELINE_PASSWORD_FILE
        or a prompt). Key management needs this: the OS-keyring slot opens the database
        but proves nobody's identity, so it is not enough to mint a recovery key or re-key."""
        from core.cli.passwords import PASSWORD_FILE_ENV, prompt_secret

        ws = self.workstation
        self.require_clinic()
        user = self.user()
        password = self.password() or prompt_secret(
            f"Password for {user}: ",
            "password",
            f"--password-stdin or set {PASSWORD_FILE_ENV} (the OS keyring is not enough here)",
        )
        try:
            self.sign_in_with(user, password)
        except AuthenticationError as exc:
            raise CliError(str(exc), EXIT_AUTH) from None
        return ws.records

    def sign_in_with(self, user: str, password: str) -> None:
        """Sign ``user`` in; an account with two-factor sign-in is then asked for its code:
        the next line of standard input with ``--password-stdin``, else a prompt (never the
        command line)."""
        from core.cli.passwords import prompt_secret, read_stdin_line

        try:
            self.workstation.sign_in(user, password)
        except SecondFactorRequiredError:
            if self.args.password_stdin:
                code = read_stdin_line("--password-stdin", "two-factor code (after the password)")
            else:
                code = prompt_secret(
                    f"Two-factor code for {user}: ",
                    "two-factor code",
                    "--password-stdin (the code on the line after the password)",
                )
            self.workstation.sign_in(user, password, totp_code=code)
