"""What to tell a person about ops refused by verification (core.records.op_trust).

One wording for ``careline sync`` and the app's status bar: changes from another
workstation kept aside here (quarantined, never applied), and this workstation's own
changes another replica refused. Both point to ``careline quarantine list``.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.records import op_trust
from core.store.database import Database

SEE = "'careline quarantine list'"


def trust_notice(
    quarantined: int,
    quarantine_reason: str | None,
    refused: Sequence[tuple[str, int, str]],
) -> str | None:
    """The sentence(s) for ``quarantined`` ops held here (with the latest reason) and our
    ``refused`` ops (origin, seq, reason) another replica holds aside; None if neither."""
    parts: list[str] = []
    if quarantined > 0:
        parts.append(
            f"{_changes(quarantined)} from another workstation {_were(quarantined)} refused "
            f"and not applied here{_why(quarantined, quarantine_reason)} See {SEE}."
        )
    if refused:
        count = len(refused)
        parts.append(
            f"{_changes(count)} made on this computer {_were(count)} refused by another "
            f"workstation{_why(count, refused[-1][2])} Tell your administrator; see {SEE}."
        )
    return " ".join(parts) or None


def _changes(count: int) -> str:
    return f"{count} change" if count == 1 else f"{count} changes"


def _were(count: int) -> str:
    return "was" if count == 1 else "were"


def _why(count: int, reason: str | None) -> str:
    # op_trust words each reason about one op ("its signature does not verify ..."); of
    # several, the latest one's is said.
    text = (reason or "").strip()[:200]
    if not text:
        return "."
    return f": {text}." if count == 1 else f". Latest reason: {text}."


def quarantine_state(db: Database) -> tuple[int, str | None]:
    """How many ops are held aside on this replica, and the most recently seen reason."""
    held = op_trust.quarantined(db)
    if not held:
        return 0, None
    return len(held), max(held, key=lambda q: q.last_seen).reason
