"""A merged chart is as closed as the most restricted chart it holds (tester report E1):
restricting, care teams and break-glass on merged charts, what the merge says beforehand,
the same access on a workstation the merge reached by sync; and a chart's access changes
in its own audit history (E2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.authz.tuples import RelationTuple
from core.crypto.kdf import FAST_PARAMS
from core.records import chart_access as ca
from core.records.audit_review import AuditFilter, chart_history, list_entries
from core.records.break_glass import BreakGlass
from core.records.clinic import ClinicRecords
from core.records.errors import NotAllowedError
from core.records.merges import Merges
from core.records.notes import Notes
from core.records.relations import relation_id, write_tuple
from core.sync.responder import Responder
from core.sync.session import sync
from core.sync.transport import LocalTransport
from tests.clinic_identity import two_desks
from tests.conftest import PASSWORD
from tests.unit.sync.replicas import new_replica

pytestmark = pytest.mark.strict_authz


def _clinic() -> tuple[ClinicRecords, str, str]:
    """Okafor restricted (care team: doc), with a penicillin allergy and a note, and a
    second, unrestricted registration of him."""
    admin = new_replica("admin")
    admin.set_up_clinic("Riverside", "admin", "Ada Admin", PASSWORD)
    for name, role in (("doc", "clinician"), ("kim", "clinician"), ("nora", "nurse"),
                       ("bea", "nurse")):  # fmt: skip
        admin.add_user(name, name.title(), role, PASSWORD)
    doc = _as(admin, "doc")
    old = doc.add_patient("Okafor", "Chidi", "1980-04-12").id
    doc.add_allergy(old, "Penicillin")
    Notes(doc).create(old, "HIV positive, on treatment")
    ca.set_restricted(doc, old, True)
    new = admin.add_patient("Okafor", "Chidi", "1980-04-12", allow_duplicate=True).id
    return admin, old, new


def _as(clinic: ClinicRecords, name: str) -> ClinicRecords:
    return ClinicRecords(clinic.db, name, FAST_PARAMS)


def test_a_restricted_chart_merged_into_an_open_one_stays_closed() -> None:
    admin, old, new = _clinic()
    Merges(admin).merge(old, new, "same person")  # the new, unrestricted chart kept
    nora, doc = _as(admin, "nora"), _as(admin, "doc")
    for pid in (new, old):
        chart = nora.open_chart(pid)
        assert not chart.clinical and chart.allergies == ()
        with pytest.raises(
            NotAllowedError, match=r"^Only the people on this restricted chart's care team can"
        ):
            Notes(nora).for_patient(pid)
        assert [a.substance for a in doc.open_chart(pid).allergies] == ["Penicillin"]
    # The survivor shows as restricted (the chart's marker), care team and all.
    access = ca.chart_access(nora, new)
    assert access.restricted and ca.is_restricted(admin.db, new)
    assert (access.patient.id, access.restricted_by, access.usernames()) == (new, (old,), ["doc"])
    # Undoing the merge gives each chart its own access back.
    Merges(admin).unmerge(old)
    assert nora.open_chart(new).clinical and not nora.open_chart(old).clinical


def test_the_care_team_of_a_merged_chart_is_on_every_restricted_chart_in_it() -> None:
    """Two restricted charts with different care teams: only someone on both reads the
    merged chart (the strict reading: merging widens no one's access)."""
    admin, old, new = _clinic()
    ca.add_to_care_team(admin, new, "kim")
    ca.set_restricted(admin, new, True)
    Merges(admin).merge(old, new, "same person")
    doc, kim = _as(admin, "doc"), _as(admin, "kim")
    assert not doc.may("view_clinical", new) and not kim.may("view_clinical", new)
    assert ca.chart_access(admin, new).usernames() == []
    # Adding someone to the merged chart's care team adds them on every chart it holds.
    assert ca.add_to_care_team(admin, new, "doc").usernames() == ["doc"]
    assert doc.may("view_clinical", new) and not kim.may("view_clinical", new)
    ca.remove_from_care_team(admin, new, "doc")
    assert not doc.may("view_clinical", new)
    # Lifting the restriction lifts it on every chart it holds.
    assert not ca.set_restricted(admin, new, False).restricted
    assert kim.may("view_clinical", new) and _as(admin, "nora").may("view_clinical", old)


def test_break_glass_on_the_merged_chart_opens_all_of_it() -> None:
    admin, old, new = _clinic()
    Merges(admin).merge(old, new, "same person")
    bea = _as(admin, "bea")
    BreakGlass(bea).open(new, "collapsed in the waiting room")
    assert [a.substance for a in bea.open_chart(new).allergies] == ["Penicillin"]
    assert _as(admin, "nora").open_chart(new).allergies == ()


def test_merging_says_which_chart_is_restricted() -> None:
    admin, old, new = _clinic()
    other = admin.add_patient("Ames", "Bo", "1970-01-01").id
    assert ca.merge_warning(admin, other, new) == ""
    warning = ca.merge_warning(admin, new, old)
    assert warning == (
        f"Restricted: chart OKAFOR, Chidi ({old}) is restricted. The merged chart will be "
        "restricted too: only those on the care team of every restricted chart in it (doc), "
        "or who break the glass, will read its clinical records."
    )


def test_a_merge_synced_to_another_workstation_closes_the_chart_there(
    tmp_path: Path, no_keyring: None
) -> None:
    """The restriction and the merge are made on one workstation; the other, which only
    receives them, refuses the nurse the same reads."""
    a, b = two_desks(tmp_path)
    a.add_staff("nora", "Nora Nurse", "nurse", PASSWORD)
    old = a.records.add_patient("Okafor", "Chidi", "1980-04-12").id
    a.records.add_allergy(old, "Penicillin")
    new = a.records.add_patient("Okafor", "Chidi", "1980-04-12", allow_duplicate=True).id
    sync(b.database, LocalTransport(Responder(a.database)), "admin")
    nora_b = ClinicRecords(b.database, "nora", FAST_PARAMS)
    assert [x.substance for x in nora_b.open_chart(old).allergies] == ["Penicillin"]
    ca.set_restricted(a.records, old, True)
    Merges(a.records).merge(old, new, "same person")
    sync(b.database, LocalTransport(Responder(a.database)), "admin")
    assert b.database.query("SELECT count(*) FROM quarantine") == [(0,)]
    assert nora_b.open_chart(new).allergies == ()
    assert ca.is_restricted(b.database, new)


def test_a_charts_history_lists_who_restricted_it_and_its_care_team() -> None:
    admin, old, _ = _clinic()
    ca.add_to_care_team(admin, old, "kim")
    found = [(r.actor, r.action, r.patient) for r in chart_history(admin.db, old)]
    assert ("admin", "access.grant", old) in found  # kim put on the care team
    assert ("doc", "access.grant", old) in found  # doc joined, then restricted it
    grants = list_entries(admin.db, AuditFilter(action="access.grant"))
    assert {r.patient for r in grants} == {old}
    assert {r.details["patient"] for r in grants} == {old}


def test_older_access_entries_without_the_patient_are_found_by_it() -> None:
    """An entry as the previous release wrote it (the chart named only as the tuple's
    object) is found by the patient filter and names the patient."""
    admin, old, _ = _clinic()
    t = RelationTuple(f"patient:{old}", "care_team", "user:kim")
    details = {"object": t.object, "relation": t.relation, "subject": t.subject}
    with admin.db.write("admin", "access.grant", "relation", relation_id(t), details) as tx:
        write_tuple(tx, "admin", t, True)
    [row] = [r for r in chart_history(admin.db, old) if r.details == details]
    assert row.patient == old and row.to_dict()["patient"] == old
