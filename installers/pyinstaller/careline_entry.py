"""Frozen entry point of ``careline``: the desktop app with no COMMAND, else the CLI."""

import sys

from app.entry import main

sys.exit(main())
