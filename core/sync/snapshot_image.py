"""A new replica's first download as one file (issue 17): a snapshot image.

A first download by pages stores every record the way a batch of ops is stored: each state
loaded as a document, its rows derived, its search entry written. That work, about 90 µs a
record on the development machine, is what kept a 100,000-record download above 8 s. The
clinic server can do it once, ahead of time, for every workstation that joins after: it
keeps a replica of its own built from its snapshot pages (the same ``apply_snapshot_page``
a workstation runs), and offers a joining workstation that replica's replicated tables as
one SQLCipher file. The workstation copies them into its own, empty file with one
``INSERT … SELECT`` per table inside one transaction, at SQLite's speed, and goes on from
the image's version vector with ordinary pulls. Anki's full sync sends its collection as a
file for the same reason.

What an image holds and does not hold:
- every table a snapshot page writes (record states and everything derived from them);
  never a replica's own identity, keys, op log, audit trail, quarantine or certificates
  (``LOCAL_TABLES``), and not the full-text index's storage: the patients table's own
  triggers write the workstation's index as rows are copied in.
- It is encrypted under a random key made for it, held only in the server process's memory
  (``SecureMemory``), and sent to the workstation inside the authenticated sync reply; the
  file itself is useless without it, and is deleted when the server stops.

Trust is the first download's by pages (README, "Limits, said plainly"): record states of a
snapshot are merged results, trusted on the mutual-TLS connection to the clinic server;
every op after the image is verified. An image is used only when its schema is exactly the
workstation's (same version, same tables, indexes and triggers, compared as SQL text), its
file passes SQLite's ``quick_check`` and its digest, and the workstation holds no records
yet; anything else falls back to pages, and the reason is logged.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from core.crypto.secure_memory import SecureMemory
from core.errors import CarelineError
from core.records import replication
from core.store import oplog
from core.store.database import Database, Transaction
from core.store.migrations import LATEST_VERSION
from core.sync import protocol as p
from core.sync.stores import SyncStore

log = logging.getLogger(__name__)

# Below this many records a download by pages already takes well under a second here
# (6,000 bench records: 0.67 s by pages, 0.13 s as an image): not worth the server
# building, keeping and refreshing a file for.
MIN_RECORDS = 5_000
# An image is offered while it lags the server by at most this many ops (the workstation
# pulls them after the image, at a few thousand ops a second) ...
MAX_LAG_OPS = 2_000
# ... and rebuilt, in the background, once a request finds it lagging by more than this.
REBUILD_LAG_OPS = 500
PAGE_RECORDS = 1_000
# A replica's own tables, never copied from another's (the snapshot differential test's
# "own" tables, and what a snapshot leaves empty or sets itself: the op log, the version
# vector, quarantine and refusals, the schema's version).
LOCAL_TABLES = frozenset(
    {
        "meta",
        "audit_log",
        "device_certs",
        "device_audit",
        "oplog",
        "version_vector",
        "quarantine",
        "refused_elsewhere",
        "schema_version",
    }
)
ALIAS = "image"
CHUNK_BYTES = 1 << 20


class ImageError(CarelineError):
    """A snapshot image that cannot be used here (the download goes on by pages)."""


@dataclass(frozen=True)
class ImageOffer:
    """What a workstation is told of an image: enough to fetch, check and open it."""

    id: str
    size: int
    sha256: str
    key: bytes
    schema: int
    records: int
    vector: dict[str, int]

    def to_wire(self) -> dict[str, Any]:
        """As sent in a snapshot page's reply."""
        return {
            "id": self.id,
            "bytes": self.size,
            "sha256": self.sha256,
            "key": self.key.hex(),
            "schema": self.schema,
            "records": self.records,
            "vv": p.vv_to_wire(self.vector),
        }

    @classmethod
    def from_wire(cls, value: Any) -> ImageOffer:
        """An offer as received, checked (ProtocolError names the bad field)."""
        if not isinstance(value, dict):
            raise p.ProtocolError("malformed", "image must be an object")
        image_id, sha, key = value.get("id"), value.get("sha256"), value.get("key")
        if not isinstance(image_id, str) or not is_image_id(image_id):
            raise p.ProtocolError("malformed", "image.id must be 32 hex digits")
        if not isinstance(sha, str) or not _hex(sha, 64):
            raise p.ProtocolError("malformed", "image.sha256 must be 64 hex digits")
        if not isinstance(key, str) or not _hex(key, 64):
            raise p.ProtocolError("malformed", "image.key must be 64 hex digits")
        numbers = {}
        for name in ("bytes", "schema", "records"):
            number = value.get(name)
            if not isinstance(number, int) or isinstance(number, bool) or number < 0:
                raise p.ProtocolError("malformed", f"image.{name} must be a whole number")
            numbers[name] = number
        return cls(
            image_id,
            numbers["bytes"],
            sha,
            bytes.fromhex(key),
            numbers["schema"],
            numbers["records"],
            p.vv_from_wire(value.get("vv"), "image.vv"),
        )


def _hex(text: str, length: int) -> bool:
    return len(text) == length and all(c in "0123456789abcdef" for c in text)


def is_image_id(text: str) -> bool:
    """Whether ``text`` has the shape of an image's id (32 lowercase hex digits)."""
    return _hex(text, 32)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def wants_image(db: Database) -> dict[str, Any] | None:
    """The ``image`` field of a first snapshot request, or None when this replica could
    not use one (it already holds records, or lives in memory)."""
    if str(db.path) == ":memory:" or db.query("SELECT 1 FROM record_states LIMIT 1"):
        return None
    return {"schema": LATEST_VERSION}


# ----- building (the clinic server) --------------------------------------------------------


@dataclass
class SnapshotImage:
    """A built image on the server's disk, and the key that opens it."""

    path: Path
    key: SecureMemory
    offer_without_key: ImageOffer
    built_s: float

    def offer(self) -> ImageOffer:
        """The offer, with a copy of the key (a ``bytes`` copy cannot be wiped)."""
        o = self.offer_without_key
        return ImageOffer(o.id, o.size, o.sha256, self.key.read(), o.schema, o.records, o.vector)

    def close(self) -> None:
        """Delete the file and wipe the key."""
        self.path.unlink(missing_ok=True)
        self.key.close()


def build(store: SyncStore, folder: Path, stop: threading.Event | None = None) -> SnapshotImage:
    """A new image of ``store`` in ``folder``: its snapshot pages stored in a new replica,
    as a workstation would store them, then checkpointed and closed."""
    started = time.monotonic()
    image_id = secrets.token_hex(16)
    path = folder / f"{image_id}.db"
    key = SecureMemory.from_bytes(bytearray(secrets.token_bytes(32)))
    try:
        db = Database.create(path, key)
        try:
            after: str | None = None
            vector: dict[str, int] | None = None
            records = 0
            while True:
                if stop is not None and stop.is_set():
                    raise ImageError("the server is stopping")
                page = store.snapshot_page(after, PAGE_RECORDS, frozenset(p.STATE_FORMS))
                vector = page.vector if vector is None else vector
                records += replication.apply_snapshot_page(db, page, "server:image")
                if page.next_after is None:
                    break
                after = page.next_after
            with db.write("server:image", "sync.snapshot_done", "version_vector", "all") as tx:
                for origin, seq in (vector or {}).items():
                    oplog.raise_floor(tx, origin, seq)
            db.query("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            db.close()
        offer = ImageOffer(
            image_id,
            path.stat().st_size,
            _file_sha256(path),
            b"",
            LATEST_VERSION,
            records,
            vector or {},
        )
    except BaseException:
        for leftover in folder.glob(f"{image_id}.db*"):
            leftover.unlink(missing_ok=True)
        key.close()
        raise
    return SnapshotImage(path, key, offer, time.monotonic() - started)


@dataclass(frozen=True)
class ImageStream:
    """An image as it is sent: its size in bytes (of the file opened) and its chunks
    (closing the generator closes the file)."""

    size: int
    chunks: Generator[bytes, None, None]


def _lag(held: dict[str, int], now: dict[str, int]) -> int:
    return sum(max(0, seq - held.get(origin, 0)) for origin, seq in now.items())


@dataclass
class ImageKeeper:
    """One clinic's image on the server: offered while fresh enough, rebuilt in a
    background thread when a request finds none or finds it stale. Thread-safe."""

    store: Callable[[], SyncStore]
    folder: Path
    min_records: int = MIN_RECORDS
    max_lag: int = MAX_LAG_OPS
    rebuild_lag: int = REBUILD_LAG_OPS
    # Builds of every clinic on a server take turns (ClinicServer passes one slot to
    # all its keepers): a server starting with many large clinics builds them one at a
    # time, not all at once on its cores.
    build_slot: threading.Semaphore = field(default_factory=threading.Semaphore)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _current: SnapshotImage | None = None
    _building: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    last_error: str | None = None

    def offer(self, vector: dict[str, int], records: int) -> ImageOffer | None:
        """The image to offer a replica downloading a store now at ``vector`` with
        ``records`` records (None: none fresh enough, pages instead); starts a rebuild
        when the image is missing or stale."""
        with self._lock:
            current = self._current
            lag = None if current is None else _lag(current.offer_without_key.vector, vector)
            if (lag is None and records >= self.min_records) or (
                lag is not None and lag > self.rebuild_lag
            ):
                self._start_build()
            if current is None or lag is None or lag > self.max_lag:
                return None
            return current.offer()

    def prepare(self) -> None:
        """Build an image now, in the background, if the clinic is large enough."""
        with self._lock:
            if self._current is None and self.store().snapshot_size() >= self.min_records:
                self._start_build()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a build in progress; True when none is running any more."""
        thread = self._building
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def open(self, image_id: str) -> BinaryIO:
        """The image's file opened for reading, for the caller to close (KeyError: no such
        image). Once opened, a rebuild that deletes the file does not cut the reader short
        (POSIX: the open file lives on)."""
        with self._lock:
            current = self._current
            if current is None or current.offer_without_key.id != image_id:
                raise KeyError(image_id)
            try:
                return current.path.open("rb")
            except FileNotFoundError:
                # Removed behind the keeper's back: forgotten, and made again for the
                # next workstation (this one downloads pages).
                log.warning("snapshot image %s is gone from %s", image_id, current.path)
                self._current = None
                current.key.close()
                self._start_build()
                raise KeyError(image_id) from None

    def stream(self, image_id: str) -> ImageStream:
        """The image's size and its bytes in chunks, for a response body (KeyError at once,
        before the first chunk, when there is no such image)."""
        f = self.open(image_id)
        size = os.fstat(f.fileno()).st_size

        def read() -> Generator[bytes, None, None]:
            with f:
                while chunk := f.read(CHUNK_BYTES):
                    yield chunk

        return ImageStream(size, read())

    def _start_build(self) -> None:
        if self._building is not None and self._building.is_alive():
            return
        self._building = threading.Thread(
            target=self._build, name="careline-snapshot-image", daemon=True
        )
        self._building.start()

    def _build(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            with self.build_slot:
                image = build(self.store(), self.folder, self._stop)
        except Exception as exc:  # the next request tries again; pages meanwhile
            self.last_error = str(exc) or type(exc).__name__
            log.warning("building the snapshot image failed: %s", self.last_error)
            return
        log.info(
            "snapshot image of %s records built in %.1f s (%s bytes)",
            image.offer_without_key.records,
            image.built_s,
            image.offer_without_key.size,
        )
        with self._lock:
            old, self._current = self._current, image
            self.last_error = None
        if old is not None:
            old.close()

    def close(self) -> None:
        """Stop a build, delete the image and its folder."""
        self._stop.set()
        self.wait(30)
        with self._lock:
            if self._current is not None:
                self._current.close()
                self._current = None
        shutil.rmtree(self.folder, ignore_errors=True)


# ----- using (the new workstation) ---------------------------------------------------------


def replicated_tables(db: Database, schema: str = "main") -> list[str]:
    """The tables an image carries: every ordinary table but a replica's own, and but the
    full-text index's storage (written by the patients table's triggers)."""
    rows = db.query(f"SELECT type, name, sql FROM {schema}.sqlite_master")
    virtual = [name for kind, name, sql in rows if kind == "table" and "VIRTUAL" in (sql or "")]
    return sorted(
        name
        for kind, name, sql in rows
        if kind == "table"
        and name not in LOCAL_TABLES
        and not name.startswith("sqlite_")
        and name not in virtual
        and not any(name.startswith(f"{v}_") for v in virtual)
    )


def _schema(db: Database, schema: str) -> list[tuple[str, str, str]]:
    return sorted(
        (str(kind), str(name), " ".join(str(sql).split()))
        for kind, name, sql in db.query(f"SELECT type, name, sql FROM {schema}.sqlite_master")
        if sql is not None
    )


def _columns(db: Database, table: str) -> str:
    return ", ".join(f'"{row[1]}"' for row in db.query(f'PRAGMA main.table_info("{table}")'))


def check_file(path: Path, offer: ImageOffer) -> None:
    """The downloaded file is the one offered (size and SHA-256), or ImageError."""
    size = path.stat().st_size
    if size != offer.size:
        raise ImageError(f"the image is {size} bytes, not the {offer.size} offered")
    if _file_sha256(path) != offer.sha256:
        raise ImageError("the image's SHA-256 is not the one offered (damaged on the way?)")


def import_image(
    db: Database,
    path: Path,
    offer: ImageOffer,
    actor: str,
    on_rows: Callable[[int, int], object] | None = None,
) -> dict[str, int]:
    """Copy the image at ``path`` into ``db``, which must hold no records, and record its
    version vector, all in one transaction; returns its records per type. ``on_rows``
    hears (rows copied, rows in all) as the copy goes. ImageError names why an image
    cannot be used (nothing is written then)."""
    check_file(path, offer)
    if offer.schema != LATEST_VERSION:
        raise ImageError(f"the image is of schema version {offer.schema}, not {LATEST_VERSION}")
    key = SecureMemory.from_bytes(bytearray(offer.key))
    try:
        with db.attached(path, key, ALIAS):
            return _copy(db, offer, actor, on_rows)
    except ImageError:
        raise
    except Exception as exc:  # SQLite's own words for a file it cannot read
        raise ImageError(f"the image could not be read: {exc}") from exc
    finally:
        key.close()


def _copy(
    db: Database, offer: ImageOffer, actor: str, on_rows: Callable[[int, int], object] | None
) -> dict[str, int]:
    # Small page caches while copying keep the workstation's peak memory flat whatever the
    # clinic's size: the image is read once, in order (an attached file gets a cache of its
    # own), and the one long transaction would otherwise hold the replica's whole 64 MiB of
    # dirty pages on top (they go to the write-ahead log instead). Measured at 300,000
    # records: 28 MB over the process's own instead of 132-244, for about 8% more time.
    db.query(f"PRAGMA {ALIAS}.cache_size = -{IMAGE_CACHE_KIB}")
    kept = db.query("PRAGMA main.cache_size")[0][0]
    db.query(f"PRAGMA main.cache_size = -{COPY_CACHE_KIB}")
    try:
        return _copy_tables(db, offer, actor, on_rows)
    finally:
        db.query(f"PRAGMA main.cache_size = {int(kept)}")


def _copy_tables(
    db: Database, offer: ImageOffer, actor: str, on_rows: Callable[[int, int], object] | None
) -> dict[str, int]:
    if _schema(db, ALIAS) != _schema(db, "main"):
        raise ImageError("the image's tables are not this replica's (another schema)")
    checked = db.query(f"PRAGMA {ALIAS}.quick_check")
    if [tuple(r) for r in checked] != [("ok",)]:
        raise ImageError(f"the image is damaged: {checked[0][0]}")
    tables = replicated_tables(db)
    held = [t for t in tables if db.query(f'SELECT 1 FROM main."{t}" LIMIT 1')]
    if held:
        raise ImageError(f"this replica already holds rows in {', '.join(held)}")
    rows = {t: int(db.query(f'SELECT count(*) FROM {ALIAS}."{t}"')[0][0]) for t in tables}
    total, done = sum(rows.values()), 0
    details = {"records": offer.records, "image": offer.id}
    types: Counter[str] = Counter()
    with db.write(actor, "sync.snapshot_image", "record_states", "image", details) as tx:
        # Tables go in name order; their foreign keys are checked once all are in.
        tx.execute("PRAGMA defer_foreign_keys = ON")
        indexes = _fts5_tables(tx)
        held_hash = {name: _fts5_hashsize(tx, name) for name in indexes}
        for name in indexes:
            _set_fts5_hashsize(tx, name, COPY_FTS_HASH_BYTES)
        for table in tables:
            columns = _columns(db, table)
            copy = f'INSERT INTO main."{table}" ({columns}) SELECT {columns} FROM {ALIAS}."{table}"'
            # Record states are counted by type as they go in, a chunk at a time. Counted
            # after, with GROUP BY, SQLite sorted every record's type in memory (about 30
            # bytes a record: 25 MB of the workstation's peak RSS at 1,000,000) and read the
            # whole table a second time.
            returning = " RETURNING type" if table == STATES else ""
            if _without_rowid(db, table):
                types.update(str(r[0]) for r in tx.execute(copy + returning))
            else:
                # In rowid order, a chunk at a time, so the progress moves as it goes.
                after: int | None = None
                while True:
                    end = _chunk_end(db, table, after)
                    where = "" if after is None else f" WHERE rowid > {after}"
                    if end is not None:
                        where += f" {'AND' if after is not None else 'WHERE'} rowid <= {end}"
                    types.update(
                        str(r[0]) for r in tx.execute(f"{copy}{where} ORDER BY rowid{returning}")
                    )
                    if end is None:
                        break
                    after = end
                    done += COPY_ROWS
                    if on_rows is not None:
                        on_rows(min(done, total), total)
            done = sum(rows[t] for t in tables[: tables.index(table) + 1])
            if on_rows is not None:
                on_rows(done, total)
        if sum(types.values()) != offer.records:
            raise ImageError(
                f"the image holds {sum(types.values())} records, not the {offer.records} offered"
            )
        for origin, seq in offer.vector.items():
            oplog.raise_floor(tx, origin, seq)
        for name, size in held_hash.items():
            _set_fts5_hashsize(tx, name, size)
    return dict(types)


# Rows per INSERT … SELECT. Each chunk's full-text entries wait in FTS5's in-memory hash
# until the next statement begins, when FTS5 writes them out and does its share of merging
# segments: there, outside any statement journal. Entries written out within a statement
# (the hash over its limit) go in with their merging, and every older page that merging
# rewrites is first kept in that statement's journal, in memory (temp_store = MEMORY), so
# that journal grew with the index: with 20,000 rows, SQLite's peak during the copy was
# 22.6 MB at 100,000 bench records and 33.4 MB at 1,000,000; with 5,000 it is 13.7 MB at
# both (tests/bench/image_rss.py).
COPY_ROWS = 5_000
# FTS5's hash limit while copying: well above a chunk's entries (100-210 bytes a bench
# patient: 10,000 rows passed FTS5's own 1 MiB, 5,000 did not), so that only statement
# boundaries write them out, whatever a clinic's names hold. The hash never holds more than
# one chunk's entries.
COPY_FTS_HASH_BYTES = 16 << 20
FTS5_DEFAULT_HASH_BYTES = 1 << 20  # FTS5's own (FTS5_DEFAULT_HASHSIZE)
STATES = "record_states"
IMAGE_CACHE_KIB = 2048
COPY_CACHE_KIB = 8192


def _fts5_tables(tx: Transaction) -> list[str]:
    rows = tx.query("SELECT name, sql FROM main.sqlite_master WHERE type = 'table'")
    return [str(n) for n, sql in rows if "USING FTS5" in " ".join(str(sql).upper().split())]


def _fts5_hashsize(tx: Transaction, name: str) -> int | None:
    """The FTS5 table's own hash limit (None: FTS5's default, no setting stored)."""
    rows = tx.query(f"SELECT v FROM main.\"{name}_config\" WHERE k = 'hashsize'")
    return int(rows[0][0]) if rows else None


def _set_fts5_hashsize(tx: Transaction, name: str, size: int | None) -> None:
    """Set the FTS5 table's hash limit (its documented ``hashsize`` option: FTS5 takes it
    at once); None puts back FTS5's default and removes the setting, as if never set."""
    value = FTS5_DEFAULT_HASH_BYTES if size is None else size
    tx.execute(f'INSERT INTO main."{name}" ("{name}", rank) VALUES (\'hashsize\', ?)', (value,))
    if size is None:
        tx.execute(f"DELETE FROM main.\"{name}_config\" WHERE k = 'hashsize'")


def _without_rowid(db: Database, table: str) -> bool:
    [(sql,)] = db.query("SELECT sql FROM main.sqlite_master WHERE name = ?", (table,))
    return "WITHOUT ROWID" in str(sql).upper()


def _chunk_end(db: Database, table: str, after: int | None) -> int | None:
    """The rowid ending the next chunk of ``table`` after rowid ``after`` (None: the rest
    fits in one)."""
    where = "" if after is None else f"WHERE rowid > {int(after)} "
    row = db.query(
        f'SELECT rowid FROM {ALIAS}."{table}" {where}ORDER BY rowid LIMIT 1 OFFSET {COPY_ROWS - 1}'
    )
    return int(row[0][0]) if row else None


def part_path(db: Database, offer: ImageOffer) -> Path:
    """Where the image is downloaded to: beside the replica's file (same disk, same
    owner-only folder; only ciphertext is written)."""
    return db.path.parent / f".image-{offer.id}.part"


def room_for(db: Database, offer: ImageOffer) -> None:
    """ImageError unless the replica's disk has room for the file and its copy (each
    about the offer's size) with a margin; pages are tried then."""
    free = shutil.disk_usage(db.path.parent).free
    needed = 2 * offer.size + DISK_MARGIN
    if free < needed:
        raise ImageError(
            f"not enough free disk space for the clinic as one file: {free // 2**20:,} MB "
            f"free, {needed // 2**20:,} MB needed"
        )


DISK_MARGIN = 64 * 2**20


def discard_leftovers(db: Database) -> None:
    """Remove images left beside the replica by a download that was cut off (a crash):
    only ciphertext, under keys that are gone, but taking room."""
    for leftover in db.path.parent.glob(".image-*.part*"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(leftover)


def discard(path: Path) -> None:
    """Remove a downloaded image (and anything SQLite left beside it)."""
    for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(leftover)
