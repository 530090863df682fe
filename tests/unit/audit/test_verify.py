from __future__ import annotations

from core.audit.verify import verify_audit_log
from core.records.workstation import Workstation


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
