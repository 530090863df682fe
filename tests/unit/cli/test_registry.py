"""core.cli: each command group declares its parser and its handler in one place, and the
exit codes follow the contract (DESIGN.md section 4)."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from core.cli.context import EXIT_AUTH, EXIT_ERROR, EXIT_USAGE, CliError
from core.cli.registry import CommandGroup, LazyGroup
from core.cli.workstation import GROUPS, build_parser, exit_code, parse
from core.config.settings import ConfigError
from core.errors import CarelineError
from core.records.errors import AuthenticationError, StaleSlotError
from core.store.errors import StoreError, WrongKeyError
from core.sync.join import NoAccountError
from core.sync.session import SyncError

# The command groups of the contract (DESIGN.md §4), each with a command line it parses.
CONTRACT: dict[str, list[str]] = {
    "init": ["init", "--clinic", "C", "--user", "u"],
    "patient": ["patient", "search", "smith"],
    "allergy": ["allergy", "add", "p", "peanut"],
    "appointment": ["appointment", "list", "--date", "2026-12-07"],
    "visit": ["visit", "start", "p", "--reason", "cough"],
    "note": ["note", "add", "p", "--visit", "v", "--soap"],
    "vitals": ["vitals", "list", "p"],
    "conflicts": ["conflicts", "list"],
    "enroll": ["enroll", "--server", "https://s", "--code", "c"],
    "pair": ["pair", "code"],
    "serve": ["serve"],
    "peers": ["peers"],
    "sync": ["sync", "--once"],
    "password": ["password", "change"],
    "keys": ["keys", "rekey"],
    "audit": ["audit", "verify"],
    "db": ["db", "check"],
    "print": ["print", "day", "-o", "day.pdf"],
    "problem": ["problem", "codes", "asthma"],
    "med": ["med", "list", "p"],
    "attachment": ["attachment", "get", "a", "-o", "letter.pdf"],
    "quarantine": ["quarantine", "list"],
    "break-glass": ["break-glass", "p", "--reason", "emergency"],
    "user": ["user", "role", "nina", "nurse"],
    "access": ["access", "add", "p", "nina"],
    "backup": ["backup", "restore", "f.clbackup", "--data-dir", "new", "--passphrase-stdin"],
    "import": ["import", "patients", "list.csv", "--map", "DOB=birth_date", "--dry-run"],
    "fhir": ["fhir", "export", "--patient", "p", "-o", "bundle.json"],
}


def test_every_command_is_declared_once_and_dispatches_to_its_group() -> None:
    names = [group.name for group in GROUPS]
    assert sorted(names) == sorted(CONTRACT)  # each once, none missing, none extra
    parser = build_parser()
    for group in GROUPS:
        loaded = group.load() if isinstance(group, LazyGroup) else group
        assert (loaded.name, loaded.help) == (group.name, group.help)
        args = parser.parse_args(["--json", *CONTRACT[group.name]])
        assert args.command == group.name and args.handler is loaded.run and args.json
        # A command run loads only its own group, and parses as the full grammar does.
        assert vars(parse(["--json", *CONTRACT[group.name]])) == vars(args)


def test_a_command_imports_only_its_own_group() -> None:
    """Each ``careline`` process runs one command; importing every group's code (sync,
    attachments, FHIR, printing) made each one start a third of a second slower."""
    script = (
        "import sys\n"
        "from core.cli.workstation import parse\n"
        "parse(['patient', 'search', 'smith'])\n"
        "print(sorted(m for m in sys.modules if m.startswith('core.cli.')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    groups = {g.run.__module__ for g in GROUPS if isinstance(g, CommandGroup)}
    groups |= {g.module for g in GROUPS if isinstance(g, LazyGroup)}
    imported = set(ast.literal_eval(done.stdout))
    assert imported & groups == {"core.cli.patient"}


def test_a_lazy_group_that_is_not_the_one_listed_is_refused() -> None:
    with pytest.raises(RuntimeError, match="is not the group 'pets'"):
        LazyGroup("pets", "patients", "core.cli.patient").load()


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["bogus"], ["--bogus"], ["patient"], ["--json", "patient", "--bogus"],
     ["patient", "--json", "search", "x"], ["--data-dir"], ["-h", "patient"],
     ["patient", "add", "--help"], ["sync", "--help"]],
)  # fmt: skip
def test_help_and_usage_errors_are_those_of_the_full_grammar(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    outcomes = []
    for parse_line in (build_parser().parse_args, parse):
        with pytest.raises(SystemExit) as exited:
            parse_line(argv)
        outcomes.append((exited.value.code, capsys.readouterr()))
    assert outcomes[0] == outcomes[1]


def test_patient_merge_commands_parse() -> None:
    """The duplicate review and merge commands (issue #16) are part of ``patient``."""
    parser = build_parser()
    merge = parser.parse_args(["patient", "merge", "d", "--into", "s", "--reason", "same person"])
    assert (merge.action, merge.duplicate, merge.into, merge.reason) == (
        "merge",
        "d",
        "s",
        "same person",
    )
    assert parser.parse_args(["patient", "unmerge", "d"]).id == "d"
    assert parser.parse_args(["--json", "patient", "duplicates"]).action == "duplicates"
    with pytest.raises(SystemExit):
        parser.parse_args(["patient", "merge", "d", "--reason", "no survivor named"])


def test_a_group_refuses_a_missing_action(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["patient"])
    assert exited.value.code == EXIT_USAGE
    assert "ACTION" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (CliError("bad --peer", EXIT_USAGE), EXIT_USAGE),
        (ConfigError("CARELINE_AUTO_LOCK_MINUTES: not a number"), EXIT_USAGE),
        (AuthenticationError("wrong user name or password"), EXIT_AUTH),
        (StaleSlotError("changed elsewhere"), EXIT_AUTH),
        (NoAccountError("ghost"), EXIT_AUTH),
        (WrongKeyError("another clinic's key file"), EXIT_AUTH),
        (StoreError("already exists"), EXIT_ERROR),
        (SyncError("refused"), EXIT_ERROR),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_exit_codes_follow_the_contract(exc: CarelineError, code: int) -> None:
    assert exit_code(exc) == code


def test_both_commands_print_the_release(capsys: pytest.CaptureFixture[str]) -> None:
    from core import __version__
    from core.cli import server, workstation

    for module, name in ((workstation, "careline"), (server, "careline-server")):
        with pytest.raises(SystemExit) as done:
            module.build_parser().parse_args(["--version"])
        assert done.value.code == 0
        assert capsys.readouterr().out == f"{name} {__version__}\n"


@pytest.mark.parametrize("command", [["enroll", "--server", "https://s"], ["pair", "join"]])
def test_a_join_code_comes_from_exactly_one_of_three_places(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """``--code`` (seen in the process list), ``--code-stdin`` or ``--code-file``."""
    parser = build_parser()
    assert parser.parse_args([*command, "--code", "c"]).code == "c"
    assert parser.parse_args([*command, "--code-stdin"]).code_stdin is True
    assert str(parser.parse_args([*command, "--code-file", "f"]).code_file) == "f"
    for wrong in ([], ["--code", "c", "--code-stdin"]):
        with pytest.raises(SystemExit) as exited:
            parser.parse_args([*command, *wrong])
        assert exited.value.code == EXIT_USAGE
    assert "--code-stdin" in capsys.readouterr().err


def test_enroll_takes_a_code_or_the_machine_configuration_not_both() -> None:
    parser = build_parser()
    assert parser.parse_args(["enroll", "--machine"]).machine is True
    with pytest.raises(SystemExit) as exited:
        parser.parse_args(["enroll", "--machine", "--code-stdin"])
    assert exited.value.code == EXIT_USAGE


@pytest.mark.parametrize("action", ["add", "reset-password"])
def test_user_help_says_what_standard_input_holds_line_by_line(
    action: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A tester piped only the new person's password to ``user add`` and was told "wrong
    user name or password": the help now says the admin's own password comes first."""
    with pytest.raises(SystemExit):
        build_parser().parse_args(["user", action, "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "standard input holds" in shown and "your own password" in shown
    assert shown.index("your own password") < shown.index("then")
