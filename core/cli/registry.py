"""How a ``careline`` command group is declared: its arguments and its handler together,
in the group's own module (``core/cli/<group>.py``); :mod:`core.cli.workstation` lists the
groups once and builds the parser and the dispatch from them."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.cli.context import Context

Handler = Callable[[Context], int]


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


def actions(parser: argparse.ArgumentParser, dest: str = "action") -> Any:
    """The group's required ACTION subcommands (``patient add``, ``audit verify``, ...)."""
    return parser.add_subparsers(dest=dest, metavar="ACTION", required=True)
