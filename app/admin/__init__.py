"""Screens for the clinic's administrators (Settings → Staff)."""
