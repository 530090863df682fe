from __future__ import annotations

from core.audit.verify import verify_audit_log
from core.records.workstation import Workstation
from core.store import audit_chain


def _fill(ws: Workstation) -> None:
    r = ws.records
    for i in range(4):
        p = r.add_patient(f"Family{i}", "Given", "1990-01-01")
        r.open_chart(p.id)


def test_intact_chain(workstation: Workstation) -> None:
    _fill(workstation)
    report = verify_audit_log(workstation.database)
    assert report.ok and report.entries == report.head_seq > 8


def _raw(ws: Workstation, sql: str, params: tuple[object, ...] = ()) -> None:
    conn = ws.database._conn
    conn.execute(sql, params)


def test_edited_entry_is_named(workstation: Workstation) -> None:
    _fill(workstation)
    _raw(workstation, "UPDATE audit_log SET actor = 'someone-else' WHERE seq = 5")
    report = verify_audit_log(workstation.database)
    assert report.problems == ("audit entry 5 was altered: its content does not match its hash",)


def test_deleted_entry_is_named(workstation: Workstation) -> None:
    _fill(workstation)
    _raw(workstation, "DELETE FROM audit_log WHERE seq = 4")
    report = verify_audit_log(workstation.database)
    assert "audit entry 4 is missing (deleted)" in report.problems


def test_deleted_tail_is_named(workstation: Workstation) -> None:
    _fill(workstation)
    last = workstation.database.query("SELECT max(seq) FROM audit_log")[0][0]
    _raw(workstation, "DELETE FROM audit_log WHERE seq >= ?", (last - 1,))
    report = verify_audit_log(workstation.database)
    assert report.problems == (f"audit entries {last - 1}-{last} are missing from the end",)


def test_reordered_entries_are_named(workstation: Workstation) -> None:
    _fill(workstation)
    _raw(workstation, "UPDATE audit_log SET seq = -1 WHERE seq = 3")
    _raw(workstation, "UPDATE audit_log SET seq = 3 WHERE seq = 4")
    _raw(workstation, "UPDATE audit_log SET seq = 4 WHERE seq = -1")
    report = verify_audit_log(workstation.database)
    assert "audit entry 4 was moved to position 3 (entries reordered)" in report.problems
    assert "audit entry 3 was moved to position 4 (entries reordered)" in report.problems


def _rewrite(ws: Workstation, seq: int, actor: str, move_head: bool = False) -> None:
    """Edit entry ``seq`` the careful way: new content, and its hash recomputed to match."""
    row = ws.database.query(
        "SELECT seq, ts, actor, action, entity, entity_id, details, prev_hash FROM audit_log "
        "WHERE seq = ?",
        (seq,),
    )[0]
    entry = audit_chain.AuditEntry(row[0], row[1], actor, *row[3:7])
    new_hash = audit_chain.chain_hash(row[7], entry)
    _raw(ws, "UPDATE audit_log SET actor = ?, hash = ? WHERE seq = ?", (actor, new_hash, seq))
    if move_head:
        _raw(ws, "UPDATE meta SET value = ? WHERE key = ?",
             (f"{seq}:{new_hash}", audit_chain.HEAD_META_KEY))  # fmt: skip


def test_edit_with_recomputed_hash_is_named_at_the_next_link(workstation: Workstation) -> None:
    _fill(workstation)
    _rewrite(workstation, 5, "someone-else")
    report = verify_audit_log(workstation.database)
    assert report.problems == (
        "audit entry 6 does not follow entry 5 (chain broken): entry 5 was altered and its "
        "hash recomputed, or entries here were removed or reordered and renumbered",
    )


def test_last_entry_edited_with_recomputed_hash_is_named(workstation: Workstation) -> None:
    """The last entry has no successor: the head kept in ``meta`` catches it."""
    _fill(workstation)
    last = workstation.database.query("SELECT max(seq) FROM audit_log")[0][0]
    _rewrite(workstation, last, "someone-else")
    report = verify_audit_log(workstation.database)
    assert report.problems == (
        f"audit entry {last} does not match the recorded head of the log: it was altered and "
        "its hash recomputed, or replaced",
    )


def test_entry_appended_outside_the_write_path_is_named(workstation: Workstation) -> None:
    """A forged entry correctly chained onto the log, but the head was not moved."""
    _fill(workstation)
    head = workstation.database.query(
        "SELECT value FROM meta WHERE key = ?", (audit_chain.HEAD_META_KEY,)
    )[0][0]
    link = audit_chain.next_link(head, "2020-01-01T00:00:00.000+00:00", "admin",
                                 "patient.open", "patient", "p-x", None)  # fmt: skip
    e = link.entry
    _raw(workstation, "INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
         (e.seq, e.ts, e.actor, e.action, e.entity, e.entity_id, e.details, link.prev_hash,
          link.hash))  # fmt: skip
    report = verify_audit_log(workstation.database)
    assert report.problems == (
        f"audit entry {e.seq} comes after the recorded head of the log "
        "(added outside Careline's write path)",
    )


def test_missing_head_is_named(workstation: Workstation) -> None:
    _fill(workstation)
    _raw(workstation, "DELETE FROM meta WHERE key = ?", (audit_chain.HEAD_META_KEY,))
    report = verify_audit_log(workstation.database)
    assert report.problems == ("the recorded head of the audit log is missing (removed from meta)",)
