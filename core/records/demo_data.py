"""The demo clinic's synthetic records, made deterministically from a seed.

Nothing here is real patient data. :func:`generate` writes, through the one write path
(``ClinicRecords``, ``ClinicalEntries``, ``Notes``), a few hundred patients with histories
(allergies, coded problems, medications, past visits with vitals and notes, most of them
signed) and a week of schedule around ``today``. Writes are grouped into
``Database.batch`` transactions of a few patients each: every record keeps its own op and
audit entry, but the disk sees one commit per group.

Each record type has one small function (``_allergies``, ``_problems``, ``_medications``,
``_visit``, ``_vitals``, ``_note``, ``_appointment``), so a new field of a type is added in
one place. The same seed and ``today`` always give the same clinic (record ids and
timestamps of the writes themselves aside).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass, field, fields

from core.records.changes import change
from core.records.clinic import ClinicRecords
from core.records.entries import ClinicalEntries
from core.records.notes import Notes
from core.records.schedule import Schedule
from core.records.vital_signs import VitalSigns
from core.records.vitals import BY_KEY

DEFAULT_SEED = 2026
DEFAULT_PATIENTS = 300
OLDEST_AGE = 95
_BATCH_PATIENTS = 10  # patients per transaction

Progress = Callable[[int, int], object]

# Names across cultures, accents and apostrophes included (search must cope with them).
FAMILY_NAMES = (
    "Smith", "García", "O'Brien", "Nguyễn", "Müller", "Okafor", "Kowalski", "Haddad",
    "Johansson", "Rossi", "Dubois", "Papadopoulos", "Singh", "Kim", "Tanaka", "Mensah",
    "D'Angelo", "MacDonald", "Ó Súilleabháin", "Fernández", "Petrov", "Cohen", "Yılmaz",
    "Wiśniewski", "Novák", "Andersen", "Silva", "Chen", "Wang", "Patel", "Khan", "Diallo",
    "Mwangi", "Hernández", "Lefèvre", "Van der Berg", "N'Diaye", "Brown", "Williams", "Taylor",
    "Jones", "Martin", "Lee", "Walker", "Kelly", "Gómez", "Sánchez", "Schröder", "Ibrahim",
    "Ahmed", "Rahman", "Castillo", "Reyes", "Adeyemi", "Owusu", "Nakamura", "Park", "Tran",
    "Björk", "Łukasiewicz", "Horváth", "Popescu", "O'Connor", "Al-Sayed", "Mendoza", "Costa",
)  # fmt: skip
FEMALE_NAMES = (
    "Maria", "Aisha", "Zoë", "Chloé", "Sofía", "Mei", "Yuki", "Priya", "Fatima", "Ngozi",
    "Ama", "Olga", "Elif", "Małgorzata", "Siobhán", "Anna", "Emma", "Olivia", "Grace",
    "Lucía", "Hannah", "Seo-yeon", "Thảo", "Amélie", "Ingrid", "Leila", "Rosa", "Joan",
    "Margaret", "Dorothy", "Evelyn", "Isabella",
)  # fmt: skip
MALE_NAMES = (
    "José", "Mohammed", "Wei", "Hiroshi", "Arjun", "Chinedu", "Kwame", "Jürgen", "Søren",
    "Ólafur", "Łukasz", "Dmitri", "Ahmet", "Seán", "Minh", "Min-jun", "James", "John",
    "David", "Noah", "Mateo", "Lucas", "Omar", "Pierre", "Giovanni", "Björn", "Tomás",
    "Arthur", "Harold", "Samuel", "Ethan", "Kofi",
)  # fmt: skip
# The demo's clinicians, as staff accounts (user name, full name): visits and appointments
# name them, the schedule filters by them. They sign in with the demo's published password.
CLINICIANS = (
    ("aokafor", "Dr. Amara Okafor"),
    ("lmoreau", "Dr. Lucas Moreau"),
    ("mchen", "Dr. Mei Chen"),
    ("rdelgado", "NP Rosa Delgado"),
)
STAFF_PASSWORD = "demo-sample-data"  # noqa: S105 (synthetic data only: published in the README)

# (substance, reaction, severity)
ALLERGENS = (
    ("Penicillin", "Hives", "moderate"),
    ("Amoxicillin", "Rash", "mild"),
    ("Sulfamethoxazole", "Rash", "moderate"),
    ("Peanuts", "Anaphylaxis", "severe"),
    ("Latex", "Contact dermatitis", "mild"),
    ("Ibuprofen", "Wheezing", "moderate"),
    ("Codeine", "Nausea", "mild"),
    ("Shellfish", "Swelling of lips", "severe"),
)
# (ICD-10-CM code, description, youngest age it is given at, medication or None)
# medication: (name, dose, route, frequency)
_Med = tuple[str, str, str, str]
PROBLEMS: tuple[tuple[str, str, int, _Med | None], ...] = (
    ("I10", "Essential (primary) hypertension", 35, ("Amlodipine", "5 mg", "oral", "once daily")),
    ("E11.9", "Type 2 diabetes mellitus without complications", 35,
     ("Metformin", "500 mg", "oral", "twice daily")),
    ("E78.5", "Hyperlipidemia, unspecified", 40, ("Atorvastatin", "20 mg", "oral", "at night")),
    ("J45.909", "Unspecified asthma, uncomplicated", 3,
     ("Salbutamol inhaler", "100 mcg, 2 puffs", "inhaled", "as needed")),
    ("E03.9", "Hypothyroidism, unspecified", 20,
     ("Levothyroxine", "50 mcg", "oral", "once daily")),
    ("F32.9", "Major depressive disorder, single episode, unspecified", 16,
     ("Sertraline", "50 mg", "oral", "once daily")),
    ("M17.9", "Osteoarthritis of knee, unspecified", 50,
     ("Paracetamol", "1 g", "oral", "up to four times daily")),
    ("K21.9", "Gastro-esophageal reflux disease without esophagitis", 18,
     ("Omeprazole", "20 mg", "oral", "once daily")),
    ("L20.9", "Atopic dermatitis, unspecified", 0,
     ("Hydrocortisone 1% cream", "thin layer", "topical", "twice daily")),
    ("I48.91", "Unspecified atrial fibrillation", 60,
     ("Apixaban", "5 mg", "oral", "twice daily")),
    ("N18.3", "Chronic kidney disease, stage 3 (moderate)", 55, None),
    ("G43.909", "Migraine, unspecified, not intractable", 12,
     ("Sumatriptan", "50 mg", "oral", "as needed")),
)  # fmt: skip
# (reason, assessment) of a visit; the note is written from them.
VISIT_REASONS = (
    ("Annual check-up", "Well. Routine screening up to date."),
    ("Cough and fever for three days", "Viral upper respiratory infection."),
    ("Blood pressure review", "Blood pressure at target on current treatment."),
    ("Sore throat", "Pharyngitis, likely viral."),
    ("Follow-up of diabetes", "Diabetes reasonably controlled; HbA1c ordered."),
    ("Back pain after lifting", "Mechanical low back pain."),
    ("Vaccination", "Vaccine given, no immediate reaction."),
    ("Rash on both arms", "Contact dermatitis."),
    ("Headache for a week", "Tension-type headache."),
    ("Medication review", "Medications reconciled; no changes."),
    ("Ear pain", "Otitis media, left ear."),
    ("Tiredness", "Fatigue; blood tests ordered."),
)
# The vitals a nurse records at a visit: key -> (LOINC code, stored UCUM unit), from the
# vitals catalogue (the one place that knows them).
_VISIT_VITALS = ("systolic", "diastolic", "pulse", "temperature", "respiratory_rate", "spo2",
                 "weight", "height")  # fmt: skip
VITAL_CODES = {k: (BY_KEY[k].code, BY_KEY[k].canonical.ucum) for k in _VISIT_VITALS}
# The units the demo's nurses type (the catalogue's codes for them).
VITAL_UNITS = {"temperature": "Cel", "weight": "kg", "height": "cm"}
SCHEDULE_DAYS = 3  # the schedule runs from today - 3 to today + 3 (weekdays)


@dataclass
class DemoCounts:
    """How many records of each kind were written."""

    patients: int = 0
    allergies: int = 0
    problems: int = 0
    medications: int = 0
    encounters: int = 0
    observations: int = 0
    notes: int = 0
    signed_notes: int = 0
    appointments: int = 0

    def to_dict(self) -> dict[str, int]:
        """For JSON output."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class _Writer:
    """The APIs the generator writes through, and what it has written."""

    records: ClinicRecords
    entries: ClinicalEntries
    notes: Notes
    rng: random.Random
    today: dt.date
    counts: DemoCounts = field(default_factory=DemoCounts)


@dataclass(frozen=True)
class _Person:
    id: str
    born: dt.date
    age: int
    sex: str
    name: str


def generate(
    records: ClinicRecords,
    seed: int = DEFAULT_SEED,
    patients: int = DEFAULT_PATIENTS,
    today: dt.date | None = None,
    on_progress: Progress | None = None,
) -> DemoCounts:
    """Write the demo's patients and schedule as ``records.actor``; see the module docstring.

    ``on_progress(done, total)`` is called after every group of patients.
    """
    w = _Writer(
        records,
        ClinicalEntries(records),
        Notes(records),
        random.Random(seed),  # noqa: S311 (sample data, not secrets)
        today or _today(),
    )
    for username, full_name in CLINICIANS:
        if records.user(username) is None:
            records.add_user(username, full_name, "clinician", STAFF_PASSWORD)
    people: list[_Person] = []
    for start in range(0, patients, _BATCH_PATIENTS):
        with records.db.batch():
            for index in range(start, min(start + _BATCH_PATIENTS, patients)):
                people.append(_patient_with_history(w, index, patients))
        if on_progress is not None:
            on_progress(len(people), patients)
    with records.db.batch():
        _schedule(w, people)
    return w.counts


def _today() -> dt.date:
    return dt.date.today()


def _patient_with_history(w: _Writer, index: int, total: int) -> _Person:
    person = _patient(w, index, total)
    _allergies(w, person)
    for code, description, _age, medication in _problems(w, person):
        w.entries.add_to_list(
            person.id,
            "problems",
            {"description": description, "code": code, "status": "active", "onset": None},
        )
        w.counts.problems += 1
        if medication is not None:
            _medication(w, person, medication)
    for visit_at in _visit_times(w, person):
        _visit(w, person, visit_at)
    return person


def _birth_date(w: _Writer, index: int, total: int) -> dt.date:
    """Ages from newborn to 95: the first patient is days old, the last 95; the rest spread
    over every age (a few more children and older adults, as in family practice)."""
    if index == 0:
        return w.today - dt.timedelta(days=w.rng.randint(2, 20))
    if index == total - 1:
        return w.today.replace(year=w.today.year - OLDEST_AGE) - dt.timedelta(days=40)
    age = min(OLDEST_AGE, int(w.rng.triangular(0, OLDEST_AGE + 1, 45)))
    days = age * 365 + w.rng.randint(0, 364)
    return w.today - dt.timedelta(days=days)


def _age(born: dt.date, today: dt.date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def _patient(w: _Writer, index: int, total: int) -> _Person:
    sex = w.rng.choices(("female", "male", "other", "unknown"), (49, 49, 1, 1))[0]
    given_from: tuple[str, ...] = FEMALE_NAMES if sex == "female" else MALE_NAMES
    if sex in ("other", "unknown"):
        given_from = FEMALE_NAMES + MALE_NAMES
    family, given = w.rng.choice(FAMILY_NAMES), w.rng.choice(given_from)
    born = _birth_date(w, index, total)
    phone = None if w.rng.random() < 0.15 else f"+1 555 {w.rng.randint(0, 9_999_999):07d}"
    patient = w.records.add_patient(
        family, given, born.isoformat(), sex, mrn=f"DEMO{index + 1:05d}", phone=phone
    )
    w.counts.patients += 1
    return _Person(patient.id, born, _age(born, w.today), sex, f"{given} {family}")


def _allergies(w: _Writer, person: _Person) -> None:
    how_many = w.rng.choices((0, 1, 2), (65, 28, 7))[0]
    for substance, reaction, severity in w.rng.sample(ALLERGENS, how_many):
        w.records.add_allergy(person.id, substance, reaction, severity)
        w.counts.allergies += 1


def _problems(w: _Writer, person: _Person) -> list[tuple[str, str, int, _Med | None]]:
    """The person's coded problems: more with age, only those plausible at their age."""
    possible = [p for p in PROBLEMS if p[2] <= person.age]
    how_many = min(len(possible), w.rng.choices((0, 1, 2, 3, 4), (30, 30, 20, 12, 8))[0])
    if person.age >= 60:
        how_many = min(len(possible), how_many + 1)
    return w.rng.sample(possible, how_many)


def _medication(w: _Writer, person: _Person, medication: _Med) -> None:
    name, dose, route, frequency = medication
    if person.age < 12 and route == "oral":
        dose = "weight-based dose"
    values = {"name": name, "dose": dose, "route": route, "frequency": frequency}
    w.entries.add_to_list(person.id, "medications", values)
    w.counts.medications += 1


def _visit_times(w: _Writer, person: _Person) -> list[dt.datetime]:
    """Past visits in the last three years (none before birth), oldest first."""
    how_many = w.rng.choices((0, 1, 2, 3, 4, 5), (10, 25, 25, 20, 12, 8))[0]
    earliest = min(3 * 365, (w.today - person.born).days - 1)
    if earliest < 1:
        return []
    days_ago = sorted((w.rng.randint(1, earliest) for _ in range(how_many)), reverse=True)
    times = []
    for ago in days_ago:
        day = w.today - dt.timedelta(days=ago)
        times.append(dt.datetime.combine(day, dt.time(w.rng.randint(8, 16), w.rng.choice((0, 30)))))
    return times


def _visit(w: _Writer, person: _Person, at: dt.datetime) -> None:
    reason, assessment = w.rng.choice(VISIT_REASONS)
    clinician = w.rng.choice(CLINICIANS)[0]
    encounter = w.entries.add(
        "encounter",
        person.id,
        {
            "started_at": at.isoformat(timespec="minutes"),
            "reason": reason,
            "clinician": clinician,
        },
    )
    # Past visits are over: closed by their clinician (as Visits.close records it).
    closed_at = (at + dt.timedelta(minutes=25)).astimezone(dt.UTC)
    closing = w.records.setter(
        {"closed_at": closed_at.isoformat(timespec="milliseconds"), "closed_by": clinician}
    )
    actor = w.records.actor
    with w.records.db.write(actor, "encounter.close", "encounter", encounter) as tx:
        change(tx, actor, encounter, "encounter", closing)
    w.counts.encounters += 1
    vitals = _vitals(w, person)
    # Through the vitals catalogue, as the Vitals tab records them (units, flags by age).
    readings = VitalSigns(w.records).record(
        person.id,
        vitals,
        VITAL_UNITS,
        observed_at=(at + dt.timedelta(minutes=5)).isoformat(timespec="minutes"),
        encounter_id=encounter,
    )
    w.counts.observations += len(readings)
    # Most notes are signed; about one in six is left as a draft to finish.
    _note(w, person, encounter, reason, assessment, vitals, sign=w.rng.random() < 0.83)


def _vitals(w: _Writer, person: _Person) -> dict[str, str]:
    """A plausible set of vitals for the person's age (values as strings, as stored)."""
    rng, age = w.rng, person.age
    if age < 1:
        weight, height = rng.uniform(3.0, 9.5), rng.uniform(48, 75)
    elif age < 18:
        weight, height = 10 + age * rng.uniform(2.6, 3.6), 75 + age * rng.uniform(5.5, 6.5)
    else:
        weight, height = rng.uniform(50, 110), rng.uniform(150, 195)
    values = {
        "pulse": str(rng.randint(100, 150) if age < 1 else rng.randint(56, 98)),
        "temperature": f"{rng.uniform(36.2, 38.4):.1f}",
        "respiratory_rate": str(rng.randint(30, 50) if age < 1 else rng.randint(12, 20)),
        "spo2": str(rng.randint(94, 100)),
        "weight": f"{weight:.1f}",
        "height": f"{height:.0f}",
    }
    if age >= 3:
        systolic = rng.randint(100, 128) + (age // 4 if age > 40 else 0)
        values["systolic"] = str(systolic)
        values["diastolic"] = str(rng.randint(60, 82) + (age // 10 if age > 40 else 0))
    return values


def _note(
    w: _Writer,
    person: _Person,
    encounter: str,
    reason: str,
    assessment: str,
    vitals: dict[str, str],
    sign: bool,
) -> None:
    bp = f"BP {vitals['systolic']}/{vitals['diastolic']}, " if "systolic" in vitals else ""
    body = (
        f"S: {reason}.\n"
        f"O: {bp}pulse {vitals['pulse']}, temperature {vitals['temperature']} °C, "
        f"SpO2 {vitals['spo2']}%.\n"
        f"A: {assessment}\n"
        f"P: {w.rng.choice(('Review in two weeks.', 'Return if worse.', 'Routine follow-up.'))}"
    )
    note = w.notes.create(person.id, body, encounter)
    w.counts.notes += 1
    if sign:
        w.notes.sign(note.id)
        w.counts.signed_notes += 1


def _schedule(w: _Writer, people: list[_Person]) -> None:
    """Every day from ``today - SCHEDULE_DAYS`` to ``today + SCHEDULE_DAYS``: 8 to 14
    appointments on a weekday between 08:00 and 17:00 (a Saturday or Sunday morning
    surgery: 4 to 6), today's with people seen, waiting and still to come."""
    now = dt.datetime.combine(w.today, dt.time(11, 0))  # "now" of the demo's day
    for offset in range(-SCHEDULE_DAYS, SCHEDULE_DAYS + 1):
        day = w.today + dt.timedelta(days=offset)
        if day.weekday() < 5:
            slots = sorted(w.rng.sample(range(8 * 3, 17 * 3), w.rng.randint(8, 14)))
        else:
            slots = sorted(w.rng.sample(range(9 * 3, 12 * 3), w.rng.randint(4, 6)))
        for slot in slots:
            starts = dt.datetime.combine(day, dt.time(slot // 3, (slot % 3) * 20))
            _appointment(w, w.rng.choice(people), starts, now)


def _appointment(w: _Writer, person: _Person, starts: dt.datetime, now: dt.datetime) -> None:
    extra: dict[str, str | None] = {}
    if starts.date() < now.date() or starts < now - dt.timedelta(hours=1):
        status = w.rng.choices(("done", "cancelled", "no_show"), (17, 2, 1))[0]
    elif starts <= now - dt.timedelta(minutes=20):
        status = "in_visit"  # called in by the clinician
    elif starts <= now:
        status = "arrived"  # in the waiting room since shortly before the time
    else:
        status = w.rng.choices(("booked", "cancelled"), (19, 1))[0]
    if status == "cancelled":
        extra["cancel_reason"] = w.rng.choice(("Patient called", "Feeling better", None))
    appointment = w.entries.add(
        "appointment",
        person.id,
        {
            "starts_at": starts.isoformat(timespec="minutes"),
            "ends_at": (starts + dt.timedelta(minutes=20)).isoformat(timespec="minutes"),
            "reason": w.rng.choice(VISIT_REASONS)[0],
            "status": "booked" if status == "arrived" else status,
            "clinician": w.rng.choice(CLINICIANS)[0],
            **extra,
        },
    )
    if status == "arrived":
        # Checked in at the desk a few minutes before the time, as the schedule records it.
        arrived = starts - dt.timedelta(minutes=w.rng.randint(2, 12))
        Schedule(w.records, clock=lambda: arrived).set_status(appointment, "arrived")
    w.counts.appointments += 1
