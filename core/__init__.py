"""Careline core: Qt-free domain, storage, crypto and sync. Never imports PySide6 or app."""

# The release, in one place: pyproject.toml reads it, sync states it to the other side.
__version__ = "0.2.0"
