"""Large clinics for sync tests, written fast: many patients per store transaction."""

from __future__ import annotations

from core.records.changes import change
from core.records.crdt import RecordDoc, write
from core.store.database import Database


def bulk_patients(db: Database, prefix: str, count: int, author: str = "admin") -> None:
    """``count`` new patients ``<prefix>00000``… on ``db``, one op each, 1,000 per
    transaction (the ordinary write path, batched: set-up of thousands takes seconds)."""
    for start in range(0, count, 1000):
        with db.write(author, "test.bulk", "patient", "many") as tx:
            for i in range(start, min(start + 1000, count)):

                def create(doc: RecordDoc, hlc: str, i: int = i) -> None:
                    for field, value in (
                        ("family", f"{prefix}{i:05d}"),
                        ("given", "G"),
                        ("birth_date", "1980-01-01"),
                    ):
                        write(doc, field, value, hlc, author)

                change(tx, author, f"{prefix.lower()}{i:07d}", "patient", create)
