"""Property: replicas of two releases converge, lose nothing, and decide conflicts and
deletions the same way once every one of them is upgraded.

Random scripts on two replicas of this release ("older") and two of the next one ("newer",
tests/newer_release.py): patients created, edited and deleted on any of them, and on the
newer ones the new field (preferred name) set and referrals (the new record type) made and
edited, often on two replicas before they sync. Syncs go one way between random pairs, each
side applying under its own release. Then every older replica is upgraded in place (the
newer release's migration on its file, then ``unknown.refresh``) and all sync once more:
every replica must hold byte-for-byte the same derived state, conflicts included, and what
each replica wrote must still be there.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.crypto.kdf import FAST_PARAMS
from core.crypto.secure_memory import SecureMemory
from core.records import crdt, unknown
from core.records.clinic import ClinicRecords
from core.records.errors import NotFoundError
from core.store.database import Database
from core.store.migrations import MIGRATIONS
from core.store.state_codec import unpack_state
from tests.clinic_identity import join_test_clinic
from tests.newer_release import NEWER_MIGRATIONS, newer_code, refer, set_preferred_name
from tests.unit.sync.replicas import assert_converged, pull_from

EXAMPLES = max(int(os.environ.get("CARELINE_PROPERTY_EXAMPLES", "300")) // 5, 25)
NEWER = (2, 3)  # replicas 0 and 1 run this release, 2 and 3 the next one
VALUES = ("Ames", "Bo", "Cruz")

replica = st.integers(0, 3)
newer_replica = st.sampled_from(NEWER)
patient = st.integers(0, 2)
actions = st.lists(
    st.one_of(
        st.tuples(st.just("edit"), replica, patient, st.sampled_from(VALUES)),
        st.tuples(st.just("delete"), replica, patient),
        st.tuples(st.just("preferred"), newer_replica, patient, st.sampled_from(VALUES)),
        st.tuples(st.just("refer"), newer_replica, patient),
        st.tuples(st.just("sync"), replica, replica),
    ),
    max_size=25,
)


def _open(path: Path, key: SecureMemory, actor: str, newer: bool) -> ClinicRecords:
    migrations = NEWER_MIGRATIONS if newer else MIGRATIONS
    return ClinicRecords(Database.open(path, key, migrations=migrations), actor, FAST_PARAMS)


def _as(index: int) -> AbstractContextManager[None]:
    """The release replica ``index`` runs (entered around everything it applies)."""
    return newer_code() if index in NEWER else nullcontext()


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(script=actions)
def test_two_releases_converge_and_lose_nothing_once_all_are_upgraded(
    script: list[tuple[object, ...]],
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        key = SecureMemory.from_bytes(bytearray(os.urandom(32)))
        paths = [Path(folder) / f"r{i}.db" for i in range(4)]
        seed = Database.create(paths[0], key)
        join_test_clinic(seed)  # every replica is a signing device of one clinic
        seed_records = ClinicRecords(seed, "r0", FAST_PARAMS)
        pids = [seed_records.add_patient(n, "Pat", "1980-01-01").id for n in VALUES]
        seed.close()
        # Every replica starts from the same seeded file (each with its own identity).
        for i in range(1, 4):
            copy = Database.create(
                paths[i], key, migrations=NEWER_MIGRATIONS if i in NEWER else MIGRATIONS
            )
            join_test_clinic(copy)
            copy.close()
        replicas = [_open(p, key, f"r{i}", i in NEWER) for i, p in enumerate(paths)]
        for i in range(1, 4):
            with _as(i):
                pull_from(replicas[i], replicas[0])
        preferred: set[str] = set()
        referrals: set[str] = set()
        for action in script:
            kind, who = action[0], int(action[1])  # type: ignore[call-overload]
            records = replicas[who]
            with _as(who):
                if kind == "sync":
                    pull_from(records, replicas[int(action[2])])  # type: ignore[call-overload]
                    continue
                pid = pids[int(action[2])]  # type: ignore[call-overload]
                try:
                    if kind == "edit":
                        records.update_patient(pid, {"given": str(action[3])})
                    elif kind == "delete":
                        records.delete_patient(pid)
                    elif kind == "preferred":
                        set_preferred_name(records, pid, str(action[3]))
                        preferred.add(pid)
                    elif kind == "refer":
                        referrals.add(refer(records, pid, "Cardiology", f"from r{who}"))
                except NotFoundError:
                    pass  # deleted here already: a person could not have edited it
        # Upgrade every older replica in place, then sync all with all.
        for i in range(4):
            if i not in NEWER:
                replicas[i].db.close()
                with newer_code():
                    replicas[i] = _open(paths[i], key, f"r{i}", True)
                    unknown.refresh(replicas[i].db)
        with newer_code():
            for _ in range(2):
                for a in range(4):
                    for b in range(4):
                        if a != b:
                            pull_from(replicas[a], replicas[b])
            assert_converged(replicas)
            held = replicas[0].db
            assert unknown.count(held) == 0
            made = {str(r[0]) for r in held.query("SELECT id FROM record_states WHERE type = ?",
                                                  ("referral",))}  # fmt: skip
            assert made == referrals
            for pid in preferred:
                [state] = held.query("SELECT state FROM record_states WHERE id = ?", (pid,))
                # Deletion is its own register: the new field's value is never dropped.
                doc = crdt.load(unpack_state(state[0]), 1)
                assert crdt.live(doc, "preferred_name"), f"preferred name of {pid} lost"
        for r in replicas:
            r.db.close()
