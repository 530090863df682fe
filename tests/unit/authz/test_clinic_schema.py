"""The clinic schema (core/authz/clinic.fga) answers the permission matrix the contract intends.

Every role against every permission, on an ordinary chart and on a restricted one, both allowed
and refused: a table, so a change to clinic.fga that moves any answer fails here.
"""

from __future__ import annotations

import pytest

from core.authz.engine import Engine
from core.authz.model import load_clinic_model
from core.authz.tuples import MemoryTuples, RelationTuple

CLINIC = "clinic:clinic"
OPEN = "patient:open"
RESTRICTED = "patient:restricted"

ROLES = {
    "carol": ["clinician"],
    "nina": ["nurse"],
    "fran": ["front_desk"],
    "adam": ["admin"],
    "alex": ["admin", "clinician"],  # a founder: admin AND clinician
    "dora": ["clinician"],
    "nell": ["nurse"],
}


def clinic_engine() -> Engine:
    """The clinic model over a small clinic: roles, two charts, one restricted."""
    tuples = [RelationTuple(CLINIC, role, f"user:{u}") for u, rs in ROLES.items() for role in rs]
    tuples += [
        RelationTuple(OPEN, "clinic", CLINIC),
        RelationTuple(RESTRICTED, "clinic", CLINIC),
        RelationTuple(RESTRICTED, "restricted", "user:*"),
        RelationTuple(RESTRICTED, "care_team", "user:carol"),
        RelationTuple(RESTRICTED, "care_team", "user:nell"),
        RelationTuple(RESTRICTED, "care_team", "user:fran"),  # grants a front desk nothing clinical
        RelationTuple(RESTRICTED, "break_glass", "user:dora"),
        RelationTuple(RESTRICTED, "break_glass", "user:adam"),  # an admin still is no clinician
    ]
    return Engine(load_clinic_model(), MemoryTuples(tuples))


CLINICAL = {"view_clinical", "record_vitals", "record_allergy", "write_note", "manage_visit"}
CLINICIAN_ONLY = {"sign_note", "prescribe", "diagnose"}
PATIENT_ACTIONS = {"view_demographics", "edit_demographics", "manage_access", "delete_patient"}
PATIENT_ACTIONS.add("merge_patients")
PATIENT_ACTIONS |= CLINICAL | CLINICIAN_ONLY
CLINIC_ACTIONS = {"manage_staff", "review_audit", "register_patient", "schedule", "merge_patients"}

CLINICIAN = {"view_demographics", "edit_demographics", "manage_access", "merge_patients"}
CLINICIAN |= CLINICAL | CLINICIAN_ONLY
NURSE = {"view_demographics", "edit_demographics"} | CLINICAL
FRONT_DESK = {"view_demographics", "edit_demographics"}
ADMIN = {"view_demographics", "manage_access", "delete_patient", "merge_patients"}

PATIENT_MATRIX = [
    (OPEN, "carol", CLINICIAN),
    (OPEN, "nina", NURSE),
    (OPEN, "fran", FRONT_DESK),
    (OPEN, "adam", ADMIN),
    (OPEN, "alex", CLINICIAN | ADMIN),
    (OPEN, "olga", set()),  # not on the staff
    (RESTRICTED, "carol", CLINICIAN),  # care team
    (RESTRICTED, "nell", NURSE),  # care team
    (RESTRICTED, "dora", CLINICIAN),  # break-glass
    (RESTRICTED, "nina", {"view_demographics"}),  # a nurse outside the care team
    (RESTRICTED, "fran", FRONT_DESK),  # demographics only, care team or not
    (RESTRICTED, "adam", ADMIN),  # break-glass gives an admin no clinical access
    (RESTRICTED, "alex", ADMIN),  # admin and clinician, but not on the care team
    (RESTRICTED, "olga", set()),
]


@pytest.mark.parametrize(("patient", "user", "allowed"), PATIENT_MATRIX)
def test_patient_permissions(patient: str, user: str, allowed: set[str]) -> None:
    engine = clinic_engine()
    assert engine.permitted(patient, f"user:{user}") & PATIENT_ACTIONS == allowed
    for action in PATIENT_ACTIONS:  # check() agrees with permitted(), one by one
        assert engine.check(patient, action, f"user:{user}") == (action in allowed), action


@pytest.mark.parametrize(
    ("user", "allowed"),
    [
        ("carol", {"register_patient", "schedule", "merge_patients"}),
        ("nina", {"register_patient", "schedule"}),
        ("fran", {"register_patient", "schedule"}),
        ("adam", {"register_patient", "manage_staff", "review_audit", "merge_patients"}),
        ("alex", CLINIC_ACTIONS),
        ("olga", set()),
    ],
)
def test_clinic_permissions(user: str, allowed: set[str]) -> None:
    assert clinic_engine().permitted(CLINIC, f"user:{user}") & CLINIC_ACTIONS == allowed


def test_named_rules_of_the_contract() -> None:
    e = clinic_engine()
    assert not e.check(OPEN, "view_clinical", "user:fran")  # front desk reads no clinical data
    assert not e.check(OPEN, "sign_note", "user:nina")  # a nurse cannot sign
    assert e.check(OPEN, "write_note", "user:nina")  # but writes unsigned notes
    assert not e.check(OPEN, "view_clinical", "user:adam")  # admin without clinician
    assert e.check(OPEN, "prescribe", "user:alex")  # admin who is also a clinician
    assert not e.check(RESTRICTED, "view_clinical", "user:nina")
    assert e.check(RESTRICTED, "view_clinical", "user:dora")  # break-glass


def test_deactivation_and_expiry_are_the_readers_job() -> None:
    # The reader drops a deactivated person's role tuples and an expired break-glass grant;
    # with them gone, the same question is refused.
    engine = clinic_engine()
    assert engine.check(RESTRICTED, "view_clinical", "user:dora")
    without = [
        RelationTuple(CLINIC, "clinician", "user:dora"),
        RelationTuple(RESTRICTED, "clinic", CLINIC),
        RelationTuple(RESTRICTED, "restricted", "user:*"),
    ]
    assert not Engine(load_clinic_model(), MemoryTuples(without)).check(
        RESTRICTED, "view_clinical", "user:dora"
    )
