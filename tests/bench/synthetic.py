"""Deterministic synthetic patients and search queries for the store benchmark.

Nothing here is real patient data. Names come from a few hundred common family and given
names drawn with a Zipf-like skew (common names are common), so name-prefix searches are
about as broad as in a real register, or broader: a real clinic has far more distinct
family names than this list, which makes each prefix here match *more* rows.
"""

from __future__ import annotations

import datetime as dt
import random
import unicodedata
from dataclasses import dataclass


def _words(text: str) -> tuple[str, ...]:
    """Whitespace-separated words of a block of text."""
    return tuple(text.split())


FAMILY_NAMES = _words(
    """
    Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez
    Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris
    Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill
    Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Gomez Phillips
    Evans Turner Diaz Parker Cruz Edwards Collins Reyes Stewart Morris Morales Murphy Cook Rogers
    Gutierrez Ortiz Morgan Cooper Peterson Bailey Reed Kelly Howard Ramos Kim Cox Ward Richardson
    Watson Brooks Chavez Wood James Bennett Gray Mendoza Ruiz Hughes Price Alvarez Castillo
    Sanders Patel Myers Long Ross Foster Jimenez Müller Schmidt Schneider Fischer Weber Meyer
    Wagner Becker Schulz Hoffmann Dubois Lefèvre Moreau Laurent Bernard Rossi Russo Ferrari
    Esposito Bianchi Romano Colombo Kowalski Nowak Wiśniewski Wójcik Novák Horváth Nagy Popescu
    Ivanov Petrov Smirnov Kuznetsov Jensen Nielsen Hansen Andersen Larsen Johansson Karlsson
    Nilsson Eriksson Virtanen Korhonen O'Brien O'Connor Murray Byrne Walsh MacDonald Fraser
    Gallagher Wang Li Zhang Liu Chen Yang Huang Zhao Wu Zhou Tran Le Pham Hoang Phan Vu Dang Bui
    Do Ho Sato Suzuki Takahashi Tanaka Watanabe Park Choi Jung Kang Cho Singh Kumar Sharma Gupta
    Shah Mehta Reddy Iyer Khan Ahmed Ali Hussain Rahman Hassan Ibrahim Mahmoud Haddad Cohen Levi
    Mizrahi Okafor Okeke Adeyemi Mensah Owusu Kamau Mwangi Diallo Traoré Ndiaye Silva Santos
    Oliveira Souza Pereira Costa Ferreira Almeida Carvalho Yilmaz Kaya Demir Şahin Papadopoulos
    Georgiou Dimitriou García-Márquez Van-der-Berg
    """
)

GIVEN_NAMES = _words(
    """
    James Mary John Patricia Robert Jennifer Michael Linda William Elizabeth David Barbara
    Richard Susan Joseph Jessica Thomas Sarah Charles Karen Christopher Lisa Daniel Nancy
    Matthew Betty Anthony Margaret Mark Sandra Donald Ashley Steven Kimberly Paul Emily Andrew
    Donna Joshua Michelle Kenneth Carol Kevin Amanda Brian Dorothy George Melissa Timothy
    Deborah Ronald Stephanie Edward Rebecca Jason Sharon Jeffrey Laura Ryan Cynthia Jacob
    Kathleen Gary Amy Nicholas Angela Eric Shirley Jonathan Anna Stephen Brenda Larry Pamela
    Justin Emma Scott Nicole Brandon Helen Benjamin Samantha Samuel Katherine Gregory Christine
    Alexander Debra Frank Rachel Patrick Carolyn Raymond Janet Jack Catherine Dennis Maria Jerry
    Heather Tyler Diane Aaron Ruth Jose Julie Adam Olivia Nathan Joyce Henry Virginia Douglas
    Victoria Zachary Kelly Peter Lauren Kyle Christina Noah Joan Ethan Evelyn Jeremy Judith
    Walter Megan Christian Andrea Keith Cheryl Roger Hannah Terry Jacqueline Austin Martha Sean
    Gloria Gerald Teresa Carl Ann Harold Sara Dylan Madison Arthur Frances Lawrence Kathryn
    Jordan Janice Jesse Jean Bryan Abigail Billy Alice Bruce Judy Gabriel Sophia Joe Grace Logan
    Denise Alan Amber Juan Doris Albert Marilyn Elijah Beverly Wayne Isabella Vincent Diana
    Mason Natalie Roy Brittany Ralph Charlotte Louis Alexis Philip Lori Mohammed Fatima Wei Mei
    Hiroshi Yuki Min-jun Seo-yeon Arjun Priya Aisha Omar Chinedu Ngozi Kwame Ama José Lucía
    Sofía Mateo Jürgen Zoë Chloé Søren Ólafur Minh Anh Thảo Björn Łukasz Małgorzata Dmitri Olga
    Ahmet Elif
    """
)

# Zipf exponent for name frequencies: the most common family name is ~3% of patients.
_ZIPF = 0.6
_SEXES = ("female", "male", "other", "unknown")
_SEX_WEIGHTS = (49, 49, 1, 1)
_FIRST_BIRTH = dt.date(1925, 1, 1).toordinal()
_LAST_BIRTH = dt.date(2024, 12, 31).toordinal()

INSERT_SQL = (
    "INSERT INTO patients (id, mrn, family, given, birth_date, sex, phone, sort_key, "
    "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def sort_key(family: str, given: str) -> str:
    """Careline's patient-list ordering key (case- and accent-insensitive).

    A copy, so the benchmark does not depend on where core keeps it (it has moved between
    modules); only the bulk-insert rows use it, ``add_patient`` computes its own.
    """
    text = f"{family}\x1f{given}".casefold()
    return "".join(
        ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch)
    )


@dataclass(frozen=True)
class SyntheticPatient:
    """One generated patient, with the exact column values Careline would store."""

    id: str
    mrn: str
    family: str
    given: str
    birth_date: str
    sex: str
    phone: str | None
    created_at: str

    def row(self) -> tuple[str | None, ...]:
        """Values for :data:`INSERT_SQL`, in column order."""
        return (
            self.id,
            self.mrn,
            self.family,
            self.given,
            self.birth_date,
            self.sex,
            self.phone,
            sort_key(self.family, self.given),
            self.created_at,
            self.created_at,
        )


@dataclass(frozen=True)
class SearchQuery:
    """What a person types into the patient search box, and what kind of search it is."""

    kind: str
    text: str


def _zipf_weights(count: int) -> list[float]:
    return [1.0 / (rank + 1) ** _ZIPF for rank in range(count)]


def make_patients(count: int, seed: int) -> list[SyntheticPatient]:
    """``count`` distinct patients; the same ``seed`` always gives the same patients."""
    rng = random.Random(seed)
    families = rng.choices(FAMILY_NAMES, _zipf_weights(len(FAMILY_NAMES)), k=count)
    givens = rng.choices(GIVEN_NAMES, _zipf_weights(len(GIVEN_NAMES)), k=count)
    sexes = rng.choices(_SEXES, _SEX_WEIGHTS, k=count)
    mrns = rng.sample(range(10_000_000, 100_000_000), count)  # unique 8-digit MRNs
    base = dt.datetime(2023, 1, 2, 8, 0, tzinfo=dt.UTC)
    patients = []
    for i in range(count):
        birth = dt.date.fromordinal(rng.randint(_FIRST_BIRTH, _LAST_BIRTH))
        phone = None if rng.random() < 0.2 else f"+1 555 {rng.randint(0, 9_999_999):07d}"
        created = base + dt.timedelta(seconds=97 * i)
        patients.append(
            SyntheticPatient(
                id=f"{rng.getrandbits(64):016x}",  # same shape as clinic.new_id()
                mrn=str(mrns[i]),
                family=families[i],
                given=givens[i],
                birth_date=birth.isoformat(),
                sex=sexes[i],
                phone=phone,
                created_at=created.isoformat(timespec="milliseconds"),
            )
        )
    return patients


def _prefix(rng: random.Random, word: str, shortest: int, longest: int) -> str:
    """A prefix of ``word`` (what someone has typed so far), sometimes lower-cased."""
    text = word[: rng.randint(shortest, longest)]
    return text.lower() if rng.random() < 0.5 else text


def make_queries(patients: list[SyntheticPatient], count: int, seed: int) -> list[SearchQuery]:
    """Searches for existing patients, so common names are searched for more often.

    Mix: 35% a 2-4 letter prefix of a family or given name; 25% ``family given`` pairs
    (``smi jo`` up to full names); 25% MRN prefixes of 4-7 digits; 15% a full birth date.
    """
    rng = random.Random(seed)
    queries = []
    for _ in range(count):
        p = rng.choice(patients)
        roll = rng.random()
        if roll < 0.35:
            word = p.family if rng.random() < 0.5 else p.given
            queries.append(SearchQuery("name_prefix", _prefix(rng, word, 2, 4)))
        elif roll < 0.60:
            family = _prefix(rng, p.family, 3, max(3, len(p.family)))
            given = _prefix(rng, p.given, 2, max(2, len(p.given)))
            queries.append(SearchQuery("family_given", f"{family} {given}"))
        elif roll < 0.85:
            queries.append(SearchQuery("mrn_prefix", p.mrn[: rng.randint(4, 7)]))
        else:
            queries.append(SearchQuery("birth_date", p.birth_date))
    return queries
