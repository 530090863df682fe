"""A save names its base (what each field held when the form was opened): a field someone
else changed since is never silently replaced, whether the change came from a colleague on
this workstation or from another one by sync. Real SQLCipher replicas, real sync."""

from __future__ import annotations

import json

import pytest

from core.records.clinic import ClinicRecords
from core.records.edit_base import ChangedField, ChangedSinceOpened
from tests.unit.sync.replicas import new_replica, sync_pair


def _patient(records: ClinicRecords) -> str:
    return records.add_patient("Kowalski", "Jan", "1970-05-01", phone="+48 500 000 000").id


def _updates(records: ClinicRecords) -> int:
    return len(records.db.query("SELECT 1 FROM audit_log WHERE action = 'patient.update'"))


def test_a_field_changed_since_the_form_opened_refuses_the_save_and_writes_nothing() -> None:
    a = new_replica("frida")
    pid = _patient(a)
    base = {"phone": "+48 500 000 000", "given": "Jan"}
    # Someone else saves another phone on this workstation (causally before the save).
    ClinicRecords(a.db, "admin").update_patient(pid, {"phone": "+48 999 999 999"})
    updates = _updates(a)

    with pytest.raises(ChangedSinceOpened) as refused:
        a.update_patient(pid, {"phone": "+48 111 111 111", "given": "Janek"}, based_on=base)

    [changed] = refused.value.fields
    assert (changed.field, changed.label, changed.base, changed.current) == (
        "phone", "Phone", "+48 500 000 000", "+48 999 999 999",
    )  # fmt: skip
    assert (changed.author, changed.here, changed.base_known) == ("admin", True, True)
    assert changed.time[:4].isdigit()
    after = a.get_patient(pid)
    assert (after.phone, after.given) == ("+48 999 999 999", "Jan")  # nothing of the save
    assert _updates(a) == updates  # not even its audit entry
    # The person chose to keep theirs: saved on the value they have now seen.
    saved = a.update_patient(
        pid, {"phone": "+48 111 111 111"}, based_on={"phone": "+48 999 999 999"}
    )
    assert saved.phone == "+48 111 111 111"


def test_fields_the_save_does_not_change_are_neither_compared_nor_written() -> None:
    a = new_replica("frida")
    pid = _patient(a)
    base = {"mrn": None}
    ClinicRecords(a.db, "admin").update_patient(pid, {"phone": "+48 999 999 999"})
    saved = a.update_patient(pid, {"mrn": "MRN-77"}, based_on=base)
    assert (saved.mrn, saved.phone) == ("MRN-77", "+48 999 999 999")


def test_the_same_value_saved_meanwhile_asks_nothing() -> None:
    a = new_replica("frida")
    pid = _patient(a)
    ClinicRecords(a.db, "admin").update_patient(pid, {"phone": "+48 111 111 111"})
    saved = a.update_patient(
        pid, {"phone": "+48 111 111 111"}, based_on={"phone": "+48 500 000 000"}
    )
    assert saved.phone == "+48 111 111 111"


def test_a_change_synced_from_another_workstation_refuses_the_save_too() -> None:
    """The lost update without any draft: the form is open here, another workstation's
    change arrives by sync, then Save. This save comes causally after it (the register
    would let it supersede): only the base tells."""
    here, there = new_replica("frida"), new_replica("admin")
    pid = _patient(here)
    sync_pair(there, here)
    base = {"phone": "+48 500 000 000"}
    there.update_patient(pid, {"phone": "+48 999 999 999"})
    sync_pair(there, here)
    assert here.get_patient(pid).phone == "+48 999 999 999"

    with pytest.raises(ChangedSinceOpened) as refused:
        here.update_patient(pid, {"phone": "+48 111 111 111"}, based_on=base)
    [changed] = refused.value.fields
    assert (changed.current, changed.author, changed.here) == ("+48 999 999 999", "admin", False)
    assert here.get_patient(pid).phone == "+48 999 999 999"


def test_an_unknown_base_counts_as_changed_and_no_base_at_all_is_the_old_behaviour() -> None:
    a = new_replica("frida")
    pid = _patient(a)
    ClinicRecords(a.db, "admin").update_patient(pid, {"phone": "+48 999 999 999"})
    # A draft kept before forms remembered their base: the field's base is not known.
    with pytest.raises(ChangedSinceOpened) as refused:
        a.update_patient(pid, {"phone": "+48 111 111 111"}, based_on={})
    assert [(f.field, f.base_known) for f in refused.value.fields] == [("phone", False)]
    # The command line names no base: it sets what it is told.
    assert a.update_patient(pid, {"phone": "+48 111 111 111"}).phone == "+48 111 111 111"


def test_what_a_kept_draft_would_meet_is_read_without_writing() -> None:
    a = new_replica("frida")
    pid = _patient(a)
    ClinicRecords(a.db, "admin").update_patient(pid, {"phone": "+48 999 999 999"})
    oplog_rows = a.db.query("SELECT count(*) FROM oplog")
    found = a.patient_changed_since(
        pid, {"phone": "+48 111 111 111", "mrn": "X-1"}, {"phone": "+48 500 000 000", "mrn": None}
    )
    assert [(f.field, f.current) for f in found] == [("phone", "+48 999 999 999")]
    assert isinstance(found[0], ChangedField)
    assert a.db.query("SELECT count(*) FROM oplog") == oplog_rows
    # The refusal names the author by full name when they have an account.
    a.add_user("admin2", "Ada Adeyemi", "admin", "correct horse battery staple")
    ClinicRecords(a.db, "admin2").update_patient(pid, {"phone": "+48 777 777 777"})
    [named] = a.patient_changed_since(pid, {"phone": "1"}, {"phone": "+48 999 999 999"})
    assert (named.author, named.author_name) == ("admin2", "Ada Adeyemi")
    audit = a.db.query("SELECT details FROM audit_log WHERE action = 'patient.update'")
    assert [json.loads(d) for (d,) in audit] == [{"fields": ["phone"]}] * 2  # no values
