"""How a ``careline`` command group is declared: its arguments and its handler together,
in the group's own module (``core/cli/<group>.py``); :mod:`core.cli.workstation` lists the
groups once and builds the parser and the dispatch from them."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # Only for the handler's type: a command module imports the context itself, and the
    # parser of ``careline --help`` does not need it.
    from core.cli.context import Context

Handler = Callable[["Context"], int]


@dataclass(frozen=True)
class CommandGroup:
    """One top-level command: ``careline NAME ...``."""

    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Handler

    def add_to(self, sub: Any) -> None:
        """Add this group's parser to the top-level subparsers; dispatch goes to ``run``."""
        parser = sub.add_parser(self.name, help=self.help)
        self.arguments(parser)
        parser.set_defaults(handler=self.run)


@dataclass(frozen=True)
class LazyGroup:
    """A command group named and described without importing its module.

    Every ``careline`` process is one command: importing all the groups' modules (and,
    through them, the sync, attachment, FHIR and printing code) cost each command a
    third of a second before it did anything. ``careline --help`` lists a group from its
    ``name`` and ``help``; only the group being run is imported (:meth:`load`).
    """

    name: str
    help: str
    module: str  # its ``GROUP`` is the CommandGroup of the same name

    def load(self) -> CommandGroup:
        """The group itself (imports its module)."""
        group: CommandGroup = importlib.import_module(self.module).GROUP
        if (group.name, group.help) != (self.name, self.help):
            raise RuntimeError(f"{self.module}.GROUP is not the group {self.name!r} listed")
        return group

    def add_stub_to(self, sub: Any) -> None:
        """List the group (name and help) with none of its grammar: the parser that picks
        the command, and the top-level help, need no more. Whatever follows the name is
        left for the group's real parser."""
        parser = sub.add_parser(self.name, help=self.help, add_help=False)
        parser.add_argument("rest", nargs=argparse.REMAINDER)


def actions(parser: argparse.ArgumentParser, dest: str = "action") -> Any:
    """The group's required ACTION subcommands (``patient add``, ``audit verify``, ...)."""
    return parser.add_subparsers(dest=dest, metavar="ACTION", required=True)
