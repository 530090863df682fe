"""Settings schema and loading (lowest layer, beside core.crypto)."""
