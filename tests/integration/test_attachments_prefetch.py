"""Prefetching chart attachments (core/sync/prefetch.py) through a live server: a second
workstation fetches files it never opened, booked-today patients' first, within its share
of the cache, so they open once the server is gone; a damaged or forged blob is dropped,
never kept; a stopped prefetch resumes where it stopped."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from core.crypto.streaming import HEADER_SIZE
from core.records.entries import ClinicalEntries
from core.records.schedule import Schedule
from core.records.visits import Visits
from core.records.workstation import Workstation
from core.sync.attachments import HERE, REMOTE, Attachments
from core.sync.prefetch import BOOKED, NEWEST, VISIT, Prefetcher, plan
from tests.attachment_content import as_named
from tests.conftest import PASSWORD
from tests.integration.server_fixtures import MARKER, Desks, sync_at
from tests.integration.test_cli import careline

KiB = 1024


def _today() -> dt.date:
    return dt.datetime.now().date()


def _book(ws: Workstation, patient: str, day: dt.date, at: str = "12:00") -> None:
    Schedule(ws.records).book(patient, f"{day.isoformat()}T{at}", "admin", minutes=15)


def test_prefetched_booked_first_then_opened_with_the_server_gone(desks: Desks) -> None:
    # Oldest first: the booked patients' files are not the newest, so only the schedule
    # can put them first.
    booked = desks.patient("Booked")
    tomorrow = desks.patient("Tomorrow")
    visiting = desks.patient("Visiting")
    other = desks.patient("Other")
    letter = desks.add(booked, "letter.pdf", 300 * KiB)
    referral = desks.add(tomorrow, "referral.pdf", 100 * KiB)
    lab = desks.add(visiting, "lab.pdf", 100 * KiB)
    photo = desks.add(other, "photo.jpg", 100 * KiB)
    _book(desks.a, tomorrow, _today() + dt.timedelta(days=2))  # the next day with bookings
    _book(desks.a, booked, _today())
    Visits(desks.a.records).start(visiting)
    desks.sync_both()

    on_b = desks.on_b()
    assert [a.availability for a in on_b.for_patient(booked)] == [REMOTE]
    assert [(w.blob_id, w.why) for w in plan(desks.b.database, _today())] == [
        (letter.blob_id, BOOKED), (referral.blob_id, BOOKED), (lab.blob_id, VISIT),
        (photo.blob_id, NEWEST),
    ]  # fmt: skip
    arrived: list[str] = []
    report = Prefetcher().run(on_b, _today(), fetched=arrived.append)
    order = [letter.blob_id, referral.blob_id, lab.blob_id, photo.blob_id]
    assert report.fetched == arrived == order, report
    assert report.error is None and not report.refused and report.fetched_bytes > 600 * KiB
    assert on_b.prefetched() == sorted(order)
    assert on_b.get(letter.id).availability == HERE
    # Only ciphertext at rest: no file in B's cache holds the plaintext.
    cache = desks.folder / "b" / "attachments"
    assert not [p for p in cache.rglob("*") if p.is_file() and MARKER in p.read_bytes()]
    # A second round has nothing left to do.
    assert Prefetcher().run(on_b, _today()).fetched == []

    # The server goes away: the file opens here, decrypted with B's own copy of the key.
    desks.live.halt()
    offline = desks.on_b()
    assert offline.read(letter.id) == (desks.folder / "letter.pdf").read_bytes()
    assert offline.read(photo.id) == (desks.folder / "photo.jpg").read_bytes()
    # Opened: an opened file now, no longer the prefetch's to drop.
    assert letter.blob_id not in offline.prefetched()


def test_the_prefetch_keeps_to_its_share_and_never_evicts_opened_or_waiting_files(
    desks: Desks,
) -> None:
    booked, visiting, other, opened_for = (desks.patient(n) for n in ("B", "V", "O", "P"))
    opened = desks.add(opened_for, "opened.pdf", 1024 * KiB)
    newest = desks.add(other, "newest.pdf", 800 * KiB)
    lab = desks.add(visiting, "lab.pdf", 800 * KiB)
    letter = desks.add(booked, "letter.pdf", 800 * KiB)
    _book(desks.a, booked, _today())
    Visits(desks.a.records).start(visiting)
    desks.sync_both()
    # On B: a file someone opened, and one added here while offline (waiting to upload).
    desks.on_b().read(opened.id)
    (desks.folder / "scan.pdf").write_bytes(as_named("scan.pdf", b"s" * 800 * KiB))
    waiting = desks.on_b(online=False).add(booked, desks.folder / "scan.pdf", title="scan")
    assert waiting.blob_id is not None and opened.blob_id is not None

    # Budget 4 MiB, half of it for the prefetch: two 800 KiB files fit, not three.
    on_b = desks.on_b(cache_mb=4)
    report = Prefetcher(50).run(on_b, _today())
    assert report.fetched == [letter.blob_id, lab.blob_id] and report.over_share == 1
    guessed = sum(on_b.cache.path_for(b).stat().st_size for b in on_b.prefetched())
    assert guessed <= 2 * 1024 * KiB
    assert sum(p.stat().st_size for p in on_b.cached_files()) <= 4 * 1024 * KiB
    for kept in (opened.blob_id, waiting.blob_id):
        assert on_b.cache.exists(kept)

    # The newest file's patient is booked now: the prefetch drops its own least useful
    # guess (the visit's lab) to make room, never the opened or the waiting file.
    _book(desks.b, other, _today(), "11:00")
    report = Prefetcher(50).run(on_b, _today())
    assert report.fetched == [newest.blob_id] and report.dropped == 1, report
    assert not on_b.cache.exists(lab.blob_id) and on_b.cache.exists(letter.blob_id)
    for kept in (opened.blob_id, waiting.blob_id):
        assert on_b.cache.exists(kept)

    # A cache already full of opened and waiting files: nothing fetched, nothing evicted.
    tight = desks.on_b(cache_mb=2)
    for blob_id in tight.prefetched():
        tight.cache.delete(blob_id)
    report = Prefetcher(90).run(tight, _today())
    assert report.fetched == [] and report.dropped == 0
    assert tight.cache.exists(opened.blob_id) and tight.cache.exists(waiting.blob_id)
    # Off: nothing at all.
    assert Prefetcher(0).run(desks.on_b(), _today()).fetched == []


def test_damaged_or_forged_blobs_are_dropped_never_kept(desks: Desks) -> None:
    patient = desks.patient("Damaged")
    _book(desks.a, patient, _today())
    # Damaged on the server: its ciphertext SHA-256 no longer matches the record.
    damaged = desks.add(patient, "damaged.pdf", 200 * KiB)
    stored = next((desks.folder / "server" / "blobs").rglob(damaged.blob_id))
    data = bytearray(stored.read_bytes())
    data[HEADER_SIZE + 10] ^= 1
    stored.write_bytes(bytes(data))
    # Forged: a chunk altered before upload and the record's SHA-256 made to match it, so
    # only the chunk's tag tells (as opening would).
    on_a = desks.on_a()
    source = desks.folder / "forged.pdf"
    source.write_bytes(as_named("forged.pdf", b"f" * 200 * KiB))
    forged = Attachments(desks.a.records, desks.folder / "a", credential=None).add(
        patient, source, title="forged"
    )
    assert forged.blob_id is not None
    path = on_a.cache.path_for(forged.blob_id)
    data = bytearray(path.read_bytes())
    data[HEADER_SIZE + 10] ^= 1
    path.write_bytes(bytes(data))
    sha = hashlib.sha256(bytes(data)).hexdigest()
    ClinicalEntries(desks.a.records).update("attachment", forged.id, {"sha256": sha})
    on_a.push_pending()
    good = desks.add(patient, "good.pdf", 100 * KiB)
    desks.sync_both()

    on_b = desks.on_b()
    prefetcher = Prefetcher()
    report = prefetcher.run(on_b, _today())
    assert sorted(report.refused) == sorted([damaged.blob_id, str(forged.blob_id)])
    assert report.fetched == [good.blob_id] and report.error is None
    for bad in (damaged, forged):
        assert bad.blob_id is not None
        assert not on_b.cache.exists(str(bad.blob_id))
        assert not [p for p in on_b.cached_files() if p.name.startswith(bad.blob_id)]
        assert on_b.get(bad.id).availability == REMOTE
    # Not asked for again at once (they back off, an hour at first).
    again = prefetcher.run(on_b, _today())
    assert again.refused == [] and again.fetched == []


def test_a_stopped_prefetch_keeps_its_part_and_resumes(desks: Desks) -> None:
    patient = desks.patient("Long")
    big = desks.add(patient, "big.pdf", 3 * 1024 * KiB)
    desks.sync_both()
    assert big.blob_id is not None
    on_b = desks.on_b()
    pieces: list[int] = []

    def progress_of(blob_id: str) -> Callable[[int, int], None]:
        return lambda done, total: pieces.append(done)

    # Told to stop (a sign-out) once the first read arrived: it stops at the next one.
    report = Prefetcher().run(on_b, _today(), lambda: bool(pieces), progress_of)
    assert report.stopped and report.fetched == [] and report.interrupted == [big.blob_id]
    part = on_b.cache.path_for(big.blob_id).with_name(f"{big.blob_id}.part")
    kept = part.stat().st_size
    assert 0 < kept <= 128 * KiB and not on_b.cache.exists(big.blob_id)
    assert on_b.get(big.id).availability == REMOTE

    # The next round continues from the part (Range) and checks the whole file.
    pieces.clear()
    done = Prefetcher().run(on_b, _today(), progress_of=progress_of)
    assert done.fetched == [big.blob_id] and pieces[0] > kept
    assert on_b.read(big.id) == (desks.folder / "big.pdf").read_bytes()


def test_the_network_gone_ends_the_round_and_the_next_waits(desks: Desks) -> None:
    patient = desks.patient("Gone")
    first = desks.add(patient, "first.pdf", 100 * KiB)
    desks.add(patient, "second.pdf", 100 * KiB)
    desks.sync_both()
    desks.live.halt()
    now = [1000.0]
    prefetcher = Prefetcher(clock=lambda: now[0])
    on_b = desks.on_b()
    report = prefetcher.run(on_b, _today())
    assert report.fetched == [] and report.error is not None and report.remaining == 0
    assert "cannot be reached" in report.error or "cut off" in report.error, report.error
    assert not prefetcher.due()  # backing off: 15 to 30 s at first
    assert prefetcher.run(on_b, _today()).error is None  # skipped, nothing tried
    now[0] += 31
    assert prefetcher.due()
    assert on_b.get(first.id).availability == REMOTE


def test_careline_sync_prefetch(desks: Desks) -> None:
    patient = desks.patient("Cli")
    _book(desks.a, patient, _today())
    letter = desks.add(patient, "cli.pdf", 200 * KiB)
    sync_at(desks.a, desks.a_cred)
    data = desks.folder / "b"
    bad = careline(
        data, "--password-stdin", "sync", "--once", "--prefetch", stdin=PASSWORD + "\n",
        env={"CARELINE_ATTACHMENT_PREFETCH_PERCENT": "120"},
    )  # fmt: skip
    assert bad.returncode != 0 and "attachment_prefetch_percent" in bad.stderr, bad.stderr
    assert "above the maximum 90" in bad.stderr
    done = careline(
        data, "--json", "--password-stdin", "sync", "--once", "--prefetch", stdin=PASSWORD + "\n"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["attachments_prefetched"] == 1
    on_b = desks.on_b()
    assert on_b.get(letter.id).availability == HERE and letter.blob_id in on_b.prefetched()


def test_an_overflowing_cache_drops_never_opened_prefetched_files_first(
    workstation: Workstation, tmp_path: Path
) -> None:
    adding = Attachments(workstation.records, tmp_path)
    patient = workstation.records.add_patient(family="Evict", given="Eve", birth_date="1990-01-01")
    ids = []
    for age, name in enumerate(("opened-long-ago", "prefetched", "opened-lately")):
        (tmp_path / name).write_bytes(name.encode() * (400 * KiB // len(name)))
        item = adding.add(patient.id, tmp_path / name, title=name)
        assert item.blob_id is not None
        ids.append(item.blob_id)
        (tmp_path / "attachments" / "pending" / item.blob_id).unlink()  # as if uploaded
        os.utime(adding.cache.path_for(item.blob_id), (1000 + age, 1000 + age))
    old, guessed, recent = ids
    attachments = Attachments(workstation.records, tmp_path, cache_mb=1)
    attachments.prefetched_mark(guessed).parent.mkdir()
    attachments.prefetched_mark(guessed).touch()
    # 1.2 MiB in a 1 MiB cache: the never-opened guess goes, though opened long after the
    # oldest file was; both opened files stay.
    assert attachments.evict() == 1
    assert not attachments.cache.exists(guessed) and attachments.prefetched() == []
    assert attachments.cache.exists(old) and attachments.cache.exists(recent)
