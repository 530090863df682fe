"""Frozen entry point of ``careline-server``."""

import sys

from core.cli.server import main

sys.exit(main())
