"""Frozen entry point of ``careline``: the desktop app with no COMMAND, else the CLI.

Also of ``careline-app`` (Windows, macOS: careline.spec), the same program built without a
console window.
"""

import os
import sys

from app.entry import main

# A windowed program (careline-app.exe) has no console: sys.stdout and sys.stderr are None
# there, and writing a message to None would crash the app instead of the message going
# nowhere.
if sys.stdout is None:
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 -- open for the program's life
if sys.stderr is None:
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115

sys.exit(main())
