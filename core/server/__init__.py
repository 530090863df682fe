"""Layer 6: the headless clinic server (sync API, enrollment, admin CLI)."""
