"""A search that finds a large part of the clinic walks the name order for its page
(core/records/patient_search.py) instead of sorting every match: the patients, their order
and the pages must be exactly those of the sorted query, merged duplicates included."""

from __future__ import annotations

import random

import pytest

from core.records import patient_search
from core.records.clinic import ClinicRecords
from core.records.merges import Merges
from core.store.search import fts_prefix_query
from tests.bench.bulk_seed import bulk_patients
from tests.unit.sync.replicas import new_replica

SORTED = 10**9  # a bound no query reaches: the sorted query, as before

FAMILIES = ["Smith", "O'Brien", "Obrien", "Ölund", "Olund", "Fabre", "Nguyen", "Fam", "Ng"]
GIVENS = ["Ann", "José", "Jean-Luc", "Fatima", "G", "Amir", "Li"]
QUERIES = ["Fam", "F", "fam0", "fam00", "g", "1", "19", "198", "o'brien", "olund", "smi a",
           "fam00 g", "ng", "zzz", "jose"]  # fmt: skip
PAGES = [(200, 0), (50, 100), (7, 1_995), (200, 2_100), (30, 2_390), (10, 5_000), (1, 0)]


@pytest.fixture(scope="module")
def clinic() -> ClinicRecords:
    records = new_replica("admin")
    # 2,400 bench patients (Fam000000 ... in rowid order: every one matches ``Fam``) and
    # 300 varied ones added in no particular order, some sharing names, MRNs and birth years.
    bulk_patients(records.db, 2_400)
    rng = random.Random(17)
    added = []
    for i in range(300):
        added.append(
            records.add_patient(
                rng.choice(FAMILIES),
                rng.choice(GIVENS),
                f"19{rng.randint(40, 99)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
                mrn=f"{rng.randint(1, 9)}{i:05d}" if i % 3 else None,
            ).id
        )
    merges = Merges(records)
    # Duplicates merged into survivors: a bench patient into a varied one (so ``Fam`` finds
    # the varied survivor through its duplicate), varied ones into bench ones, and a chain.
    merges.merge("p0000005", added[0], "same person")
    merges.merge(added[1], "p0001000", "same person")
    merges.merge(added[2], added[3], "same person")
    merges.merge(added[3], added[4], "same person")
    return records


@pytest.mark.parametrize("text", QUERIES)
def test_the_walk_gives_the_sorted_querys_pages(clinic: ClinicRecords, text: str) -> None:
    for limit, offset in PAGES:
        expected = clinic.search_patients(text, limit, offset, broad_at=SORTED)
        for broad_at in (0, 10, 500):
            got = clinic.search_patients(text, limit, offset, broad_at=broad_at)
            assert got == expected, (text, limit, offset, broad_at)


def test_an_every_patient_prefix_is_walked_not_sorted(clinic: ClinicRecords) -> None:
    query = fts_prefix_query("Fam")
    assert query is not None
    assert patient_search.broad(clinic.db, query, 2_000)
    assert not patient_search.broad(clinic.db, query, 3_000)
    walked = patient_search.first_rowids(clinic.db, query, 200, 2_000)
    assert walked is not None and len(walked) == 200  # found by walking, no sort fallback
    # The first page: the varied patients named Fam, then the bench ones by name, less
    # the one merged away.
    page = clinic.search_patients("Fam", 200, 0, broad_at=2_000)
    bench = [p.family for p in page if p.family != "Fam"]
    assert bench[:6] == ["Fam000000", "Fam000001", "Fam000002", "Fam000003", "Fam000004",
                         "Fam000006"]  # fmt: skip
    assert "p0000005" not in {p.id for p in page}


def test_a_sparse_match_falls_back_to_sorting(clinic: ClinicRecords) -> None:
    # ``jose`` finds a few of the 300 varied patients, scattered among 2,700 by name:
    # walking for 200 of them would check every patient, so the walk gives up.
    query = fts_prefix_query("jose")
    assert query is not None
    assert patient_search.first_rowids(clinic.db, query, 200, 10) is None


def test_the_probe_tokenizes_as_the_search_index(clinic: ClinicRecords) -> None:
    [(sql,)] = clinic.db.query("SELECT sql FROM sqlite_master WHERE name = 'patients_fts'")
    assert patient_search.PROBE_TOKENIZE in sql
    assert "detail = column" in sql
    # The probe is left empty after a search (no rows linger in memory).
    clinic.search_patients("Fam", 200, 0, broad_at=0)
    left = "SELECT count(*) FROM temp.patients_probe WHERE patients_probe MATCH '\"fam\"*'"
    assert clinic.db.query(left) == [(0,)]
