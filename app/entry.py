"""``careline`` console script: the CLI, or the desktop app when no command is given.

Importing this module does not import Qt, so the command line works where the ``gui``
extra is not installed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from app.display import display_problem
from core.cli.workstation import EXIT_ERROR, EXIT_USAGE, run


def _open_gui(args: argparse.Namespace) -> int:
    problem = display_problem()
    if problem is not None:
        sys.stderr.write(
            f"careline: error: the desktop app needs a screen, and {problem}. "
            "Without one, use the command line: careline --help\n"
        )
        return EXIT_ERROR
    try:
        from app.main import run_app
    except ImportError as exc:
        # A missing module has a name; a library that fails to load (a missing system
        # library, a broken install) only a message.
        missing = f"{exc.name} is missing" if exc.name else str(exc)
        sys.stderr.write(
            f"careline: error: the desktop app needs PySide6 ({missing}); "
            "install the 'gui' extra: pip install 'careline[gui]'\n"
        )
        return EXIT_USAGE
    return run_app(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    return run(argv, _open_gui)


if __name__ == "__main__":
    sys.exit(main())
