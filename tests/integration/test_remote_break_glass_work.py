"""Work done under a break-glass grant reaches the other workstation by real sync and is
applied there: a nurse (or a clinician off the care team) who breaks the glass on a
restricted chart and writes on it (a note, vitals) is judged at remote apply with the grant
that was open at the op's time, whether it arrived earlier in the same batch or in an
earlier session. Before, that work was quarantined ("write note needs ... care team") and
held back every later op of the workstation: its sync was blocked in the emergency.

A grant gives no more than locally, and only its person, on its chart, while it is open:
work after it expired, by someone else, on another chart, or that the grant does not cover
(a nurse signing a note), is quarantined with the reason, as are forged ops in
test_remote_apply_forgeries.py (a workstation's genuine key, its own checks removed)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from core.records import authorize, break_glass_audit, op_trust
from core.records.break_glass import BreakGlass
from core.records.entries import ClinicalEntries
from core.records.notes import Notes
from core.store import clinic_time, oplog
from tests.conftest import PASSWORD
from tests.integration.test_remote_apply_forgeries import (
    Desks,
    _refused,
    _restricted_chart,
    _sync,
)
from tests.integration.test_remote_apply_forgeries import desks as desks

pytestmark = [pytest.mark.strict_authors, pytest.mark.strict_authz]

VITALS = {"code": "8867-4", "value": "72", "unit": "/min", "observed_at": "2024-05-01 09:00"}


def _applied_on_a(desks: Desks, patient_id: str) -> tuple[list[str], list[str]]:
    """The notes' bodies and the vitals' values on the chart, as desk A holds them."""
    clin = desks.records(desks.a, "clin")
    notes = sorted(n.body for n in Notes(clin).for_patient(patient_id))
    rows = desks.a.database.query(
        "SELECT value FROM observations WHERE patient_id = ? ORDER BY value", (patient_id,)
    )
    return notes, [str(r[0]) for r in rows]


def _synced_cleanly(desks: Desks) -> None:
    assert _sync(desks).refused == []
    assert op_trust.quarantined(desks.a.database) == []
    assert op_trust.quarantined(desks.b.database) == []


def test_a_nurses_note_and_vitals_under_a_grant_sync_with_the_grant(desks: Desks) -> None:
    """The reproduction: the grant and the work in one batch."""
    pid = _restricted_chart(desks)
    nurse_b = desks.records(desks.b, "nurse1")
    BreakGlass(nurse_b).open(pid, "unconscious", 30)
    Notes(nurse_b).create(pid, "given oxygen")
    ClinicalEntries(nurse_b).add("observation", pid, VITALS)
    _synced_cleanly(desks)
    assert _applied_on_a(desks, pid) == (["HIV positive", "given oxygen"], ["72"])


def test_work_under_a_grant_synced_in_an_earlier_session_applies(desks: Desks) -> None:
    """A clinician off the care team: the grant reaches A first, the work later (judged
    with the grant A holds), and the workstation's later ops follow it."""
    desks.a.records.add_user("clin2", "Cy Clinician", "clinician", PASSWORD)
    pid = _restricted_chart(desks)
    clin2_b = desks.records(desks.b, "clin2")
    BreakGlass(clin2_b).open(pid, "anaphylaxis", 60)
    _synced_cleanly(desks)
    note = Notes(clin2_b).create(pid, "adrenaline given")
    Notes(clin2_b).sign(note.id)  # a clinician's grant covers signing
    ClinicalEntries(clin2_b).add("observation", pid, {**VITALS, "value": "130"})
    _synced_cleanly(desks)
    assert _applied_on_a(desks, pid) == (["HIV positive", "adrenaline given"], ["130"])
    assert Notes(desks.records(desks.a, "clin")).get(note.id).signed_at is not None


def _forged(desks: Desks, write: Callable[[], object]) -> oplog.Op:
    """What B writes with its own checks removed (its genuine device key signs it)."""
    authorize.ENFORCING = False
    try:
        write()
    finally:
        authorize.ENFORCING = True
    return oplog.ops_after(desks.b.database, {}, 100_000)[-1]


@pytest.mark.parametrize("same_batch", [True, False], ids=["same batch", "grant synced"])
def test_work_after_the_grant_expired_is_quarantined(
    desks: Desks, monkeypatch: pytest.MonkeyPatch, same_batch: bool
) -> None:
    pid = _restricted_chart(desks)
    nurse_b = desks.records(desks.b, "nurse1")
    BreakGlass(nurse_b).open(pid, "unconscious", 5)
    if not same_batch:
        _synced_cleanly(desks)
    # Two hours on: both desks' clocks (the HLC's clinic time and the grants' clock).
    later = clinic_time.wall_ms() + 2 * 60 * 60 * 1000
    monkeypatch.setattr(clinic_time, "wall_ms", lambda: later)
    break_glass_audit.install(desks.b.database, lambda: datetime.now(UTC) + timedelta(hours=2))
    forged = _forged(desks, lambda: Notes(nurse_b).create(pid, "written after it expired"))
    _refused(desks, forged, "write note needs a nurse or a clinician (on the care team")
    assert _applied_on_a(desks, pid)[0] == ["HIV positive"]
    assert len(BreakGlass(desks.records(desks.a, "admin")).openings()) == 1  # it synced


@pytest.mark.parametrize("same_batch", [True, False], ids=["same batch", "grant synced"])
def test_work_by_someone_else_than_the_grants_person_is_quarantined(
    desks: Desks, same_batch: bool
) -> None:
    desks.a.records.add_user("nurse2", "Ned Nurse", "nurse", PASSWORD)
    pid = _restricted_chart(desks)
    BreakGlass(desks.records(desks.b, "nurse1")).open(pid, "unconscious", 30)
    if not same_batch:
        _synced_cleanly(desks)
    nurse2 = desks.records(desks.b, "nurse2")
    forged = _forged(desks, lambda: Notes(nurse2).create(pid, "not mine to write"))
    _refused(desks, forged, "write note needs a nurse or a clinician (on the care team")
    assert _applied_on_a(desks, pid)[0] == ["HIV positive"]


@pytest.mark.parametrize("same_batch", [True, False], ids=["same batch", "grant synced"])
def test_a_grant_on_one_chart_allows_no_work_on_another(desks: Desks, same_batch: bool) -> None:
    pid = _restricted_chart(desks)
    other = _restricted_chart(desks)
    nurse_b = desks.records(desks.b, "nurse1")
    BreakGlass(nurse_b).open(pid, "unconscious", 30)
    Notes(nurse_b).create(pid, "given oxygen")  # on the grant's chart: fine
    if not same_batch:
        _synced_cleanly(desks)
    forged = _forged(desks, lambda: ClinicalEntries(nurse_b).add("observation", other, VITALS))
    _refused(desks, forged, "record vitals needs a nurse or a clinician (on the care team")
    assert _applied_on_a(desks, other) == (["HIV positive"], [])
    assert _applied_on_a(desks, pid)[0] == ["HIV positive", "given oxygen"]


def test_a_grant_gives_a_nurse_no_more_than_locally(desks: Desks) -> None:
    """Signing needs a clinician, grant or not (the model's sign_note)."""
    pid = _restricted_chart(desks)
    nurse_b = desks.records(desks.b, "nurse1")
    BreakGlass(nurse_b).open(pid, "unconscious", 30)
    note = Notes(nurse_b).create(pid, "given oxygen")
    forged = _forged(desks, lambda: Notes(nurse_b).sign(note.id))
    _refused(desks, forged, "sign note needs")
    assert Notes(desks.records(desks.a, "clin")).get(note.id).signed_at is None
