"""A first download as one snapshot image (core.sync.snapshot_image): a workstation that
stores the image holds exactly what one that stored the pages holds, and an image it
cannot use (stale, damaged, another schema, a wrong key, records already held) is passed
over for pages with nothing written from it."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from core.crypto.kdf import FAST_PARAMS
from core.crypto.secure_memory import SecureMemory
from core.records.clinic import ClinicRecords
from core.records.replication import apply_ops
from core.records.types import RECORD_TYPES
from core.store.database import Database
from core.sync import snapshot_image
from core.sync.protocol import ProtocolError
from core.sync.responder import Responder
from core.sync.session import SyncReport, sync
from core.sync.snapshot_image import ImageError, ImageKeeper, ImageOffer
from core.sync.stores import DatabaseStore
from core.sync.transport import LocalTransport, TransportError
from tests.clinic_identity import join_test_clinic, vouched
from tests.unit.records.golden.workload import load_ops
from tests.unit.sync.replicas import PER_REPLICA, dump_diff, materialized, new_replica


@pytest.fixture(scope="module")
def source() -> ClinicRecords:
    """The clinic server's replica: the golden workload's whole history (every record
    type, lists, signed notes with addenda, deletions, conflicts)."""
    replica = new_replica("server")
    apply_ops(replica.db, vouched(load_ops()), "server")
    return replica


def workstation(folder: Path) -> ClinicRecords:
    """A new, empty workstation replica in a file (an image is downloaded beside it)."""
    db = Database.create(folder / "clinic.db", SecureMemory.from_bytes(bytearray(os.urandom(32))))
    join_test_clinic(db)
    return ClinicRecords(db, "desk", FAST_PARAMS)


def keeper(source: ClinicRecords, folder: Path, **limits: int) -> ImageKeeper:
    kept = ImageKeeper(lambda: DatabaseStore(source.db), folder / "images", min_records=0)
    for name, value in limits.items():
        setattr(kept, name, value)
    return kept


def first_sync(desk: ClinicRecords, source: ClinicRecords, images: ImageKeeper) -> SyncReport:
    responder = Responder(source.db, "peer", images=images.offer)
    return sync(desk.db, LocalTransport(responder, images), "desk")


def built(source: ClinicRecords, folder: Path, **limits: int) -> ImageKeeper:
    """A keeper whose image is built (the first request starts the build)."""
    kept = keeper(source, folder, **limits)
    kept.prepare()
    assert kept.wait(60)
    assert kept.last_error is None
    return kept


def fetched(
    source: ClinicRecords, folder: Path
) -> tuple[ImageKeeper, ImageOffer, ClinicRecords, Path]:
    """A built image, its offer, a new workstation, and the image downloaded beside it."""
    images = built(source, folder)
    offer = images.offer({}, 0)
    assert offer is not None
    desk = workstation(folder)
    part = snapshot_image.part_path(desk.db, offer)
    LocalTransport(Responder(source.db), images).fetch_image(offer.id, part, offer.size)
    return images, offer, desk, part


def test_an_image_gives_the_workstation_what_pages_give(
    source: ClinicRecords, tmp_path: Path
) -> None:
    by_pages = new_replica("desk")
    report = sync(by_pages.db, LocalTransport(Responder(source.db, "peer")), "desk")
    assert report.snapshot_records > 0 and not report.snapshot_image

    images = built(source, tmp_path)
    desk = workstation(tmp_path)
    report = first_sync(desk, source, images)

    assert report.snapshot_image
    assert report.snapshot_records == report.expected_records == by_pages_records(source)
    assert report.pulled == 0  # the image was as new as the server
    differ = dump_diff(materialized(by_pages), materialized(desk))
    assert not differ, f"the image-made replica differs in {sorted(differ)}"
    # The same floors as a replica bootstrapped by pages: it holds no op bytes below them.
    floors = "SELECT origin, seq, floor FROM version_vector ORDER BY origin"
    assert desk.db.query(floors) == by_pages.db.query(floors)
    # The copy's small page caches are gone: the replica has its own 64 MiB back.
    assert desk.db.query("PRAGMA cache_size") == by_pages.db.query("PRAGMA cache_size")
    # Nothing of the server's own image replica came along.
    assert not desk.db.query("SELECT 1 FROM audit_log WHERE actor = 'server:image'")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".image-")] == []
    images.close()


def test_an_image_copied_a_few_rows_at_a_time_gives_what_pages_give(
    source: ClinicRecords, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many chunks (a clinic's size at 5,000 rows a chunk): record states counted by type
    across them, each chunk's search entries written out, and the search index's settings
    left as they were (the copy raises FTS5's hash limit while it runs)."""
    monkeypatch.setattr(snapshot_image, "COPY_ROWS", 3)
    by_pages = new_replica("desk")
    paged = sync(by_pages.db, LocalTransport(Responder(source.db, "peer")), "desk")
    images = built(source, tmp_path)
    desk = workstation(tmp_path)
    report = first_sync(desk, source, images)

    assert report.snapshot_image
    assert report.changes == paged.changes  # what the sync says it brought, by type
    assert not dump_diff(materialized(by_pages), materialized(desk))
    # The index holds exactly its content's entries (FTS5 checks every one) ...
    desk.db.query("INSERT INTO patients_fts (patients_fts) VALUES ('integrity-check')")
    assert desk.db.query("SELECT count(*) FROM patients_fts WHERE patients_fts MATCH 'a*'") == (
        by_pages.db.query("SELECT count(*) FROM patients_fts WHERE patients_fts MATCH 'a*'")
    )
    # ... and its settings are FTS5's defaults again, as on a replica made by pages.
    settings = "SELECT k, v FROM patients_fts_config ORDER BY k"
    assert desk.db.query(settings) == by_pages.db.query(settings)
    assert not desk.db.query("SELECT 1 FROM patients_fts_config WHERE k = 'hashsize'")
    images.close()


def by_pages_records(source: ClinicRecords) -> int:
    return int(source.db.query("SELECT count(*) FROM record_states")[0][0])


def test_the_image_tables_are_every_table_but_a_replicas_own(source: ClinicRecords) -> None:
    tables = set(snapshot_image.replicated_tables(source.db))
    assert {"record_states", "patients", "notes", "conflicts", "relations"} <= tables
    # What a replica keeps for itself (the convergence tests' list) never travels, but
    # the permission history a snapshot page writes, which pages would write the same.
    assert tables & set(PER_REPLICA) == {"authz_writes"}
    assert not any(t.startswith("patients_fts") for t in tables)


def test_changes_made_after_the_image_arrive_as_ops(source: ClinicRecords, tmp_path: Path) -> None:
    server = new_replica("server")
    for op in vouched(load_ops()):
        apply_ops(server.db, [op], "server")
    images = built(server, tmp_path)
    patient = server.add_patient("Late", "Arrival", "1990-02-03")
    desk = workstation(tmp_path)
    report = first_sync(desk, server, images)
    assert report.snapshot_image and report.pulled >= 1
    assert desk.get_patient(patient.id).family == "Late"
    images.close()


def test_a_stale_image_is_not_offered_and_a_new_one_is_built(
    source: ClinicRecords, tmp_path: Path
) -> None:
    server = new_replica("server")
    for op in vouched(load_ops()):
        apply_ops(server.db, [op], "server")
    images = built(server, tmp_path, max_lag=2, rebuild_lag=1)
    old = images.offer(DatabaseStore(server.db).snapshot_page(None, 1).vector, 0)
    assert old is not None
    for i in range(3):
        server.add_patient(f"New{i}", "Patient", "1990-02-03")

    desk = workstation(tmp_path)
    report = first_sync(desk, server, images)
    assert not report.snapshot_image  # three ops behind: pages
    assert images.wait(60)  # ... and the request started a new image
    fresh = images.offer(DatabaseStore(server.db).snapshot_page(None, 1).vector, 0)
    assert fresh is not None and fresh.id != old.id
    assert fresh.records == old.records + 3
    images.close()


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda o, path: dataclasses.replace(o, schema=o.schema + 1), id="schema"),
        pytest.param(lambda o, path: dataclasses.replace(o, key=os.urandom(32)), id="key"),
        pytest.param(lambda o, path: dataclasses.replace(o, records=o.records + 1), id="count"),
        pytest.param(lambda o, path: dataclasses.replace(o, sha256="0" * 64), id="digest"),
    ],
)
def test_an_unusable_image_writes_nothing(
    source: ClinicRecords, tmp_path: Path, spoil: object
) -> None:
    images, offer, desk, part = fetched(source, tmp_path)
    before = desk.db.query("SELECT count(*) FROM audit_log")
    with pytest.raises(ImageError) as refused:
        snapshot_image.import_image(desk.db, part, spoil(offer, part), "desk")  # type: ignore[operator]
    assert str(refused.value)
    assert not desk.db.query("SELECT 1 FROM record_states LIMIT 1")
    assert not desk.db.query("SELECT 1 FROM patients LIMIT 1")
    assert not desk.db.query("SELECT 1 FROM version_vector LIMIT 1")
    assert desk.db.query("SELECT count(*) FROM audit_log") == before
    assert not desk.db.query("SELECT 1 FROM patients_fts_config WHERE k = 'hashsize'")
    snapshot_image.discard(part)
    images.close()


def test_a_damaged_image_file_is_refused_by_its_digest(
    source: ClinicRecords, tmp_path: Path
) -> None:
    images, offer, desk, part = fetched(source, tmp_path)
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF
    part.write_bytes(bytes(data))
    with pytest.raises(ImageError, match="SHA-256"):
        snapshot_image.import_image(desk.db, part, offer, "desk")
    # With the digest made to match, SQLCipher's page authentication refuses the page.
    spoiled = dataclasses.replace(offer, sha256=_sha(part))
    with pytest.raises(ImageError, match=r"could not be read|damaged"):
        snapshot_image.import_image(desk.db, part, spoiled, "desk")
    assert not desk.db.query("SELECT 1 FROM record_states LIMIT 1")
    snapshot_image.discard(part)
    images.close()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_an_unusable_offer_falls_back_to_pages_and_loses_nothing(
    source: ClinicRecords, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    images = built(source, tmp_path)

    def spoiled(vector: dict[str, int], records: int) -> ImageOffer | None:
        offer = images.offer(vector, records)
        return None if offer is None else dataclasses.replace(offer, key=os.urandom(32))

    desk = workstation(tmp_path)
    with caplog.at_level(logging.WARNING, "core.sync.session"):
        report = sync(desk.db, LocalTransport(Responder(source.db, images=spoiled), images), "d")
    assert not report.snapshot_image
    assert report.snapshot_records == by_pages_records(source)
    assert "snapshot image could not be used" in caplog.text
    by_pages = new_replica("desk")
    sync(by_pages.db, LocalTransport(Responder(source.db, "peer")), "desk")
    assert not dump_diff(materialized(by_pages), materialized(desk))
    images.close()


def test_a_replica_holding_records_asks_for_no_image(source: ClinicRecords, tmp_path: Path) -> None:
    desk = workstation(tmp_path)
    assert snapshot_image.wants_image(desk.db) is not None
    desk.add_patient("Already", "Here", "1970-01-01")
    assert snapshot_image.wants_image(desk.db) is None


def test_a_malformed_offer_is_named() -> None:
    good = ImageOffer("a" * 32, 10, "b" * 64, bytes(32), 1, 2, {"r1": 3}).to_wire()
    assert ImageOffer.from_wire(good).vector == {"r1": 3}
    for field, value in [("id", "../etc"), ("key", "zz"), ("bytes", -1), ("records", True)]:
        with pytest.raises(ProtocolError, match=rf"image\.{field}"):
            ImageOffer.from_wire({**good, field: value})


def test_a_disk_without_room_for_the_file_and_its_copy_gets_pages(
    source: ClinicRecords, tmp_path: Path
) -> None:
    desk = workstation(tmp_path)
    offer = ImageOffer("a" * 32, 10**15, "b" * 64, bytes(32), 1, 2, {})
    with pytest.raises(ImageError, match="not enough free disk space"):
        snapshot_image.room_for(desk.db, offer)
    snapshot_image.room_for(desk.db, dataclasses.replace(offer, size=1_000))


def test_a_download_cut_off_earlier_leaves_nothing_behind(
    source: ClinicRecords, tmp_path: Path
) -> None:
    images = built(source, tmp_path)
    desk = workstation(tmp_path)
    left = tmp_path / f".image-{'c' * 32}.part"
    left.write_bytes(b"ciphertext of an image whose key is gone")
    Path(f"{left}-wal").write_bytes(b"")
    assert first_sync(desk, source, images).snapshot_image
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".image-")]
    images.close()


def test_clinics_images_are_built_one_at_a_time(source: ClinicRecords, tmp_path: Path) -> None:
    slot = threading.Semaphore(1)
    images = keeper(source, tmp_path)
    images.build_slot = slot
    with slot:  # another clinic's image is being built
        images.prepare()
        assert not images.wait(0.5)  # waits its turn
        assert images.offer({}, 0) is None
    assert images.wait(60) and images.offer({}, 0) is not None
    images.close()


class _CutOff(LocalTransport):
    """The connection drops halfway through the image (as httpx's error becomes)."""

    def fetch_image(
        self, image_id: str, dest: Path, size: int, on_bytes: Callable[[int], object] | None = None
    ) -> None:
        super().fetch_image(image_id, dest, size, on_bytes)
        with dest.open("r+b") as f:
            f.truncate(size // 2)
        raise TransportError("the connection to the server was lost")


def test_a_connection_lost_during_the_image_ends_the_session_and_the_retry_uses_it(
    source: ClinicRecords, tmp_path: Path
) -> None:
    images = built(source, tmp_path)
    desk = workstation(tmp_path)
    responder = Responder(source.db, "peer", images=images.offer)
    with pytest.raises(TransportError, match="lost"):
        sync(desk.db, _CutOff(responder, images), "desk")
    # Nothing was stored (no page either), so the next session may still use the image.
    assert not desk.db.query("SELECT 1 FROM record_states LIMIT 1")
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".image-")]
    assert first_sync(desk, source, images).snapshot_image
    images.close()


def test_an_image_from_a_release_that_knew_fewer_record_types_is_completed_here(
    source: ClinicRecords, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same schema, older code: the server kept the notes it could not read aside (as an
    older replica does); the workstation derives them as it stores the image."""
    with monkeypatch.context() as older:
        older.delitem(RECORD_TYPES, "note")
        images = built(source, tmp_path)
    image = images.offer({}, 0)
    assert image is not None
    desk = workstation(tmp_path)
    assert first_sync(desk, source, images).snapshot_image
    by_pages = new_replica("desk")
    sync(by_pages.db, LocalTransport(Responder(source.db, "peer")), "desk")
    assert (
        desk.db.query("SELECT count(*) FROM notes")
        == by_pages.db.query("SELECT count(*) FROM notes")
        != [(0,)]
    )
    assert not dump_diff(materialized(by_pages), materialized(desk))
    images.close()
