"""Careline's PySide6 desktop app. Talks to core only through core's public API."""
