"""Every command and option ``careline`` and ``careline-server`` parse is in the README's
command reference ("Command line"): an operator reading it finds each one, on the line of
the command that takes it."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from core.cli.server import build_parser as build_server_parser
from core.cli.workstation import build_parser

README = Path(__file__).resolve().parents[3] / "README.md"
SERVER = "careline-server"


def _reference() -> str:
    """The fenced block that opens the README's "Command line" section."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("\n## Command line\n") :]
    return section.split("```", 2)[1]


def _entries(prog: str) -> list[str]:
    """The reference's entries for ``prog``: a line at the margin or indented two spaces
    (the command column), with the deeper-indented lines that continue it."""
    entries: list[str] = []
    for line in _reference().splitlines():
        if not line.strip():
            continue
        if re.match(r" {0,2}\S", line):
            entries.append(line)
        elif entries:
            entries[-1] += "\n" + line
    server = [e for e in entries if e.startswith(SERVER)]
    return server if prog == SERVER else [e for e in entries if e not in server]


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], list[Sequence[str]]]]:
    """Each command's words (``("med", "start")``; ``()`` the program itself) and its
    options (each option's names: ``["-o", "--output"]``), the program's first. An option
    ``--help`` does not show (``sync --interval``, for tests) is not for operators."""
    options = [
        a.option_strings
        for a in parser._actions
        if a.option_strings and a.dest != "help" and a.help != argparse.SUPPRESS
    ]
    yield path, options
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*path, name))


def _word(text: str) -> str:
    """``text`` as a whole word (``--visit`` is not in ``--visits``, nor ``role`` in
    ``roles``)."""
    return rf"(?<![\w-]){re.escape(text)}(?![\w-])"


# Before a command where an entry starts: the program and global options, if any.
_LEAD = r"^ *(?:careline(?:-server)? +)?(?:(?:\[[^\]\n]*\]|--[\w-]+(?: +[A-Z]+)?) +)*"


def _names_command(entry: str, words: tuple[str, ...]) -> bool:
    """Whether ``entry`` documents the command ``words``: they start it, or follow a ``|``
    (``user role USER | user deactivate USER``), or, the last one alone, follow a ``|`` in
    an entry naming the parent (``admin keys rotate | reencrypt | retire VERSION``)."""
    phrase = _word(" ".join(words))
    if re.search(_LEAD + phrase, entry) or re.search(r"\| *" + phrase, entry):
        return True
    return len(words) > 1 and bool(
        re.search(r"\| *" + _word(words[-1]), entry) and _names_command(entry, words[:-1])
    )


def _missing(prog: str, parser: argparse.ArgumentParser) -> list[str]:
    """The commands of ``parser`` no entry names, and the options not in any entry naming
    their command (an option with a short name may be shown by it: ``-o FILE``)."""
    entries = _entries(prog)
    missing: list[str] = []
    for words, options in _commands(parser):
        where = [e for e in entries if not words or _names_command(e, words)]
        if not words and prog != SERVER:  # the global options: the ``careline [...]`` line
            where = [e for e in entries if e.startswith("careline ")]
        command = " ".join((prog, *words))
        if not where:
            missing.append(command)
            continue
        text = "\n".join(where)
        missing += [
            f"{command} {names[-1]}"
            for names in options
            if not any(re.search(_word(name), text) for name in names)
        ]
    return missing


@pytest.mark.parametrize(
    ("prog", "parser"),
    [("careline", build_parser()), (SERVER, build_server_parser())],
    ids=["careline", SERVER],
)
def test_every_command_and_option_is_in_the_readme_reference(
    prog: str, parser: argparse.ArgumentParser
) -> None:
    assert _missing(prog, parser) == []


def test_a_command_or_option_left_out_of_the_reference_is_found() -> None:
    """The check itself: an entry naming the command with one option less is caught."""
    parser = argparse.ArgumentParser(prog="careline")
    med = parser.add_subparsers().add_parser("med").add_subparsers()
    start = med.add_parser("start")
    start.add_argument("--name")
    start.add_argument("--no-such-option-documented")
    med.add_parser("no-such-action")
    assert _missing("careline", parser) == [
        "careline med start --no-such-option-documented",
        "careline med no-such-action",
    ]
