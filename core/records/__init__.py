"""Layer 4: clinical record types and the operations on them (one write path for UI and CLI)."""
