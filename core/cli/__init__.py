"""Command lines: ``careline`` (workstation) and ``careline-server`` (headless)."""
