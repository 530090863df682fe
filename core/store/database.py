"""Opening the SQLCipher file safely, and the single write path (one unit of work per change).

The database key is applied in SQLCipher's raw-key form (``PRAGMA key = "x'<hex>'"``) so
no KDF runs on it. That PRAGMA string is an immutable Python ``str`` we cannot wipe; it is
dropped as soon as the statement has run.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import sqlcipher3

from core.crypto.secure_memory import SecureMemory
from core.store import audit_chain, environment
from core.store.errors import (
    DamagedDatabaseError,
    DatabaseMissingError,
    NotCarelineDatabaseError,
    StoreError,
    WrongKeyError,
)
from core.store.migrations import MIGRATIONS, Migrations, migrate

log = logging.getLogger(__name__)

DB_FILE_NAME = "clinic.db"
PAGE_SIZE = 4096  # SQLCipher 4 default
# What the driver raises when a page inside an opened database fails to decrypt or parse
# (damage the open-time checks cannot see: they read only the first page and the schema).
DriverError = sqlcipher3.DatabaseError
_SQLITE_MAGIC = b"SQLite format 3\x00"

Row = tuple[Any, ...]


class SqlTransaction(Protocol):
    """What a unit of work offers the code inside it (SQLCipher or PostgreSQL)."""

    def execute(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> Any:
        """Run one statement."""
        ...

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Row]:
        """Read rows within the transaction."""
        ...


class SqlStore(Protocol):
    """A store with audited units of work: :class:`Database`, or the server's PostgreSQL
    registry. SQL uses ``?`` placeholders and portable statements."""

    def query(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> list[Row]:
        """Read rows."""
        ...

    def write(
        self,
        actor: str,
        action: str,
        entity: str,
        entity_id: str,
        details: dict[str, Any] | None = None,
    ) -> AbstractContextManager[SqlTransaction]:
        """One unit of work with its audit entry."""
        ...

    def close(self) -> None:
        """Release the store."""
        ...


def utc_now() -> str:
    """ISO-8601 UTC timestamp with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _preflight(path: Path) -> None:
    """Cheap checks on the raw file that need no key and write nothing."""
    if not path.exists():
        raise DatabaseMissingError(f"no clinic database at {path}; run 'careline init' first")
    size = path.stat().st_size
    if size == 0:
        raise DamagedDatabaseError(f"database file {path} is empty (truncated to 0 bytes)")
    with path.open("rb") as fh:
        head = fh.read(len(_SQLITE_MAGIC))
    if head == _SQLITE_MAGIC:
        raise NotCarelineDatabaseError(
            f"{path} is a plain, unencrypted SQLite file, not an encrypted Careline database"
        )
    if size % PAGE_SIZE:
        raise DamagedDatabaseError(
            f"database file {path} is damaged: its size ({size} bytes) is not a whole number "
            f"of {PAGE_SIZE}-byte pages (truncated?)"
        )


def _apply_key(conn: Any, key: SecureMemory) -> None:
    conn.execute(f"PRAGMA key = \"x'{key.hex()}'\"")


def _connect(path: Path, key: SecureMemory, read_only: bool, immutable: bool = True) -> Any:
    # immutable=1 on the read-only probe: no locks, no -wal/-shm files created, so a failed
    # open leaves the folder exactly as it was.
    if read_only:
        uri = f"file:{path}?mode=ro&immutable=1" if immutable else f"file:{path}?mode=ro"
    else:
        uri = f"file:{path}"
    conn = sqlcipher3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    # SQLCipher logs decryption failures to stderr; we report them ourselves, clearly.
    conn.execute("PRAGMA cipher_log_level = NONE")
    _apply_key(conn, key)
    return conn


def _probe(path: Path, key: SecureMemory, immutable: bool) -> int:
    """Read the schema with ``key``; returns the page count (DatabaseError if it fails)."""
    conn = _connect(path, key, read_only=True, immutable=immutable)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return int(conn.execute("PRAGMA page_count").fetchone()[0])
    finally:
        conn.close()


def file_salt(path: Path) -> bytes | None:
    """The SQLCipher salt at the start of an encrypted database file (not secret), or None
    if the file is too short to hold one."""
    try:
        with path.open("rb") as fh:
            salt = fh.read(16)
    except OSError:
        return None
    return salt if len(salt) == 16 else None


def verify_key(path: Path, key: SecureMemory, key_is_known_good: bool) -> None:
    """Check ``key`` opens ``path`` using a read-only connection (nothing on disk changes).

    ``key_is_known_good`` is True when the key file's check value confirmed this key:
    then a failure means the file is damaged, not that the key is wrong.
    """
    _preflight(path)
    wal = path.with_name(path.name + "-wal")
    shared = wal.exists()  # another connection has it open (or one crashed)
    try:
        try:
            page_count = _probe(path, key, immutable=True)
        except sqlcipher3.DatabaseError:
            if not (shared or wal.exists()):
                raise
            # Another connection (a second server process) has the database open and may
            # be checkpointing into the file, which a lock-free (immutable) read can see
            # half-written: read again under SQLite's locks, WAL included.
            page_count = _probe(path, key, immutable=False)
    except sqlcipher3.DatabaseError as exc:
        if key_is_known_good:
            raise DamagedDatabaseError(
                f"database file {path} is damaged: its first page fails authentication "
                "although the key is correct"
            ) from exc
        raise WrongKeyError(
            f"the key does not decrypt {path} (wrong key, or the file is not a Careline database)"
        ) from exc
    if not wal.exists() and path.stat().st_size < page_count * PAGE_SIZE:
        raise DamagedDatabaseError(
            f"database file {path} is truncated: it declares {page_count} pages "
            f"but holds {path.stat().st_size // PAGE_SIZE}"
        )


class Transaction:
    """A change in progress: SQL runs inside the unit of work's transaction."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> Any:
        """Run one statement."""
        return self._conn.execute(sql, params)

    def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> Any:
        """Run one statement for many rows."""
        return self._conn.executemany(sql, rows)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Row]:
        """Read rows within the transaction."""
        return list(self._conn.execute(sql, params).fetchall())


class AuditAnnotator(Protocol):
    """Adds to a unit of work's audit details from what the unit wrote (it runs inside the
    transaction, after the change): ``core.records.break_glass_audit`` marks work on a chart
    opened by break-glass. Returns the details to record."""

    def __call__(
        self,
        tx: Transaction,
        actor: str,
        action: str,
        entity: str,
        entity_id: str,
        details: dict[str, Any] | None,
    ) -> dict[str, Any] | None:
        """The details to record."""
        ...


class WriteGate(Protocol):
    """Decides whether a unit of work may happen (installed by the records layer, which
    knows permissions: core.records.authorize). Called inside the unit's transaction before
    the change (``after`` False) and, if it returned False (not decided yet: the record the
    unit concerns does not exist yet), again after it. Raises to refuse."""

    def __call__(
        self,
        tx: Transaction,
        actor: str,
        action: str,
        entity: str,
        entity_id: str,
        details: dict[str, Any] | None,
        after: bool,
    ) -> bool:
        """True once decided (allowed)."""
        ...

    def refusal(self, exc: BaseException, action: str) -> dict[str, Any] | None:
        """Audit details when ``exc`` is a refusal by this gate, else None."""
        ...


# The audit action a refusal is recorded as (its details name the action refused).
REFUSED_ACTION = "action.refused"


class Database:
    """An open, unlocked replica store. All writes go through :meth:`write`."""

    def __init__(self, path: Path, conn: Any) -> None:
        self.path = path
        self._conn = conn
        # Set by the records layer (core.store cannot know about charts); None: as given.
        self.annotate_audit: AuditAnnotator | None = None
        # Set by the records layer (core.store knows nothing of permissions); None: open.
        self.gate: WriteGate | None = None
        # True for the clinic server's own stores: its admin CLI is the operator's, and its
        # bookkeeping nobody's, so no gate is installed (remote apply is still checked).
        self.operator = False
        self._refusals: list[tuple[str, str, str, dict[str, Any]]] = []  # inside a batch
        # One connection, serialised: the UI runs store work on one worker thread, the CLI
        # on its main thread; the lock keeps a stray call from interleaving transactions.
        self._lock = threading.RLock()
        self._batch_depth = 0  # > 0 inside ``batch``: units of work become savepoints

    @classmethod
    def create(cls, path: Path, key: SecureMemory, migrations: Migrations = MIGRATIONS) -> Database:
        """Create a new encrypted database at ``path`` (which must not exist)."""
        if path.exists() and path.stat().st_size > 0:
            raise StoreError(f"{path} already exists; refusing to overwrite it")
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # the owner's alone
            conn = _connect(path, key, read_only=False)
            os.chmod(path, 0o600)
        except OSError as exc:
            raise environment.from_os_error(exc) or exc from exc
        except sqlcipher3.DatabaseError as exc:
            raise environment.diagnose(path) or exc from exc
        return cls._configure(path, conn, migrations)

    @classmethod
    def in_memory(cls, key: SecureMemory, migrations: Migrations = MIGRATIONS) -> Database:
        """An encrypted database that lives only in memory (tests and benchmarks)."""
        conn = sqlcipher3.connect(":memory:", isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA cipher_log_level = NONE")
        _apply_key(conn, key)
        return cls._configure(Path(":memory:"), conn, migrations)

    @classmethod
    def open(
        cls,
        path: Path,
        key: SecureMemory,
        key_is_known_good: bool = False,
        migrations: Migrations = MIGRATIONS,
    ) -> Database:
        """Open an existing database, with clear errors for wrong keys and damaged files."""
        verify_key(path, key, key_is_known_good)
        return cls._configure(path, _connect(path, key, read_only=False), migrations)

    @classmethod
    def _configure(cls, path: Path, conn: Any, migrations: Migrations = MIGRATIONS) -> Database:
        try:
            # cipher_memory_security stays OFF (SQLCipher's default since 4.5): ON it mlocks and
            # wipes every SQLite allocation (~70 mlock/munlock calls per row written), which
            # made inserts 8x and searches 4x slower in tests/bench. What it would add: wiping
            # freed page buffers. While the clinic is unlocked the live page cache holds the same
            # plaintext anyway; core dumps are off and the key itself lives in SecureMemory.
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            # Temporary tables and sort spills stay in RAM: no plaintext temp files.
            conn.execute("PRAGMA temp_store = MEMORY")
            conn.execute("PRAGMA cache_size = -65536")
            migrate(conn, migrations)
        except sqlcipher3.DatabaseError as exc:
            conn.close()
            # A read-only folder or a full disk fails here in SQLite's words for damage
            # ("unable to open database file", "disk I/O error"): look before blaming the file.
            if (problem := environment.diagnose(path)) is not None:
                raise problem from exc
            raise DamagedDatabaseError(f"database file {path} is damaged: {exc}") from exc
        except BaseException:
            # A refused or failed open leaves nothing open: no key copy in SQLCipher, no
            # -wal/-shm beside the file, however long the caller keeps the error.
            conn.close()
            raise
        return cls(path, conn)

    def close(self) -> None:
        """Checkpoint and close; SQLCipher wipes its copy of the key."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @property
    def closed(self) -> bool:
        """True once closed (for instance after an auto-lock)."""
        return self._conn is None

    def _require(self) -> Any:
        if self._conn is None:
            raise StoreError("the clinic database is locked")
        return self._conn

    def query(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> list[Row]:
        """Read rows (no transaction needed for a single statement)."""
        with self._lock:
            return list(self._require().execute(sql, params).fetchall())

    @contextmanager
    def reading(self) -> Iterator[Transaction]:
        """Several statements with no other thread's in between and no transaction of their
        own (each is its own, or joins a batch this thread has open): for a read that fills
        and empties a temporary table (``temp_store`` is MEMORY: nothing reaches the disk)."""
        with self._lock:
            yield Transaction(self._require())

    @contextmanager
    def write(
        self,
        actor: str,
        action: str,
        entity: str,
        entity_id: str,
        details: dict[str, Any] | None = None,
    ) -> Iterator[Transaction]:
        """One unit of work: the change and its audit entry commit together or not at all.

        Inside :meth:`batch` it is a savepoint of the batch's transaction instead: a failed
        unit is rolled back alone, and the batch commits every unit at once.
        """
        with self._lock:
            conn = self._require()
            begin, end, undo = (
                ("SAVEPOINT unit", ("RELEASE unit",), ("ROLLBACK TO unit", "RELEASE unit"))
                if self._batch_depth
                else ("BEGIN IMMEDIATE", ("COMMIT",), ("ROLLBACK",))
            )
            conn.execute(begin)
            gate = self.gate
            try:
                tx = Transaction(conn)
                decided = gate is None or gate(tx, actor, action, entity, entity_id, details, False)
                yield tx
                if not decided and gate is not None:
                    gate(tx, actor, action, entity, entity_id, details, True)
                if self.annotate_audit is not None:
                    details = self.annotate_audit(tx, actor, action, entity, entity_id, details)
                self.append_audit(conn, actor, action, entity, entity_id, details)
                for sql in end:
                    conn.execute(sql)
            except BaseException as exc:
                self._undo(conn, undo)
                self._raise_environment_problem(exc)
                refused = gate.refusal(exc, action) if gate is not None else None
                if refused is not None and action != REFUSED_ACTION:
                    # The refusal is part of the audit trail (the refused change is not);
                    # inside a batch, once the batch has been rolled back.
                    if self._batch_depth:
                        self._refusals.append((actor, entity, entity_id, refused))
                    else:
                        self._audit_refusal(actor, entity, entity_id, refused)
                raise

    def _audit_refusal(
        self, actor: str, entity: str, entity_id: str, details: dict[str, Any]
    ) -> None:
        with self.write(actor, REFUSED_ACTION, entity, entity_id, details):
            pass

    def audit_refusal(
        self, actor: str, entity: str, entity_id: str, details: dict[str, Any]
    ) -> None:
        """Audit a refused read (``action.refused``): at once, or inside a batch once the
        batch has ended (the refusal that ends it rolls the batch back, which would take an
        entry written inside it along)."""
        with self._lock:  # another thread's batch holds it: wait for its end
            if self._batch_depth:
                self._refusals.append((actor, entity, entity_id, details))
            else:
                self._audit_refusal(actor, entity, entity_id, details)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Many units of work (``write``) in one transaction, for bulk writes such as the
        demo clinic's: each keeps its own document change, rows, op and audit entry, and
        they commit together (or, if the batch fails, not at all). Other threads wait for
        the whole batch, so keep batches short."""
        with self._lock:
            conn = self._require()
            if self._batch_depth:
                self._batch_depth += 1
                try:
                    yield
                finally:
                    self._batch_depth -= 1
                return
            conn.execute("BEGIN IMMEDIATE")
            self._batch_depth = 1
            try:
                yield
                conn.execute("COMMIT")
            except BaseException as exc:
                self._undo(conn, ("ROLLBACK",))
                self._raise_environment_problem(exc)
                raise
            finally:
                self._batch_depth = 0
                refusals, self._refusals = self._refusals, []
                for refusal in refusals:
                    self._audit_refusal(*refusal)

    @staticmethod
    def _undo(conn: Any, statements: tuple[str, ...]) -> None:
        """Roll back a failed unit. SQLite ends the transaction itself on some failures (a
        full disk, an I/O error), and then the rollback fails with "no transaction is
        active": that must not hide the failure that matters, so it is only logged."""
        try:
            for sql in statements:
                conn.execute(sql)
        except sqlcipher3.DatabaseError as exc:
            log.info("rollback after a failed write: %s", exc)

    def _raise_environment_problem(self, exc: BaseException) -> None:
        """Re-raise a driver failure caused by the computer (read-only folder, full disk)
        as that problem, named; anything else is left to the caller to re-raise."""
        if isinstance(exc, sqlcipher3.DatabaseError) and self.path != Path(":memory:"):
            problem = environment.diagnose(self.path)
            if problem is not None:
                raise problem from exc

    @contextmanager
    def read_audited(
        self, actor: str, action: str, entity: str, entity_id: str
    ) -> Iterator[Transaction]:
        """A read that must leave an audit trail (opening a chart)."""
        with self.write(actor, action, entity, entity_id) as tx:
            yield tx

    @staticmethod
    def append_audit(
        conn: Any,
        actor: str,
        action: str,
        entity: str,
        entity_id: str,
        details: dict[str, Any] | None,
    ) -> None:
        """Append an entry to the hash chain through ``conn`` (inside the caller's
        transaction), using the ``audit_log`` and ``meta`` tables."""
        head = conn.execute(
            "SELECT value FROM meta WHERE key = ?", (audit_chain.HEAD_META_KEY,)
        ).fetchone()
        link = audit_chain.next_link(
            head[0] if head else None, utc_now(), actor, action, entity, entity_id, details
        )
        e = link.entry
        conn.execute(
            "INSERT INTO audit_log (seq, ts, actor, action, entity, entity_id, details, "
            "prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (e.seq, e.ts, e.actor, e.action, e.entity, e.entity_id, e.details, link.prev_hash,
             link.hash),
        )  # fmt: skip
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (audit_chain.HEAD_META_KEY, link.head),
        )

    def integrity_problems(self) -> list[str]:
        """Run SQLite's and SQLCipher's integrity checks; empty list when healthy."""
        with self._lock:
            conn = self._require()
            problems: list[str] = []
            for pragma in ("integrity_check", "cipher_integrity_check"):
                try:
                    rows = conn.execute(f"PRAGMA {pragma}").fetchall()
                except sqlcipher3.DatabaseError as exc:
                    problems.append(f"{pragma}: {exc}")
                    continue
                problems += [f"{pragma}: {r[0]}" for r in rows if r[0] != "ok"]
            return problems

    def copy_to(self, target: Path) -> None:
        """A consistent copy at the new file ``target``, under this database's own key
        (``sqlcipher_export`` into a database attached without a key clause, which SQLCipher
        gives the main key): one read snapshot, while other connections keep writing (WAL).
        Threads sharing this connection wait for the copy. core.store.online_copy copies
        under another key without blocking them."""
        if target.exists():
            raise StoreError(f"{target} already exists; refusing to overwrite it")
        with self._lock:
            conn = self._require()
            conn.execute("ATTACH DATABASE ? AS copy", (str(target),))
            try:
                conn.execute("BEGIN")
                try:
                    conn.execute("SELECT sqlcipher_export('copy')")
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except BaseException:
                conn.execute("DETACH DATABASE copy")
                target.unlink(missing_ok=True)
                raise
            conn.execute("DETACH DATABASE copy")
        os.chmod(target, 0o600)

    @contextmanager
    def attached(self, path: Path, key: SecureMemory, alias: str) -> Iterator[None]:
        """Another SQLCipher file attached as ``alias`` under ``key`` while the block runs
        (read with ``alias.table``), detached after; this thread holds the connection
        throughout (ATTACH cannot run inside a transaction)."""
        if not alias.isidentifier():
            raise ValueError(f"not an alias: {alias!r}")
        with self._lock:
            conn = self._require()
            conn.execute(f"ATTACH DATABASE ? AS {alias} KEY \"x'{key.hex()}'\"", (str(path),))
            try:
                yield
            finally:
                conn.execute(f"DETACH DATABASE {alias}")

    def rekey(self, new_key: SecureMemory) -> None:
        """Re-encrypt every page under ``new_key`` (``PRAGMA rekey``)."""
        with self._lock:
            conn = self._require()
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute(f"PRAGMA rekey = \"x'{new_key.hex()}'\"")
