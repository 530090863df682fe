"""What an import did: each entry created, matched or skipped, with the reason."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Outcome:
    """What became of one entry: the resource (``Patient/p1``), the record it is now (or
    matched), and why when it was matched or skipped."""

    resource: str
    record_id: str | None = None
    reason: str | None = None


@dataclass
class ImportReport:
    """What an import created, matched and skipped (with reasons)."""

    batch: str  # the bundle's digest: the audit entries of the import name it
    created: list[Outcome] = field(default_factory=list)
    matched: list[Outcome] = field(default_factory=list)
    skipped: list[Outcome] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """For ``--json`` output."""
        return {
            "batch": self.batch,
            "created": [asdict(o) for o in self.created],
            "matched": [asdict(o) for o in self.matched],
            "skipped": [asdict(o) for o in self.skipped],
        }

    def text(self) -> str:
        """A person's summary: counts, then each match and skip with its reason."""
        lines = [
            f"Created {len(self.created)}, matched {len(self.matched)}, "
            f"skipped {len(self.skipped)} (batch {self.batch})."
        ]
        lines += [f"matched  {o.resource} -> {o.record_id}: {o.reason}" for o in self.matched]
        lines += [f"skipped  {o.resource}: {o.reason}" for o in self.skipped]
        return "\n".join(lines)
