"""Careline core: Qt-free domain, storage, crypto and sync. Never imports PySide6 or app."""
