"""Audit log verification and reporting (layer 4, beside core.records)."""
