"""Recording vital signs: a set is one transaction (all observations or none), values are
stored canonical and as typed, flagged for the patient's age, BMI worked out on reading."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from core.records.changes import change
from core.records.clinic import ClinicRecords
from core.records.entries import ClinicalEntries
from core.records.errors import NotFoundError, ValidationError
from core.records.op_trust import quarantined
from core.records.vital_signs import VitalSigns
from core.store.database import Database
from tests.unit.sync.replicas import materialized, new_replica, sync_pair
from tests.unit.sync.test_clocks import DAY, clock_off

SET = {
    "systolic": "150",
    "diastolic": "95",
    "pulse": "72",
    "temperature": "102",
    "respiratory_rate": "16",
    "spo2": "97",
    "weight": "154",
    "height": "67",
    "pain": "3",
}
UNITS = {"temperature": "F", "weight": "lb", "height": "in"}


def _counts(db: Database) -> tuple[int, int, int, int]:
    q = db.query
    return (
        q("SELECT count(*) FROM observations")[0][0],
        q("SELECT count(*) FROM record_states WHERE type = 'observation'")[0][0],
        q("SELECT count(*) FROM oplog")[0][0],
        q("SELECT count(*) FROM audit_log")[0][0],
    )


def test_a_set_is_stored_in_one_transaction_canonical_and_as_entered() -> None:
    a = new_replica("nurse")
    p = a.add_patient("Soto", "Luis", "1980-01-01")
    visit = ClinicalEntries(a).add("encounter", p.id, {"started_at": "2026-12-01T09:05"})
    before = _counts(a.db)
    readings = VitalSigns(a).record(p.id, SET, UNITS, "2026-12-01T09:10", visit)
    after = _counts(a.db)
    # Nine observations, each its document, row and op; ONE audit entry for the set.
    assert [after[i] - before[i] for i in range(4)] == [9, 9, 9, 1]
    audit = a.db.query("SELECT action, entity_id, details FROM audit_log ORDER BY seq DESC")[0]
    assert audit[:2] == ("vitals.record", p.id)
    # The entry names the codes and records, never a value.
    assert json.loads(audit[2]) == {
        "codes": [r.code for r in readings],
        "observations": [r.id for r in readings],
    }
    by_code = {r.code: r for r in readings}
    temp = by_code["8310-5"]
    assert (temp.value, temp.unit, temp.entered_value, temp.entered_unit) == (
        "38.89", "Cel", "102", "[degF]",
    )  # fmt: skip
    assert temp.text == "102 °F"
    assert temp.flag == "high"
    assert by_code["29463-7"].value == "69.853" and by_code["29463-7"].text == "154 lb"
    assert by_code["8480-6"].flag == "high" and by_code["8867-4"].flag is None
    assert {r.encounter_id for r in readings} == {visit}
    assert {r.observed_at for r in readings} == {"2026-12-01T09:10"}
    assert VitalSigns(a).for_visit(visit) == VitalSigns(a).readings(p.id)


def test_one_impossible_value_refuses_the_whole_set() -> None:
    a = new_replica("nurse")
    p = a.add_patient("Soto", "Luis", "1980-01-01")
    other = a.add_patient("Other", "Person", "1970-01-01")
    theirs = ClinicalEntries(a).add("encounter", other.id, {"started_at": "2026-12-01T09:05"})
    before = _counts(a.db)
    with pytest.raises(ValidationError) as caught:
        VitalSigns(a).record(p.id, {**SET, "systolic": "1200"}, UNITS)
    assert caught.value.field == "systolic"
    assert "1200 mmHg is not possible" in str(caught.value)
    with pytest.raises(ValidationError, match="is not below the systolic"):
        VitalSigns(a).record(p.id, {"systolic": "80", "diastolic": "120"})
    with pytest.raises(ValidationError, match="has no values"):
        VitalSigns(a).record(p.id, {"pulse": "  "})
    with pytest.raises(ValidationError, match="2999-01-01 09:00 is in the future"):
        VitalSigns(a).record(p.id, {"pulse": "70"}, observed_at="2999-01-01T09:00")
    with pytest.raises(ValidationError, match="is not a date and time"):
        VitalSigns(a).record(p.id, {"pulse": "70"}, observed_at="yesterday")
    with pytest.raises(NotFoundError, match="no visit"):
        VitalSigns(a).record(p.id, {"pulse": "70"}, encounter_id="nope")
    with pytest.raises(ValidationError, match="another patient's"):
        VitalSigns(a).record(p.id, {"pulse": "70"}, encounter_id=theirs)
    assert _counts(a.db) == before  # nothing of any refused set was written


def test_a_failure_inside_the_transaction_leaves_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """All or nothing even when the store fails after some observations were written."""
    a = new_replica("nurse")
    p = a.add_patient("Soto", "Luis", "1980-01-01")
    real, calls = change, []

    def failing(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("core.records.vital_signs.change", failing)
    before = _counts(a.db)
    with pytest.raises(OSError, match="disk full"):
        VitalSigns(a).record(p.id, SET, UNITS)
    assert _counts(a.db) == before


def test_flags_follow_the_patients_age_on_the_day() -> None:
    a = new_replica("nurse")
    baby = a.add_patient("Small", "Baby", "2026-06-01")
    adult = a.add_patient("Big", "Adult", "1960-06-01")
    vs = VitalSigns(a)
    [infant_pulse] = vs.record(baby.id, {"pulse": "150"}, observed_at="2026-11-01T10:00")
    [adult_pulse] = vs.record(adult.id, {"pulse": "150"}, observed_at="2026-11-01T10:00")
    assert (infant_pulse.flag, adult_pulse.flag) == (None, "high")


def test_bmi_comes_from_the_weight_and_the_latest_height_before_it() -> None:
    a = new_replica("nurse")
    p = a.add_patient("Soto", "Luis", "1980-01-01")
    vs = VitalSigns(a)
    vs.record(p.id, {"weight": "70kg"}, observed_at="2026-01-01T09:00")  # no height yet
    vs.record(p.id, {"height": "175cm"}, observed_at="2026-02-01T09:00")
    vs.record(p.id, {"weight": "95kg"}, observed_at="2026-03-01T09:00")
    sets = vs.sets(p.id)
    assert [s.observed_at for s in sets] == [
        "2026-03-01T09:00", "2026-02-01T09:00", "2026-01-01T09:00",
    ]  # fmt: skip
    assert [(s.bmi, s.bmi_flag) for s in sets] == [
        (Decimal("31.0"), "high"), (None, None), (None, None),
    ]  # fmt: skip
    # BMI is never stored: only what was typed.
    assert a.db.query("SELECT count(*) FROM observations WHERE code = '39156-5'") == [(0,)]


def test_readings_newest_first_and_by_code() -> None:
    a = new_replica("nurse")
    p = a.add_patient("Soto", "Luis", "1980-01-01")
    vs = VitalSigns(a)
    vs.record(p.id, {"pulse": "70", "spo2": "98"}, observed_at="2026-01-01T09:00")
    vs.record(p.id, {"pulse": "80"}, observed_at="2026-01-02T09:00")
    assert [r.value for r in vs.readings(p.id, "8867-4")] == ["80", "70"]
    assert [r.code for r in vs.readings(p.id)] == ["8867-4", "59408-5", "8867-4"]


def test_concurrent_corrections_of_a_value_are_a_conflict_after_sync() -> None:
    a, b = new_replica("ann"), new_replica("bob")
    p = a.add_patient("Soto", "Luis", "1980-01-01")
    [temp] = VitalSigns(a).record(p.id, {"temperature": "37.2C"}, observed_at="2026-01-01T09:00")
    sync_pair(b, a)
    VitalSigns(a).correct(temp.id, "38.2", "C")
    VitalSigns(b).correct(temp.id, "100.4", "F")
    sync_pair(a, b)
    sync_pair(b, a)
    conflicts = {c.field: c for c in a.conflicts(temp.id)}
    assert set(conflicts) == {"value", "entered_value", "entered_unit"}  # both flag high
    assert materialized(a) == materialized(b)
    # Choosing b's side of the value keeps b's whole reading: never 38.2 shown as °F.
    value = conflicts["value"]
    theirs = next(c for c in value.candidates if c.value == "38")
    a.resolve_conflict(value.id, choose=theirs.id)
    assert a.conflicts() == []
    settled = VitalSigns(a).get(temp.id)
    assert (settled.value, settled.text, settled.flag) == ("38", "100.4 °F", "high")
    sync_pair(b, a)
    assert b.conflicts() == [] and materialized(a) == materialized(b)


def test_a_typed_resolution_or_another_field_is_settled_as_usual() -> None:
    a, b = new_replica("ann"), new_replica("bob")
    p = a.add_patient("Soto", "Luis", "1980-01-01")
    [pulse] = VitalSigns(a).record(p.id, {"pulse": "72"}, observed_at="2026-01-01T09:00")
    sync_pair(b, a)
    VitalSigns(a).correct(pulse.id, "82")
    VitalSigns(b).correct(pulse.id, "92")
    sync_pair(a, b)
    [value_conflict, entered] = sorted(a.conflicts(pulse.id), key=lambda c: c.field)
    assert (value_conflict.field, entered.field) == ("entered_value", "value")
    a.resolve_conflict(entered.id, value="87")  # typed in: only that register
    assert [c.field for c in a.conflicts(pulse.id)] == ["entered_value"]


@pytest.mark.parametrize(
    ("typed", "words"),
    [
        ("2026-12-01", "'2026-12-01' has no time"),
        ("20261201", "'20261201' has no time"),
        ("2026-12-01T10:00+05:00", "names a time zone"),
    ],
)
def test_a_set_or_a_visit_with_a_time_nobody_typed_is_refused(typed: str, words: str) -> None:
    """Every write of a local time reads it alike: the vitals' "measured at", a reading's
    time changed later, and a visit's start."""
    a = new_replica("nurse")
    p = a.add_patient("Soto", "Luis", "1980-01-01")
    with pytest.raises(ValidationError) as caught:
        VitalSigns(a).record(p.id, {"pulse": "72"}, observed_at=typed)
    assert caught.value.field == "observed_at" and words in str(caught.value)
    entries = ClinicalEntries(a)
    with pytest.raises(ValidationError) as caught:
        entries.add("encounter", p.id, {"started_at": typed})
    assert caught.value.field == "started_at" and words in str(caught.value)
    [pulse] = VitalSigns(a).record(p.id, {"pulse": "72"}, observed_at="2026-12-01T09:00")
    with pytest.raises(ValidationError):
        entries.update("observation", pulse.id, {"observed_at": typed})
    assert a.db.query("SELECT observed_at FROM observations") == [("2026-12-01T09:00",)]
    assert a.db.query("SELECT count(*) FROM encounters") == [(0,)]


def test_a_time_more_than_a_few_minutes_ahead_of_the_clock_is_refused_when_entered() -> None:
    """The tester, at 21:14, stored a set "measured" at 23:59 that day (a day's slack was
    allowed for a wrong clock, but "now" comes from the same clock). A few minutes ahead
    (a watch a little fast) still goes; more is refused, naming the clock's time."""
    a = new_replica("nurse")
    p = a.add_patient("Soto", "Luis", "1980-01-01")
    now = dt.datetime.now().replace(second=0, microsecond=0)
    before = _counts(a.db)
    for ahead in (dt.timedelta(hours=23), dt.timedelta(minutes=6)):
        typed = (now + ahead).strftime("%Y-%m-%d %H:%M")
        with pytest.raises(ValidationError) as caught:
            VitalSigns(a).record(p.id, {"pulse": "71"}, observed_at=typed)
        assert caught.value.field == "observed_at"
        assert f"{typed} is in the future: this computer's clock says " in str(caught.value)
    assert _counts(a.db) == before
    soon = (now + dt.timedelta(minutes=3)).isoformat(timespec="minutes")
    [pulse] = VitalSigns(a).record(p.id, {"pulse": "71"}, observed_at=soon)
    assert pulse.observed_at == soon
    # Checked against the clock given (a form's, which its "Measured at" follows).
    earlier = now - dt.timedelta(hours=2)
    with pytest.raises(ValidationError, match="clock says " + earlier.strftime("%Y-%m-%d %H:%M")):
        VitalSigns(a).record(p.id, {"pulse": "71"}, observed_at=soon, now=earlier)


def test_a_set_measured_on_a_workstation_whose_clock_runs_ahead_applies_everywhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Clocks are hints (README, "Clocks"): the time check is made where a set is entered,
    against that workstation's clock, and never again at remote apply, where a reading
    "in the future" of this computer's clock is applied, not refused or quarantined."""
    ahead, server, other = new_replica("ann"), new_replica("srv"), new_replica("bob")
    p = server.add_patient("Soto", "Luis", "1980-01-01")
    sync_pair(ahead, server)
    days_ahead = dt.datetime.now() + dt.timedelta(days=3)
    with clock_off(monkeypatch, 3 * DAY):  # its changes are stamped three days ahead too
        [pulse] = VitalSigns(ahead).record(p.id, {"pulse": "71"}, now=days_ahead)
    sync_pair(ahead, server)
    sync_pair(other, server)
    for r in (server, other):
        [got] = VitalSigns(r).readings(p.id)
        assert (got.id, got.observed_at) == (pulse.id, days_ahead.isoformat(timespec="minutes"))
        assert got.recorded_by == "ann"
        assert quarantined(r.db) == []


def _ahead(minutes: int) -> str:
    """A time ``minutes`` ahead of this computer's clock, as a person types it."""
    now = dt.datetime.now().replace(second=0, microsecond=0)
    return (now + dt.timedelta(minutes=minutes)).strftime("%Y-%m-%d %H:%M")


def _time_conflict(a: ClinicRecords, b: ClinicRecords) -> tuple[str, str]:
    """A pulse whose time was changed on two workstations at once: its id and the
    conflict on its time, on ``a``."""
    p = a.add_patient("Soto", "Luis", "1980-01-01")
    [pulse] = VitalSigns(a).record(p.id, {"pulse": "72"}, observed_at="2026-12-01T09:00")
    sync_pair(b, a)
    ClinicalEntries(a).update("observation", pulse.id, {"observed_at": "2026-12-01T08:50"})
    ClinicalEntries(b).update("observation", pulse.id, {"observed_at": "2026-12-01T08:55"})
    sync_pair(a, b)
    [conflict] = a.conflicts(pulse.id)
    assert conflict.field == "observed_at"
    return pulse.id, conflict.id


def test_a_readings_time_changed_later_is_refused_ahead_of_the_clock_as_at_entry() -> None:
    """Entry refused a time more than a few minutes ahead of the clock, but changing a
    reading's time later (``ClinicalEntries.update``) or typing one to settle a conflict on
    it stored tomorrow's time: both are refused now, with entry's message, storing nothing."""
    a, b = new_replica("nurse"), new_replica("omar")
    pulse, conflict = _time_conflict(a, b)
    before = _counts(a.db)

    def edit(typed: str) -> None:
        ClinicalEntries(a).update("observation", pulse, {"observed_at": typed})

    def settle(typed: str) -> None:
        a.resolve_conflict(conflict, value=typed)

    for typed in (_ahead(24 * 60), _ahead(6)):
        for refused in (edit, settle):
            with pytest.raises(ValidationError) as caught:
                refused(typed)
            assert caught.value.field == "observed_at"
            assert f"{typed} is in the future: this computer's clock says " in str(caught.value)
    assert _counts(a.db) == before
    assert [c.id for c in a.conflicts(pulse)] == [conflict]
    # A watch a little fast still goes, as at entry.
    soon = _ahead(3)
    a.resolve_conflict(conflict, value=soon)
    assert VitalSigns(a).get(pulse).observed_at == soon.replace(" ", "T")
    ClinicalEntries(a).update("observation", pulse, {"observed_at": "2026-12-01 08:45"})
    assert VitalSigns(a).get(pulse).observed_at == "2026-12-01T08:45"


def test_a_readings_time_moved_on_a_workstation_whose_clock_runs_ahead_applies_everywhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The edit's check is made where the time is typed, against that computer's clock:
    a reading moved to a time "in the future" of this computer's clock by a workstation
    whose clock runs ahead is applied here by sync, never refused or quarantined."""
    ahead, server, other = new_replica("ann"), new_replica("srv"), new_replica("bob")
    p = server.add_patient("Soto", "Luis", "1980-01-01")
    [pulse] = VitalSigns(server).record(p.id, {"pulse": "71"}, observed_at="2026-12-01T09:00")
    sync_pair(ahead, server)
    days_ahead = (dt.datetime.now() + dt.timedelta(days=3)).isoformat(timespec="minutes")
    with clock_off(monkeypatch, 3 * DAY):  # its clock, and so its check, three days ahead
        ClinicalEntries(ahead).update("observation", pulse.id, {"observed_at": days_ahead})
    sync_pair(ahead, server)
    sync_pair(other, server)
    for r in (server, other):
        assert VitalSigns(r).get(pulse.id).observed_at == days_ahead
        assert quarantined(r.db) == []
    with pytest.raises(ValidationError, match="is in the future"):  # typed here: refused
        ClinicalEntries(other).update("observation", pulse.id, {"observed_at": days_ahead})


def test_who_recorded_a_set_is_read_with_it_and_in_its_json() -> None:
    """Who recorded a set showed only in the audit log: each reading (and set) names them,
    on the workstation that recorded it and on one it synced to, a correction by someone
    else leaving the recorder as it was."""
    a, b = new_replica("nina"), new_replica("omar")
    p = a.add_patient("Soto", "Luis", "1980-01-01")
    recorded = VitalSigns(a).record(
        p.id, {"pulse": "71", "spo2": "97"}, observed_at="2026-12-01T09:00"
    )
    assert {r.recorded_by for r in recorded} == {"nina"}
    sync_pair(b, a)
    VitalSigns(b).correct(recorded[0].id, "72")
    VitalSigns(b).record(p.id, {"pulse": "80"}, observed_at="2026-12-02T09:00")
    sync_pair(b, a)
    for r in (a, b):
        signs = VitalSigns(r)
        assert [(x.code, x.recorded_by) for x in signs.readings(p.id)] == [
            ("8867-4", "omar"), ("59408-5", "nina"), ("8867-4", "nina")
        ]  # fmt: skip
        assert [s.recorded_by for s in signs.sets(p.id)] == ["omar", "nina"]
        assert signs.readings(p.id)[1].as_json()["recorded_by"] == "nina"
