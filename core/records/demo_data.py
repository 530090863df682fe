"""The demo clinic's synthetic records, made deterministically from a seed.

Nothing here is real patient data. :func:`generate` writes, through the one write path
(``ClinicRecords``, ``ClinicalEntries``, ``Notes``), a few hundred patients with histories
(allergies, coded problems, medications, past visits with vitals and notes, most of them
signed) and a week of schedule around ``today``, taken as far as the demo's now: seen
(visit closed), in the visit (open, its note a draft), waiting. A visit's records are
written as its clinician, with the visit's times in them (started, measured, closed,
signed); the ops' clocks and audit entries keep the time they were really written.
Writes are grouped into
``Database.batch`` transactions of a few patients each: every record keeps its own op and
audit entry, but the disk sees one commit per group.

Each record type has one small function (``_allergies``, ``_problems``, ``_medications``,
``_visit``, ``_vitals``, ``_note``, ``_appointment``), so a new field of a type is added in
one place. The same seed, ``today`` and clock always give the same clinic (record ids
and timestamps of the writes themselves aside).
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
from core.records.schedule import Schedule, now_local
from core.records.visits import Visits
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
# name them, the schedule filters by them, and they write and sign their visits. They sign
# in with the demo's published password once the demo is unlocked (they hold no key slot).
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
_DEMO_HOUR = dt.time(11, 0)  # "now" on a given ``today``: mid-morning, the clinic busy


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
    rng: random.Random
    today: dt.date
    now: dt.datetime  # the demo's "now" (local time): nothing done or written after it
    counts: DemoCounts = field(default_factory=DemoCounts)
    as_clinicians: dict[str, ClinicRecords] = field(default_factory=dict)

    def clinician(self, username: str) -> ClinicRecords:
        """The records as the demo clinician ``username`` writes them (visits, vitals,
        notes: the chart names who did them)."""
        if username not in self.as_clinicians:
            self.as_clinicians[username] = ClinicRecords(self.records.db, username)
        return self.as_clinicians[username]


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
    clock: Callable[[], dt.datetime] = now_local,
) -> DemoCounts:
    """Write the demo's patients and schedule as ``records.actor`` (the visits, vitals and
    notes as the demo's clinicians); see the module docstring.

    ``on_progress(done, total)`` is called after every group of patients. The demo's
    "now" is ``clock()`` (the clinic's local time); with ``today`` given (tests: the same
    clinic on every run), 11:00 that day, or ``clock()`` if that is earlier: nothing is
    done, closed, signed or measured after it.
    """
    real = clock()
    if today is not None and today > real.date():
        raise ValueError(f"the demo's today ({today}) is after today's date ({real.date()})")
    now = real if today is None else min(dt.datetime.combine(today, _DEMO_HOUR), real)
    w = _Writer(
        records,
        ClinicalEntries(records),
        random.Random(seed),  # noqa: S311 (sample data, not secrets)
        now.date(),
        now,
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
    """A past visit, walked in: see ``_seen``."""
    reason, assessment = w.rng.choice(VISIT_REASONS)
    clinician = w.rng.choice(CLINICIANS)[0]
    as_clinician = w.clinician(clinician)
    encounter = ClinicalEntries(as_clinician).add(
        "encounter",
        person.id,
        {"started_at": at.isoformat(timespec="minutes"), "reason": reason,
         "clinician": clinician},
    )  # fmt: skip
    _seen(w, person, encounter, at, clinician, (reason, assessment), closing=True)


def _seen(
    w: _Writer,
    person: _Person,
    encounter: str,
    at: dt.datetime,
    clinician: str,
    visit_reason: tuple[str, str],
    closing: bool,
    appointment: str | None = None,
) -> None:
    """What the clinician does in the visit started at ``at`` (local time): vitals five
    minutes in, the note, and (``closing``: a visit that is over) the visit closed twenty
    minutes later, its ``appointment`` done with it, and, most of the time, the note
    signed soon after, that day. Every write
    is the clinician's own, so the chart says who signed and closed (never the demo's
    account), and every time written is the visit's, never the time the demo was made."""
    as_clinician = w.clinician(clinician)
    w.counts.encounters += 1
    vitals = _vitals(w, person, at.date())
    # Through the vitals catalogue, as the Vitals tab records them (units, flags by age).
    readings = VitalSigns(as_clinician).record(
        person.id,
        vitals,
        VITAL_UNITS,
        observed_at=(at + dt.timedelta(minutes=5)).isoformat(timespec="minutes"),
        encounter_id=encounter,
    )
    w.counts.observations += len(readings)
    reason, assessment = visit_reason
    written = at + dt.timedelta(minutes=10)
    if not closing:
        # A visit in progress: the note is a draft, its assessment and plan still to come.
        _note(w, person, clinician, encounter, reason, None, vitals, written, None)
        return
    closed = at + dt.timedelta(minutes=25)
    # Closed by its clinician, as Visits.close records it.
    closing_fields = as_clinician.setter({"closed_at": _utc(closed), "closed_by": clinician})
    with as_clinician.db.write(clinician, "encounter.close", "encounter", encounter) as tx:
        change(tx, clinician, encounter, "encounter", closing_fields)
    if appointment is not None:
        # Closing the visit ends the appointment (as Visits.close does).
        Schedule(as_clinician, clock=lambda: closed).set_status(appointment, "done")
    # Most notes are signed, within the hour or two after the visit (never after the
    # demo's now); about one in six is left as a draft to finish.
    signed = None
    if w.rng.random() < 0.83:
        signed = min(closed + dt.timedelta(minutes=w.rng.randint(2, 90)), w.now)
    _note(w, person, clinician, encounter, reason, assessment, vitals, written, signed)


def _utc(local: dt.datetime) -> str:
    """A local wall-clock time as the UTC timestamp that records store (``utc_now``)."""
    return local.astimezone(dt.UTC).isoformat(timespec="milliseconds")


def _vitals(w: _Writer, person: _Person, day: dt.date) -> dict[str, str]:
    """A plausible set of vitals for the person's age on ``day`` (values as strings, as
    stored)."""
    rng, age = w.rng, _age(person.born, day)
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
    clinician: str,
    encounter: str,
    reason: str,
    assessment: str | None,
    vitals: dict[str, str],
    written: dt.datetime,
    signed: dt.datetime | None,
) -> None:
    """The visit's SOAP note, started by the visit's clinician at ``written`` and signed
    by them at ``signed`` (None: a draft). ``assessment`` None: a visit in progress, whose
    note has only what was heard and measured so far."""
    bp = f"BP {vitals['systolic']}/{vitals['diastolic']}, " if "systolic" in vitals else ""
    body = (
        f"S: {reason}.\n"
        f"O: {bp}pulse {vitals['pulse']}, temperature {vitals['temperature']} °C, "
        f"SpO2 {vitals['spo2']}%.\n"
    )
    if assessment is not None:
        plan = w.rng.choice(("Review in two weeks.", "Return if worse.", "Routine follow-up."))
        body += f"A: {assessment}\nP: {plan}"
    as_clinician = w.clinician(clinician)
    note = Notes(as_clinician, clock=lambda: _utc(written)).create(person.id, body, encounter)
    w.counts.notes += 1
    if signed is not None:
        Notes(as_clinician, clock=lambda: _utc(signed)).sign(note.id)
        w.counts.signed_notes += 1


def _schedule(w: _Writer, people: list[_Person]) -> None:
    """Every day from ``today - SCHEDULE_DAYS`` to ``today + SCHEDULE_DAYS``: 8 to 14
    appointments on a weekday between 08:00 and 17:00 (a Saturday or Sunday morning
    surgery: 4 to 6), each for someone already born that day; before the demo's now, people
    seen (their visit closed), in the visit (open) and waiting; after it, still to come."""
    for offset in range(-SCHEDULE_DAYS, SCHEDULE_DAYS + 1):
        day = w.today + dt.timedelta(days=offset)
        hours = range(8 * 3, 17 * 3) if day.weekday() < 5 else range(9 * 3, 12 * 3)
        how_many = w.rng.randint(8, 14) if day.weekday() < 5 else w.rng.randint(4, 6)
        chosen = set(w.rng.sample(hours, how_many))
        if day == w.today:
            # Open hours now: someone in the visit (due 20 to 40 minutes ago) and someone
            # waiting (due in the last 20 minutes).
            due = (w.now.hour * 60 + w.now.minute) // 20
            chosen |= {slot for slot in (due - 1, due) if slot in hours}
        slots = sorted(chosen)
        born = [p for p in people if p.born < day]
        if not born:
            continue
        # Someone comes once a day (twice only in a clinic of fewer people than slots).
        if len(born) >= len(slots):
            seen = w.rng.sample(born, len(slots))
        else:
            seen = [w.rng.choice(born) for _slot in slots]
        for slot, person in zip(slots, seen, strict=True):
            starts = dt.datetime.combine(day, dt.time(slot // 3, (slot % 3) * 20))
            _appointment(w, person, starts)


def _appointment(w: _Writer, person: _Person, starts: dt.datetime) -> None:
    """One appointment, taken as far as the demo's now would have taken it: checked in at
    the desk, its visit started from it by its clinician (Visits.start: in visit) and,
    half an hour after it began, closed (done); or cancelled, a no-show, or still booked."""
    now = w.now
    if starts.date() < now.date() or starts <= now - dt.timedelta(minutes=40):
        status = w.rng.choices(("done", "cancelled", "no_show"), (17, 2, 1))[0]
    elif starts <= now - dt.timedelta(minutes=20):
        status = "in_visit"  # called in by the clinician (one slot: nobody in two at once)
    elif starts <= now or (starts <= now + dt.timedelta(minutes=20) and w.rng.random() < 0.5):
        status = "arrived"  # in the waiting room, a little late or early for the time
    else:
        status = w.rng.choices(("booked", "cancelled"), (19, 1))[0]
    extra: dict[str, str | None] = {}
    if status == "cancelled":
        extra["cancel_reason"] = w.rng.choice(("Patient called", "Feeling better", None))
    visit_reason = w.rng.choice(VISIT_REASONS)
    clinician = w.rng.choice(CLINICIANS)[0]
    seen = status in ("arrived", "in_visit", "done")
    appointment = w.entries.add(
        "appointment",
        person.id,
        {
            "starts_at": starts.isoformat(timespec="minutes"),
            "ends_at": (starts + dt.timedelta(minutes=20)).isoformat(timespec="minutes"),
            "reason": visit_reason[0],
            "status": "booked" if seen else status,
            "clinician": clinician,
            **extra,
        },
    )
    w.counts.appointments += 1
    if not seen:
        return
    # Checked in at the desk a few minutes before the time (the next one's, before now),
    # as the schedule records it.
    arrived = min(starts - dt.timedelta(minutes=w.rng.randint(2, 12)), now)
    Schedule(w.records, clock=lambda: arrived).set_status(appointment, "arrived")
    if status == "arrived":
        return
    # Called in on time or a few minutes late (never after the demo's now).
    called = min(starts + dt.timedelta(minutes=w.rng.randint(0, 5)), now)
    visit = Visits(w.clinician(clinician), clock=lambda: called).start(
        person.id, appointment_id=appointment
    )
    done = status == "done"
    _seen(w, person, visit.id, called, clinician, visit_reason, done, appointment)
