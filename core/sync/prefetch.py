"""Fetching chart attachments ahead of need, so a workstation can open them offline.

Without this, a workstation downloads a file's ciphertext only when someone opens it, so
when the network or the server goes down, files added elsewhere (or never opened here)
cannot be seen. After a sync round that reached the clinic server (or, in a clinic with no
server, LAN peers), :class:`Prefetcher` fetches the ciphertext of files not yet cached,
most useful first (:func:`plan`):

1. patients booked today, then on the next day the schedule has bookings (its next working
   day, whatever days the clinic works), in the order of their appointments;
2. patients with a visit open today;
3. the clinic's newest files.

Bounds: prefetched files (fetched here, never opened since) take at most ``share_percent``
of the cache budget (``attachment_cache_mb``), and only room that is free: the prefetch
never evicts a file someone opened or one waiting to upload. To make room for a more
useful file it drops only files it fetched itself that are no longer among the most
useful ones. Opening a prefetched file makes it an opened file (kept as such); when the
cache overflows, never-opened prefetched files go first (``Attachments.evict``).

Each download goes through :meth:`Attachments.download` like a chart's: the server
first, then the trusted LAN peers, resumed with ``Range`` from a partial file, the
ciphertext's SHA-256 checked against the attachment record. Then the file's clinic
attachment key is asked of the server or the peers if this workstation does not hold it
(so the file opens offline), and the file is decrypted into nothing to check every chunk's
tag and the blob id, as opening does: a damaged or forged blob is deleted (never shown)
and not asked for again for a while. Only ciphertext is stored.

Stopping: ``should_stop`` is asked between files, at each read of a download (64 KiB),
and before asking the server and each peer for a key; a stopped download keeps its
partial file for the next round. The prefetch's requests give up on a silent server or
peer after 10 s (5 s to connect), and the file's lock is not held while keys are asked
for, so a chart opening the same file never waits on the network for it.

Errors back off: after a round with connection trouble or a server error (it ends at the
third in a row, or at once when the server refuses this device) the next round waits, 30
s doubling to 30 min; a file no source has yet, or that arrived damaged, waits on its
own (5 min and 1 h, doubling to a day). Any other problem of one file (a record naming a
malformed blob id, a file removed meanwhile) skips that file, logged by name, and it
waits on its own too; a full disk ends the round and the next one waits. A round never
raises for a file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from core.crypto.streaming import ciphertext_size
from core.errors import for_log
from core.records import merged
from core.store.blobs.base import BLOB_ID_PATTERN
from core.store.database import Database
from core.sync.attachments import (
    AttachmentProblem,
    Attachments,
    BlobMissing,
    BlobRefused,
    DeviceRefused,
    fetch_lock,
)
from core.sync.backoff import backoff

log = logging.getLogger(__name__)
DEFAULT_SHARE_PERCENT = 50
BOOKED = "booked"  # booked today or on the next day with bookings
VISIT = "visit"  # a visit open today
NEWEST = "newest"  # the clinic's newest files
# Appointments that still bring the patient in (cancelled, no-show and done ones do not).
_COMING = ("booked", "arrived", "in_visit")
_LOOK_AHEAD_DAYS = 7  # how far the next day with bookings is looked for
_NEWEST_LIMIT = 5_000  # newest files considered (the share fills long before, usually)
# A silent server or peer is given up on sooner than an opened file's download would, so a
# dropped network stops the prefetch promptly.
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
# Consecutive connection failures that end a round (each file is tried on every source).
_ROUND_FAILURES = 3

Progress = Callable[[int, int], None]


class _Stopped(Exception):
    """Raised from a download's progress report when the prefetch was told to stop."""


class _Busy(Exception):
    """The chart is fetching this file right now (it will be here without the prefetch)."""


@dataclass(frozen=True)
class Wanted:
    """One file worth having here, and why."""

    record_id: str
    blob_id: str
    sha256: str
    key_id: str | None
    title: str
    size: int  # ciphertext bytes, from the record's plaintext size
    record_size: int  # the plaintext size the record states
    why: str  # BOOKED, VISIT or NEWEST


@dataclass
class PrefetchReport:
    """What one round did."""

    fetched: list[str] = field(default_factory=list)  # blob ids, in the order fetched
    fetched_bytes: int = 0
    refused: list[str] = field(default_factory=list)  # damaged or forged: deleted
    missing: int = 0  # no source has them yet
    over_share: int = 0  # useful, but past the share or the free room
    dropped: int = 0  # own earlier prefetches dropped for more useful files
    stopped: bool = False  # told to stop (the partial file is kept)
    error: str | None = None  # the last connection or server failure (the next round waits)
    remaining: int = 0  # wanted files within the share still to fetch
    # Blobs whose download stopped or failed part-way (their progress shown is stale).
    interrupted: list[str] = field(default_factory=list)
    # The file whose download was stopped part-way (resumed by the next slice).
    stopped_in: str | None = None
    # Files passed over for a problem of their own (a malformed record, a file removed
    # meanwhile): each waits on its own, the round goes on.
    skipped: list[str] = field(default_factory=list)


def next_booked_day(db: Database, today: dt.date) -> dt.date | None:
    """The first day after ``today`` (within a week) with an appointment that still
    brings a patient in: the clinic's next working day, as its schedule says."""
    first = (today + dt.timedelta(days=1)).isoformat()
    last = (today + dt.timedelta(days=_LOOK_AHEAD_DAYS + 1)).isoformat()
    marks = ", ".join("?" for _ in _COMING)
    rows = db.query(
        "SELECT min(substr(starts_at, 1, 10)) FROM appointments "
        f"WHERE starts_at >= ? AND starts_at < ? AND status IN ({marks})",
        (first, last, *_COMING),
    )
    return dt.date.fromisoformat(rows[0][0]) if rows and rows[0][0] else None


def _booked(db: Database, today: dt.date) -> list[str]:
    """Patients booked today, then on the next day with bookings, by appointment time."""
    days = [today, next_booked_day(db, today)]
    marks = ", ".join("?" for _ in _COMING)
    found: list[str] = []
    for day in (d for d in days if d is not None):
        rows = db.query(
            "SELECT patient_id FROM appointments WHERE starts_at >= ? AND starts_at < ? "
            f"AND status IN ({marks}) ORDER BY starts_at, id",
            (day.isoformat(), (day + dt.timedelta(days=1)).isoformat(), *_COMING),
        )
        found += [str(r[0]) for r in rows]
    return found


def _in_visit(db: Database, today: dt.date) -> list[str]:
    """Patients with a visit open that started today, latest first."""
    rows = db.query(
        "SELECT patient_id FROM encounters WHERE status = 'open' AND started_at >= ? "
        "ORDER BY started_at DESC, id",
        (today.isoformat(),),
    )
    return [str(r[0]) for r in rows]


_COLUMNS = (
    "SELECT id, patient_id, blob_id, sha256, key_id, coalesce(title, filename), size "
    "FROM attachments WHERE blob_id IS NOT NULL AND blob_id != '' "
)


def plan(db: Database, today: dt.date) -> list[Wanted]:
    """Every file stored as a blob (cached or not), most useful first: booked patients'
    (today, then the next day with bookings), then those of patients in a visit open today,
    each patient's newest first, then the clinic's newest. A merged duplicate's files count
    as its survivor's chart's. Each booked or visiting chart's files are read by patient
    (indexed), so a chart's older files come first however many newer ones the clinic has;
    the clinic's newest are only the first ``_NEWEST_LIMIT``."""
    links = merged.pointers(db)
    merged_into: dict[str, list[str]] = {}  # chart -> the duplicates merged into it
    for duplicate in links:
        merged_into.setdefault(merged.resolve(links, duplicate), []).append(duplicate)
    ordered: list[Wanted] = []
    for why, patients in ((BOOKED, _booked(db, today)), (VISIT, _in_visit(db, today))):
        for chart in dict.fromkeys(merged.resolve(links, p) for p in patients):
            ids = [chart, *merged_into.get(chart, [])]
            marks = ", ".join("?" for _ in ids)
            rows = db.query(
                _COLUMNS + f"AND patient_id IN ({marks}) ORDER BY created_at DESC, id", tuple(ids)
            )
            ordered += _wanted(rows, why)
    rows = db.query(_COLUMNS + "ORDER BY created_at DESC, id LIMIT ?", (_NEWEST_LIMIT,))
    ordered += _wanted(rows, NEWEST)
    once: dict[str, Wanted] = {}
    for wanted in ordered:
        once.setdefault(wanted.blob_id, wanted)
    return list(once.values())


def _wanted(rows: list[Any], why: str) -> list[Wanted]:
    return [
        Wanted(str(r[0]), str(r[2]), str(r[3]), r[4], str(r[5]),
               ciphertext_size(int(r[6] or 0)), int(r[6] or 0), why)
        for r in rows
        if _valid(r[0], r[2])
    ]  # fmt: skip


def _valid(record_id: object, blob_id: object) -> bool:
    """Whether a record names a well-formed blob id; a synced record's is not checked on
    arrival, and a malformed one (a hostile or broken replica) must never become a path."""
    if isinstance(blob_id, str) and BLOB_ID_PATTERN.fullmatch(blob_id):
        return True
    log.warning("attachment %s names no valid blob id: not fetched ahead", record_id)
    return False


def _disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


class Prefetcher:
    """Fetches attachments ahead of need, round after round; remembers what failed, so
    errors back off (one per workstation process: the app's sync thread, ``careline
    sync --prefetch``)."""

    def __init__(
        self,
        share_percent: int = DEFAULT_SHARE_PERCENT,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        round_backoff: tuple[float, float] = (30.0, 1800.0),
        missing_backoff: tuple[float, float] = (300.0, 86400.0),
        refused_backoff: tuple[float, float] = (3600.0, 86400.0),
    ) -> None:
        self.share_percent = share_percent
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 (retry jitter, not a secret)
        self._round_backoff = round_backoff
        self._missing_backoff = missing_backoff
        self._refused_backoff = refused_backoff
        self._failures = 0
        self._next_round = 0.0
        self._blob_waits: dict[str, tuple[int, float]] = {}  # blob id -> (failures, until)
        self._round: _Round | None = None  # a round stopped part-way, to resume

    @property
    def enabled(self) -> bool:
        """False when the setting turned the prefetch off (0 %)."""
        return self.share_percent > 0

    def due(self) -> bool:
        """Whether a round may run now (not backing off after a failed one)."""
        return self.enabled and self._clock() >= self._next_round

    def share(self, attachments: Attachments) -> int:
        """The bytes prefetched files may take."""
        return attachments.budget * self.share_percent // 100

    def run(
        self,
        attachments: Attachments,
        today: dt.date,
        should_stop: Callable[[], bool] = lambda: False,
        progress_of: Callable[[str], Progress] | None = None,
        fetched: Callable[[str], None] | None = None,
        resume: bool = False,
    ) -> PrefetchReport:
        """One round: fetch the most useful files not cached here, within the share.

        ``progress_of(blob_id)``: a progress sink per file; ``fetched(blob_id)``: called
        as each file is in the cache, checked. ``resume``: carry on the round the last run
        stopped (a slice whose time was up), with its plan, rather than plan a new one.
        Never raises for a failed download (the report says what happened)."""
        report = PrefetchReport()
        if not self.due() or not attachments.can_fetch():
            self._round = None
            return report
        current = self._round if resume and self._round is not None else None
        if current is None:
            current = _Round.begin(attachments, self.share(attachments), today)
            report.over_share = current.over_share
        self._round = None
        todo, cache = current.todo, current.cache
        share, budget, spare = current.share, current.budget, current.spare
        asked = current.asked  # keys asked for this round (each once)
        failures = 0
        for index in range(current.next, len(todo)):
            item = todo[index]
            if should_stop():
                report.stopped = True
                report.remaining = len(todo) - index
                current.next = index
                self._round = current
                break
            if not self._may_try(item.blob_id):
                continue
            while spare and not cache.fits(item, share, budget):
                cache.drop(attachments, spare.pop(0))
                report.dropped += 1
            if not cache.fits(item, share, budget):
                report.over_share += 1
                continue
            try:
                outcome = self._fetch_one(attachments, item, should_stop, progress_of, asked)
                if outcome is None:
                    cache.add(attachments, item.blob_id)
            except Exception as exc:  # one file's problem never ends the loop
                outcome = exc
            if outcome is None:
                failures = 0
                report.fetched.append(item.blob_id)
                report.fetched_bytes += cache.sizes[item.blob_id]
                if fetched is not None:
                    fetched(item.blob_id)
            elif _disk_full(outcome):  # nothing more fits: the next round waits
                # report.error is logged (app/sync/prefetching.py): the record, not its title.
                report.error = f"the disk is full (fetching attachment {item.record_id}): {outcome}"
                report.interrupted.append(item.blob_id)
                report.remaining = len(todo) - index
                break
            elif not isinstance(outcome, (_Stopped, AttachmentProblem, _Busy)):
                # This file's own problem: skipped, it waits on its own.
                log.warning(
                    "attachment prefetch skipped attachment %s (blob %s): %s", item.record_id,
                    item.blob_id, for_log(outcome),
                )  # fmt: skip
                report.skipped.append(item.blob_id)
                report.interrupted.append(item.blob_id)
                self._wait_blob(item.blob_id, self._missing_backoff)
            elif isinstance(outcome, _Busy):
                continue
            elif isinstance(outcome, _Stopped):
                report.stopped = True
                report.remaining = len(todo) - index
                report.interrupted.append(item.blob_id)
                report.stopped_in = item.blob_id
                current.next = index  # resumed from its partial file
                self._round = current
                break
            elif isinstance(outcome, BlobRefused):
                report.refused.append(item.blob_id)
                self._wait_blob(item.blob_id, self._refused_backoff)
            elif isinstance(outcome, BlobMissing):
                report.missing += 1
                self._wait_blob(item.blob_id, self._missing_backoff)
            else:  # connection trouble, a server error, a refused device: back off
                failures += 1
                report.error = for_log(outcome)  # logged: the blob, not the title
                report.interrupted.append(item.blob_id)
                if isinstance(outcome, DeviceRefused) or failures >= _ROUND_FAILURES:
                    report.remaining = len(todo) - index
                    break
        self._after_round(report)
        return report

    def _fetch_one(
        self,
        attachments: Attachments,
        item: Wanted,
        should_stop: Callable[[], bool],
        progress_of: Callable[[str], Progress] | None,
        asked: set[str],
    ) -> Exception | None:
        """Download and check one file; None when it is in the cache, else why not. Its
        clinic attachment key is asked of the server or the peers if not held here (once a
        round), so it opens offline too; without it, opening checks the file."""
        lock = fetch_lock(item.blob_id)
        if not lock.acquire(blocking=False):
            return _Busy(item.blob_id)
        # Marked first: a file that lands in the cache is never taken for an opened one.
        mark = attachments.prefetched_mark(item.blob_id)
        try:
            if attachments.cache.exists(item.blob_id):  # opened meanwhile
                return None
            report = progress_of(item.blob_id) if progress_of is not None else None

            def progress(done: int, total: int) -> None:
                if should_stop():
                    raise _Stopped("prefetch stopped")
                if report is not None:
                    report(done, total)

            mark.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            mark.touch()
            attachments.download(
                item.blob_id, item.sha256, item.title, progress, TIMEOUT,
                record_size=item.record_size,
            )  # fmt: skip
        except Exception as exc:  # the caller sorts them out
            with contextlib.suppress(Exception):
                if not attachments.cache.exists(item.blob_id):
                    mark.unlink(missing_ok=True)
            return exc
        finally:
            lock.release()
        # The key is asked for without the file's lock (the chart opening this file must
        # not wait on the network), with the prefetch's short timeouts, stopping between
        # the server and each peer. Told to stop, the file stays: opening checks it.
        if item.key_id and item.key_id not in asked and not should_stop():
            asked.add(item.key_id)
            attachments.obtain_key(item.key_id, TIMEOUT, should_stop)
        with lock:
            if attachments.cache.exists(item.blob_id):  # not dropped meanwhile
                try:
                    attachments.check_cached(item.blob_id, item.key_id)
                except AttachmentProblem as exc:  # refused: deleted, so not ours any more
                    mark.unlink(missing_ok=True)
                    return exc
        return None

    def _may_try(self, blob_id: str) -> bool:
        waiting = self._blob_waits.get(blob_id)
        return waiting is None or self._clock() >= waiting[1]

    def _wait_blob(self, blob_id: str, rule: tuple[float, float]) -> None:
        count = self._blob_waits.get(blob_id, (0, 0.0))[0] + 1
        delay = backoff(count, rule[0], rule[1], self._rng)
        self._blob_waits[blob_id] = (count, self._clock() + delay)

    def _after_round(self, report: PrefetchReport) -> None:
        for blob_id in report.fetched:
            self._blob_waits.pop(blob_id, None)
        for blob_id in report.skipped:
            log.warning("attachment %s not fetched ahead this round (it waits)", blob_id)
        if report.error is None:
            self._failures = 0
            return
        self._failures += 1
        delay = backoff(self._failures, *self._round_backoff, self._rng)
        self._next_round = self._clock() + delay


@dataclass
class _Round:
    """A round's plan, kept across the slices of one round (planning reads the newest
    files and stats the cache: done once a round, not once a slice)."""

    todo: list[Wanted]
    cache: _CacheState
    spare: list[str]  # own earlier guesses no longer among the most useful, oldest first
    share: int
    budget: int
    over_share: int
    asked: set[str] = field(default_factory=set)
    next: int = 0  # the index in ``todo`` to carry on from

    @classmethod
    def begin(cls, attachments: Attachments, share: int, today: dt.date) -> _Round:
        cache = _CacheState.read(attachments)
        wanted = [w for w in plan(attachments.records.db, today) if cache.ours(w.blob_id)]
        keep = _within(wanted, cache, share)
        return cls(
            todo=[w for w in wanted if w.blob_id in keep and w.blob_id not in cache.sizes],
            cache=cache,
            spare=[b for b in cache.oldest_guesses() if b not in keep],
            share=share,
            budget=attachments.budget,
            over_share=sum(1 for w in wanted if w.blob_id not in keep),
        )


@dataclass
class _CacheState:
    """The cache as one round sees it: each file's size, which ones the prefetch fetched
    (and nobody opened since), and which wait for upload."""

    sizes: dict[str, int]  # file name (blob id, or blob id + ".part") -> bytes
    guesses: dict[str, float]  # prefetched blob id -> its file's mtime
    pending: set[str]

    @classmethod
    def read(cls, attachments: Attachments) -> _CacheState:
        sizes: dict[str, int] = {}
        times: dict[str, float] = {}
        for path in attachments.cached_files():
            with contextlib.suppress(OSError):  # dropped meanwhile
                info = path.stat()
                sizes[path.name], times[path.name] = info.st_size, info.st_mtime
        guesses: dict[str, float] = {}
        for blob_id in attachments.prefetched():
            if blob_id in times:
                guesses[blob_id] = times[blob_id]
            elif blob_id + ".part" not in sizes:  # its file was evicted: forget the mark
                attachments.prefetched_mark(blob_id).unlink(missing_ok=True)
        return cls(sizes, guesses, set(attachments.pending()))

    def ours(self, blob_id: str) -> bool:
        """Whether the prefetch deals with this file: not waiting for upload, and not one
        someone opened (or added) here."""
        return blob_id not in self.pending and (
            blob_id not in self.sizes or blob_id in self.guesses
        )

    def oldest_guesses(self) -> list[str]:
        return sorted(self.guesses, key=lambda b: self.guesses[b])

    def __post_init__(self) -> None:
        # Kept as files come and go, so each file's room check is not a sum over the cache.
        self.total = sum(self.sizes.values())
        self.guessed = sum(self.sizes.get(b, 0) for b in self.guesses)

    def fits(self, item: Wanted, share: int, budget: int) -> bool:
        """Whether fetching ``item`` keeps the prefetch within its share and the cache
        within its budget (a partial download of it is already counted)."""
        rest = max(item.size - self.sizes.get(item.blob_id + ".part", 0), 0)
        return self.guessed + item.size <= share and self.total + rest <= budget

    def drop(self, attachments: Attachments, blob_id: str) -> None:
        """Delete a file the prefetch fetched (less useful now than what it makes room for)."""
        lock = fetch_lock(blob_id)
        with lock:
            if attachments.prefetched_mark(blob_id).exists():  # not opened meanwhile
                attachments.cache.delete(blob_id)
                attachments.prefetched_mark(blob_id).unlink(missing_ok=True)
        self._forget(blob_id)

    def _forget(self, name: str) -> None:
        size = self.sizes.pop(name, 0)
        self.total -= size
        if self.guesses.pop(name, None) is not None:
            self.guessed -= size

    def add(self, attachments: Attachments, blob_id: str) -> None:
        """A file arrived: count it."""
        self._forget(blob_id + ".part")
        self._forget(blob_id)
        path = attachments.cache.path_for(blob_id)
        info = path.stat()
        self.sizes[blob_id] = info.st_size
        self.total += info.st_size
        if attachments.prefetched_mark(blob_id).exists():
            self.guesses[blob_id] = info.st_mtime
            self.guessed += info.st_size


def _within(wanted: list[Wanted], cache: _CacheState, share: int) -> set[str]:
    """The most useful files whose sizes add up to at most ``share`` (one too large is
    passed over for smaller ones after it)."""
    keep: set[str] = set()
    room = share
    for item in wanted:
        cost = cache.sizes.get(item.blob_id, item.size)
        if cost <= room:
            keep.add(item.blob_id)
            room -= cost
    return keep
