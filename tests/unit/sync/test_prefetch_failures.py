"""The prefetch (core/sync/prefetch.py) against failures other than a download's, with a
fake LAN peer serving ciphertext: a bad file is skipped and waits on its own, a full disk
ends the round and backs off; nothing escapes a round."""

from __future__ import annotations

import datetime as dt
import errno
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.records.workstation import Workstation
from core.sync.attachments import Attachments
from core.sync.attachments_client import AttachmentNotFoundError
from core.sync.blob_client import finish_part
from core.sync.prefetch import Prefetcher
from core.sync.transport import TransportError
from tests.attachment_content import as_named

KiB = 1024


class FakePeer:
    """A LAN peer holding the given ciphertexts (``fetch_blob`` as LanTransport's)."""

    address = "peer.test:1"

    def __init__(self, blobs: dict[str, bytes]) -> None:
        self.blobs = blobs
        self.asked: list[str] = []
        self.before_write: Callable[[str], None] | None = None

    def fetch_blob(
        self,
        blob_id: str,
        dest: Path,
        sha256: str,
        progress: Callable[[int, int], None],
        timeout: float | None = None,
        *,
        max_bytes: int | None = None,
    ) -> None:
        self.asked.append(blob_id)
        if blob_id not in self.blobs:
            raise AttachmentNotFoundError(f"the peer does not have attachment {blob_id}")
        if self.before_write is not None:
            self.before_write(blob_id)
        part = dest.with_name(dest.name + ".part")
        data = self.blobs[blob_id]
        assert max_bytes is None or len(data) <= max_bytes  # what its record allows
        part.write_bytes(data)
        progress(len(data), len(data))
        finish_part(part, dest, blob_id, sha256)


class Clinic:
    def __init__(self, ws: Workstation, folder: Path) -> None:
        self.ws = ws
        self.folder = folder
        self.patient = ws.records.add_patient(family="Pre", given="Fetch", birth_date="1980-01-01")
        self.blobs: dict[str, bytes] = {}
        self.ids: dict[str, str] = {}  # name -> record id

    def add(self, name: str, size: int = 40 * KiB) -> str:
        """A file added and uploaded, then dropped from this cache; its blob id."""
        adding = Attachments(self.ws.records, self.folder)
        source = self.folder / name
        source.write_bytes(as_named(name, (name.encode() * size)[:size]))
        item = adding.add(self.patient.id, source, title=name)
        assert item.blob_id is not None
        self.blobs[item.blob_id] = adding.cache.path_for(item.blob_id).read_bytes()
        adding.cache.delete(item.blob_id)
        (self.folder / "attachments" / "pending" / item.blob_id).unlink()
        self.ids[name] = item.id
        return item.blob_id

    def attachments(self, peer: FakePeer) -> Attachments:
        return Attachments(self.ws.records, self.folder, peers=(peer,))  # type: ignore[arg-type]


@pytest.fixture
def clinic(workstation: Workstation, tmp_path: Path) -> Clinic:
    return Clinic(workstation, tmp_path / "desk")


def _today() -> dt.date:
    return dt.date.today()


def test_a_malformed_blob_id_is_skipped_and_the_rest_fetched(clinic: Clinic) -> None:
    first = clinic.add("first.pdf")
    clinic.add("hostile.pdf")
    second = clinic.add("second.pdf")
    # A synced record naming no valid blob (a hostile or broken replica).
    db = clinic.ws.records.db
    with db.write("admin", "test", "attachment", "x") as tx:
        tx.execute(
            "UPDATE attachments SET blob_id = ? WHERE id = ?",
            ("../../../etc/passwd", clinic.ids["hostile.pdf"]),
        )
    peer = FakePeer(clinic.blobs)
    report = Prefetcher().run(clinic.attachments(peer), _today())
    assert sorted(report.fetched) == sorted([first, second]) and report.error is None
    assert not (clinic.folder / "etc").exists()


def test_a_file_that_fails_is_skipped_waits_and_the_round_goes_on(clinic: Clinic) -> None:
    newest = clinic.add("b.pdf")
    older = clinic.add("a.pdf")
    peer = FakePeer(clinic.blobs)
    now = [1000.0]
    prefetcher = Prefetcher(clock=lambda: now[0])
    attachments = clinic.attachments(peer)

    def vanish(blob_id: str) -> None:  # as if evict() ran meanwhile
        if blob_id == older:
            raise FileNotFoundError(2, "No such file", "x.part")

    peer.before_write = vanish
    report = prefetcher.run(attachments, _today())
    assert newest in report.fetched and older in report.skipped, report
    assert older in report.interrupted and report.error is None and prefetcher.due()
    # It waits on its own: not tried at once again.
    peer.asked.clear()
    assert prefetcher.run(attachments, _today()).fetched == [] and peer.asked == []


def test_a_full_disk_ends_the_round_and_backs_off(clinic: Clinic) -> None:
    clinic.add("a.pdf")
    clinic.add("b.pdf")
    peer = FakePeer(clinic.blobs)

    def full(blob_id: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    peer.before_write = full
    now = [1000.0]
    prefetcher = Prefetcher(clock=lambda: now[0])
    report = prefetcher.run(clinic.attachments(peer), _today())
    assert report.fetched == [] and report.error is not None and "disk" in report.error
    assert len(peer.asked) == 1 and not prefetcher.due()


def test_careline_sync_prefetch_warns_instead_of_exiting(
    clinic: Clinic, capsys: pytest.CaptureFixture[str]
) -> None:
    from types import SimpleNamespace

    from core.cli.sync import _prefetch

    class Broken(Prefetcher):
        def run(self, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
            raise OSError(errno.EIO, "Input/output error")

    ctx = SimpleNamespace(data_dir=clinic.folder, settings={"attachment_cache_mb": 64})
    assert _prefetch(ctx, clinic.ws.records, Broken(), FakePeer({})) == 0  # type: ignore[arg-type]
    assert "warning: prefetch stopped" in capsys.readouterr().err


def test_a_download_stops_within_one_small_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx

    from core.sync import blob_client

    body = b"x" * (3 * 1024 * KiB)
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=body))
    monkeypatch.setattr(
        blob_client,
        "_client",
        lambda credential, timeout=None: httpx.Client(transport=transport, base_url="http://s"),
    )
    dest = tmp_path / ("a" * 64)
    reads: list[int] = []

    def progress(done: int, total: int) -> None:
        reads.append(done)
        raise RuntimeError("stop")  # a prefetch told to stop

    with pytest.raises(RuntimeError):
        blob_client.fetch(None, "a" * 64, dest, "0" * 64, progress)  # type: ignore[arg-type]
    assert reads == [64 * KiB]
    assert dest.with_name(dest.name + ".part").stat().st_size == 64 * KiB


def test_keys_are_asked_for_without_the_file_lock_briefly_and_not_when_stopping(
    clinic: Clinic, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.sync import key_grants
    from core.sync.attachments import fetch_lock
    from core.sync.prefetch import TIMEOUT

    blob = clinic.add("keyed.pdf")
    attachments = clinic.attachments(FakePeer(clinic.blobs))
    asked: list[bool] = []

    def obtain_key(key_id: str, *args: object, **kwargs: object) -> None:
        lock = fetch_lock(blob)
        free = lock.acquire(blocking=False)  # a chart opening the file is not held up
        if free:
            lock.release()
        asked.append(free)

    monkeypatch.setattr(attachments, "obtain_key", obtain_key)
    assert Prefetcher().run(attachments, _today()).fetched == [blob]
    assert asked == [True]

    # The server is asked with the prefetch's short timeout; told to stop, it is not.
    timeouts: list[object] = []
    monkeypatch.setattr(
        key_grants, "exchange_keys", lambda records, credential, timeout: timeouts.append(timeout)
    )
    online = Attachments(clinic.ws.records, clinic.folder, credential=object())  # type: ignore[arg-type]
    assert online.obtain_key("no-such-key", TIMEOUT) is None and timeouts == [TIMEOUT]
    assert online.obtain_key("no-such-key", TIMEOUT, lambda: True) is None
    assert timeouts == [TIMEOUT]


def test_a_booked_patients_older_files_come_first_past_the_newest_limit(
    clinic: Clinic, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.records.schedule import Schedule
    from core.sync import prefetch

    old = clinic.add("old-letter.pdf", 4 * KiB)  # the booked patient's, older than the rest
    other = clinic.ws.records.add_patient(family="Other", given="O", birth_date="1970-01-01")
    clinic.patient, booked = other, clinic.patient
    newer = [clinic.add(f"newer-{n}.pdf", 4 * KiB) for n in range(3)]
    Schedule(clinic.ws.records).book(
        booked.id, f"{_today().isoformat()}T12:00", "admin", minutes=15
    )
    monkeypatch.setattr(prefetch, "_NEWEST_LIMIT", 2)  # the clinic has more than that
    wanted = [(w.blob_id, w.why) for w in prefetch.plan(clinic.ws.records.db, _today())]
    assert wanted == [
        (old, prefetch.BOOKED),
        (newer[2], prefetch.NEWEST),
        (newer[1], prefetch.NEWEST),
    ]


def test_files_not_on_the_server_yet_are_missing_not_a_connection_failure(
    clinic: Clinic, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.sync import blob_client
    from core.sync.transport import TransportError

    oldest = clinic.add("uploaded.pdf")
    absent = {clinic.add(f"not-yet-{n}.pdf") for n in range(3)}  # the newest three

    def server_fetch(credential: object, blob_id: str, dest: Path, sha256: str,
                     progress: Callable[[int, int], None], *args: object,
                     **kwargs: object) -> None:  # fmt: skip
        if blob_id in absent:
            raise AttachmentNotFoundError(f"the server has no attachment {blob_id} (404)")
        FakePeer(clinic.blobs).fetch_blob(blob_id, dest, sha256, progress)

    class SilentPeer(FakePeer):
        def fetch_blob(self, *args: object, **kwargs: object) -> None:
            raise TransportError("cannot reach the peer: timed out")

    monkeypatch.setattr(blob_client, "fetch", server_fetch)
    attachments = Attachments(
        clinic.ws.records,
        clinic.folder,
        credential=object(),  # type: ignore[arg-type]
        peers=(SilentPeer({}),),  # type: ignore[arg-type]
    )
    report = Prefetcher().run(attachments, _today())
    assert report.fetched == [oldest] and report.missing == 3 and report.error is None, report


def test_a_round_stopped_part_way_resumes_with_its_plan(
    clinic: Clinic, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.sync import prefetch

    blobs = [clinic.add(f"f{n}.pdf") for n in range(3)]
    planned: list[int] = []
    real = prefetch.plan

    def counted(*args: Any) -> list[prefetch.Wanted]:
        planned.append(1)
        return real(*args)

    monkeypatch.setattr(prefetch, "plan", counted)
    attachments = clinic.attachments(FakePeer(clinic.blobs))
    prefetcher = Prefetcher()
    arrived: list[str] = []
    first = prefetcher.run(attachments, _today(), lambda: bool(arrived), fetched=arrived.append)
    assert first.stopped and first.remaining == 2 and len(arrived) == 1
    rest = prefetcher.run(attachments, _today(), fetched=arrived.append, resume=True)
    assert sorted(arrived) == sorted(blobs) and rest.remaining == 0
    assert planned == [1]  # one plan for the round's two slices


def test_opening_a_prefetched_file_is_never_evicted_under_it(
    workstation: Workstation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    adding = Attachments(workstation.records, tmp_path)
    patient = workstation.records.add_patient(family="Open", given="O", birth_date="1990-01-01")
    items = []
    for age, name in enumerate(("opened-long-ago", "prefetched")):
        (tmp_path / name).write_bytes(name.encode() * (600 * KiB // len(name)))
        item = adding.add(patient.id, tmp_path / name, title=name)
        assert item.blob_id is not None
        items.append(item)
        (tmp_path / "attachments" / "pending" / item.blob_id).unlink()  # as if uploaded
        os.utime(adding.cache.path_for(item.blob_id), (1000 + age, 1000 + age))
    old, guessed = items
    assert old.blob_id is not None and guessed.blob_id is not None
    attachments = Attachments(workstation.records, tmp_path, cache_mb=1, peers=(FakePeer({}),))  # type: ignore[arg-type]
    attachments.prefetched_mark(guessed.blob_id).parent.mkdir()
    attachments.prefetched_mark(guessed.blob_id).touch()
    # The chart asks while the prefetch still downloads the file: it waits for the lock,
    # then finds the file (marked, over the 1 MiB budget with the other) in the cache.
    real = attachments.cache.exists
    from core.sync.attachments import fetch_lock

    downloading = [True]

    def exists(blob_id: str) -> bool:
        if fetch_lock(blob_id).locked():
            downloading[0] = False  # the chart holds the lock: the prefetch has finished
        return not downloading[0] and real(blob_id)

    monkeypatch.setattr(attachments.cache, "exists", exists)
    assert attachments.read(guessed.id) == (tmp_path / "prefetched").read_bytes()
    assert guessed.blob_id not in attachments.prefetched()


def test_a_download_waits_for_another_process_on_the_same_part(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib
    import os
    import threading

    import httpx

    from core.platform.file_lock import lock_fd
    from core.sync import blob_client

    body = b"y" * (200 * KiB)
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request.headers.get("Range", ""))
        return httpx.Response(200, content=body)

    transport = httpx.MockTransport(answer)
    monkeypatch.setattr(
        blob_client,
        "_client",
        lambda credential, timeout=None: httpx.Client(transport=transport, base_url="http://s"),
    )
    dest = tmp_path / ("b" * 64)
    part = dest.with_name(dest.name + ".part")
    # Another process (careline sync --prefetch beside the app) is downloading it.
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    lock_fd(fd)
    os.write(fd, body[:1000])
    sha = hashlib.sha256(body).hexdigest()
    failed: list[BaseException] = []

    def fetch() -> None:
        try:
            blob_client.fetch(None, "b" * 64, dest, sha)  # type: ignore[arg-type]
        except BaseException as exc:  # reported below
            failed.append(exc)

    # A prefetch told to stop while it waits stops at once (raised from its progress).
    def stopping(done: int, total: int) -> None:
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        blob_client.fetch(None, "b" * 64, dest, sha, stopping)  # type: ignore[arg-type]
    thread = threading.Thread(target=fetch)
    thread.start()
    thread.join(0.3)
    assert thread.is_alive() and asked == []  # it waits rather than append to the part
    os.write(fd, body[1000:])
    os.replace(part, dest)  # the other process finished
    os.close(fd)
    thread.join(5)
    assert not thread.is_alive() and not failed and asked == []
    assert dest.read_bytes() == body and not part.exists()


# An attachment title as staff type them: a patient's name and what the file is.
PHI_TITLE = "Jane Roe HIV result.pdf"


@pytest.mark.parametrize("problem", ["file vanished", "disk full", "peer unreachable"])
def test_the_prefetch_logs_attachments_by_id_never_by_title(
    clinic: Clinic, caplog: pytest.LogCaptureFixture, problem: str
) -> None:
    blob = clinic.add(PHI_TITLE)
    peer = FakePeer(clinic.blobs)

    def fail(blob_id: str) -> None:
        if problem == "file vanished":
            raise FileNotFoundError(2, "No such file", "x.part")
        if problem == "peer unreachable":
            raise TransportError("the peer did not answer")
        raise OSError(errno.ENOSPC, "No space left on device")

    peer.before_write = fail
    with caplog.at_level(logging.DEBUG):
        report = Prefetcher().run(clinic.attachments(peer), _today())
    assert blob not in report.fetched
    # A skipped file is logged, a full disk or an unreachable peer is the round's error,
    # which the app logs (app/sync/prefetching.py): by record or blob, never by title.
    said = caplog.text if problem == "file vanished" else str(report.error)
    assert clinic.ids[PHI_TITLE] in said or blob in said
    assert PHI_TITLE not in caplog.text and PHI_TITLE not in said
