"""Attachments in the chart, on the workstation: encrypted here, before anything leaves.

Adding a file (:meth:`Attachments.add`) encrypts it in chunks (:mod:`core.crypto.streaming`)
under a fresh data key wrapped by the clinic attachment key
(:class:`core.crypto.attachment_keys.ClinicAttachmentKey`), names it by its keyed content
id, keeps the ciphertext in the workstation's cache (``<data dir>/attachments/``, the same
layout as the server's filesystem store) and records its metadata as an ``attachment``
record of the patient, which replicates like any other record. The file is marked for
upload; :meth:`Attachments.push_pending` (run after each sync) sends it to the server,
resuming a cut-off upload where it stopped. Another workstation lists the record at once
and shows the file as "available when connected" until it has fetched the ciphertext
(resumable too) and opened it with its own copy of the clinic attachment key.

The clinic attachment key lives in each workstation's encrypted database (table ``meta``),
never on the server: the server and S3 only ever hold ciphertext, and check its SHA-256 and
chunk framing, not its content. The first workstation to add a file makes the key; the
others get it with ``careline attachment key export`` on one and ``... key import`` (stdin)
on the other; with a server or a LAN peer it is carried sealed for each device's
certificate key (:mod:`core.sync.key_grants`). After a device revocation, the next file
added here is wrapped under a new key the revoked device never receives
(:func:`current_key`).

The cache holds at most the ``attachment_cache_mb`` setting: past it, files fetched ahead
of need and never opened (:mod:`core.sync.prefetch`) go first, then the least recently
opened; never one still waiting for upload.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import io
import json
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

import httpx

from core.crypto.attachment_keys import KEY_SIZE, ClinicAttachmentKey, looks_committed
from core.crypto.errors import DecryptionError
from core.crypto.streaming import ciphertext_size, largest_ciphertext_size
from core.errors import CarelineError
from core.records import merged
from core.records import validation as v
from core.records.clinic import ClinicRecords
from core.records.entries import ClinicalEntries, entry_row
from core.records.errors import ValidationError
from core.records.removed_attachments import RemovedRecord, removed_from
from core.records.removed_attachments import remove as remove_attachment
from core.store.blobs import FilesystemBlobStore, get_attachment, put_attachment
from core.store.blobs.errors import BlobIntegrityError
from core.store.database import Database
from core.sync import blob_client
from core.sync.attachment_files import MAX_FILE_BYTES, FileRefused, check_file
from core.sync.attachments_client import (
    TIMEOUT,
    AttachmentError,
    AttachmentNotFoundError,
    BlobDamagedError,
)
from core.sync.enroll import ServerCredential
from core.sync.http_transport import DeviceRejectedError
from core.sync.lan.identity import revoked_serials
from core.sync.lan.transport import LanTransport
from core.sync.transport import TransportError

_META_KEYS = "attachment_keys"  # {"current": key id, "keys": {key id: hex secret}}
_EXPORT_PREFIX = "careline-attachment-key:v1:"
HERE = "here"
PENDING = "waiting to upload"
REMOTE = "available when connected"
# Shown for PENDING where no server is set: nothing will upload it, LAN peers fetch it here.
NO_SERVER = "on this workstation (no server)"
Progress = Callable[[int, int], None]

# One lock per blob id in this process, so the chart's fetch (on the worker) and the
# prefetch (on the sync thread) never append to the same partial download at once.
_FETCH_LOCKS: dict[str, threading.Lock] = {}
_FETCH_LOCKS_GUARD = threading.Lock()


# The audit actions of a file's plaintext leaving the encrypted cache: opened to be read
# (in the app's viewers or the system's), and written out as a copy (Save a copy…,
# ``careline attachment get``).
VIEWED = "attachment.view"
SAVED = "attachment.save"


def fetch_lock(blob_id: str) -> threading.Lock:
    """The lock held while ``blob_id`` is downloaded into this process's caches."""
    with _FETCH_LOCKS_GUARD:
        return _FETCH_LOCKS.setdefault(blob_id, threading.Lock())


def where_shown(availability: str, has_server: bool) -> str:
    """Where a file is, as people read it: "waiting to upload" only where there is a server
    to wait for (the JSON output keeps the state itself)."""
    return NO_SERVER if availability == PENDING and not has_server else availability


class AttachmentProblem(CarelineError):
    """An attachment could not be added, fetched or opened; the message says why."""


class DeviceRefused(AttachmentProblem):
    """The clinic server refused this device (revoked?) and no LAN peer gave the file."""


class BlobRefused(AttachmentProblem):
    """What arrived is not the file its record names (damaged or forged); discarded."""


class BlobMissing(AttachmentProblem):
    """No source has the file yet (the workstation that added it has not uploaded it)."""


@dataclass(frozen=True)
class Attachment:
    """One file in a chart, as the chart lists it."""

    id: str
    patient_id: str
    title: str
    date: str | None
    category: str | None
    filename: str
    media_type: str
    size: int
    added_by: str | None
    created_at: str
    blob_id: str | None
    availability: str  # HERE, PENDING or REMOTE
    # Set for a file taken off the chart (core/records/removed_attachments.py): who, when
    # (UTC) and why. Listed only when removed files are asked for.
    removed_by: str | None = None
    removed_at: str | None = None
    removed_reason: str | None = None

    @property
    def removed(self) -> bool:
        """Whether the file was taken off the chart."""
        return self.removed_at is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


# ----- the clinic attachment key ---------------------------------------------------------


def _keys(records: ClinicRecords) -> dict[str, Any]:
    return _keys_in(records.db)


def _keys_in(db: Database) -> dict[str, Any]:
    rows = db.query("SELECT value FROM meta WHERE key = ?", (_META_KEYS,))
    return dict(json.loads(rows[0][0])) if rows else {"current": None, "keys": {}}


def keys_in(db: Database) -> dict[str, bytes]:
    """The clinic attachment keys held in ``db`` that may be passed on to other devices
    (for a LAN peer sealing them): see ``grantable_keys``."""
    value = _keys_in(db)
    given = set(value.get("given", ()))
    return {
        k: bytes.fromhex(v)
        for k, v in value["keys"].items()
        if k not in given or ClinicAttachmentKey(k, bytes.fromhex(v)).verified
    }


def _save_keys(records: ClinicRecords, value: dict[str, Any], action: str, key_id: str) -> None:
    with records.db.write(records.actor, action, "attachment_key", key_id) as tx:
        tx.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (_META_KEYS, json.dumps(value)),
        )


def key_for(records: ClinicRecords, key_id: str) -> ClinicAttachmentKey | None:
    """The clinic attachment key with this id, if this workstation holds it."""
    secret = _keys(records)["keys"].get(key_id)
    return ClinicAttachmentKey(key_id, bytes.fromhex(secret)) if secret else None


def held_keys(records: ClinicRecords) -> dict[str, bytes]:
    """Every clinic attachment key this workstation holds: key id -> secret."""
    return {k: bytes.fromhex(v) for k, v in _keys(records)["keys"].items()}


def grantable_keys(records: ClinicRecords) -> dict[str, bytes]:
    """The keys this workstation seals for the clinic's other devices: every key it holds
    except one another device gave it whose id cannot vouch for its secret (an older key's
    random id): that one might be a wrong secret, and is not passed on."""
    return keys_in(records.db)


def current_key(records: ClinicRecords) -> ClinicAttachmentKey:
    """The key new files are wrapped for; made (and audited) on first use, and made anew
    once this workstation has learnt of a device revoked since the current key was made.

    A revoked device keeps every key it was given (on its own disk, which nobody can take
    back); it gets no key made after the revocation, because the server no longer lists it
    for grants and LAN peers refuse its certificate. So files added here after this
    workstation heard of the revocation are under a key the revoked device never held.
    Files wrapped before stay under the old keys (not re-encrypted)."""
    value = _keys(records)
    revoked = sorted(revoked_serials(records.db))
    if value["current"]:
        found = key_for(records, value["current"])
        if found is not None and set(revoked) <= set(value.get("revoked", [])):
            return found
    key = ClinicAttachmentKey.generate()
    action = "attachment_key.rotate" if value["current"] else "attachment_key.create"
    value["keys"][key.key_id] = key.secret.hex()
    value["current"] = key.key_id
    value["revoked"] = revoked  # the revocations this key was made after
    _save_keys(records, value, action, key.key_id)
    return key


def export_key(records: ClinicRecords) -> str:
    """The current clinic attachment key as one line for ``key import`` on another
    workstation of the clinic (a secret: pass it on stdin, never on a command line)."""
    records.require("attachments.list", None)
    key = current_key(records)
    return f"{_EXPORT_PREFIX}{key.key_id}:{key.secret.hex()}"


def import_key(records: ClinicRecords, text: str, *, older_key: bool = False) -> str:
    """Keep a key exported by another workstation; it becomes the current one if this
    workstation has none. Returns its id.

    A key whose id commits to its secret must match it: a line changed or cut on the way
    (a typo in a copied secret) is refused with nothing stored, rather than kept and found
    out only when a file fails to open. ``older_key`` is the person's word that the key was
    made before ids committed and its random id passes the check by chance (one in
    65,536): such a key is kept as typed, as every older key is."""
    records.require("attachments.list", None)
    raw = text.strip()
    parts = raw[len(_EXPORT_PREFIX) :].split(":") if raw.startswith(_EXPORT_PREFIX) else []
    try:
        key = ClinicAttachmentKey(parts[0], bytes.fromhex(parts[1]))
    except (IndexError, ValueError):
        raise AttachmentProblem(
            "not a clinic attachment key: expected the line 'careline attachment key export' "
            f"printed ({_EXPORT_PREFIX}<id>:<{KEY_SIZE * 2} hex digits>)"
        ) from None
    if looks_committed(key.key_id) and not key.verified and not older_key:
        raise AttachmentProblem(
            f"key {key.key_id}'s secret does not match its id: the line was changed or cut "
            "on the way; copy what 'careline attachment key export' printed again. Nothing "
            "was changed. (Only an older key, made before key ids were checked, whose "
            "random id passes the check by chance, one in 65,536, needs --older-key.)"
        )
    if keep_key(records, key, vouched=True) == REFUSED:
        raise AttachmentProblem(
            f"this workstation already holds key {key.key_id} with another secret, and that "
            "key's id vouches for the one held; nothing was changed"
        )
    return key.key_id


# What ``keep_key`` did with a key given to this workstation.
KEPT, ALREADY_HELD, REFUSED = "kept", "already held", "refused"


def needs_key(records: ClinicRecords, key_id: str) -> bool:
    """Whether a key given under ``key_id`` could still be taken: not held, or held with a
    secret its id does not vouch for (an older key's, or a wrong one an enrolled device
    sealed for this one) that a secret matching the id would replace."""
    held = key_for(records, key_id)
    return held is None or not held.verified


def keep_key(records: ClinicRecords, key: ClinicAttachmentKey, vouched: bool = False) -> str:
    """Keep a key another device gave this workstation (audited); returns KEPT,
    ALREADY_HELD or REFUSED. The device's own bookkeeping: also done by sync for whoever
    is signed in (core/sync/key_grants.py).

    A grant is sealed by whichever device of the clinic wrote it, and the server relays it
    unchecked, so a key is trusted only as far as its id vouches for it: a secret its
    committed id does not match is refused; an older key (random id) is kept, but only
    a key whose id matches its secret, or one a person imports (``vouched``), becomes the
    key this workstation wraps new files for. A wrong secret kept under an older id would
    otherwise wrap every later file here so that no other workstation could open it. A held
    key whose id does not vouch for it is replaced by a given secret that the id matches."""
    value = _keys(records)
    verified = key.verified
    if looks_committed(key.key_id) and not verified and not vouched:
        return REFUSED
    held = value["keys"].get(key.key_id)
    if held is not None:
        if held == key.secret.hex():
            return ALREADY_HELD
        if ClinicAttachmentKey(key.key_id, bytes.fromhex(held)).verified or not (
            verified or vouched
        ):
            return REFUSED  # the held one is vouched for, or neither is
    value["keys"][key.key_id] = key.secret.hex()
    given = [k for k in value.get("given", ()) if k != key.key_id]
    value["given"] = given if verified or vouched else [*given, key.key_id]
    if not value["current"] and (verified or vouched):
        value["current"] = key.key_id
    action = "attachment_key.import" if held is None else "attachment_key.replace"
    _save_keys(records, value, action, key.key_id)
    return KEPT


# ----- the chart's attachments -----------------------------------------------------------


class Attachments:
    """A workstation's attachments: add, list, open, and move them to and from the server."""

    def __init__(
        self,
        records: ClinicRecords,
        data_dir: Path,
        *,
        cache_mb: int = 2048,
        credential: ServerCredential | None = None,
        peers: Sequence[LanTransport] = (),
    ) -> None:
        self.records = records
        self.peers = tuple(peers)
        self.entries = ClinicalEntries(records)
        self.folder = data_dir / "attachments"
        self.cache = FilesystemBlobStore(self.folder)
        self.budget = cache_mb * 1024 * 1024
        self.credential = credential

    @classmethod
    def for_records(
        cls, records: ClinicRecords, cache_mb: int = 2048, peers: Sequence[LanTransport] = ()
    ) -> Attachments:
        """This workstation's attachments: its data folder (where the database is), its
        server credential, if enrolled, and LAN peers to fetch from when the server
        cannot be reached."""
        from core.sync.enroll import load_credential

        return cls(
            records, records.db.path.parent, cache_mb=cache_mb,
            credential=load_credential(records.db), peers=peers,
        )  # fmt: skip

    def close(self) -> None:
        """Close the connections to LAN peers (the server's are per call)."""
        for peer in self.peers:
            peer.close()

    def __enter__(self) -> Attachments:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _pending_mark(self, blob_id: str) -> Path:
        return self.folder / "pending" / blob_id

    def _availability(self, blob_id: str | None) -> str:
        if blob_id and self._pending_mark(blob_id).exists():
            return PENDING
        if blob_id and self.cache.exists(blob_id):
            return HERE
        return REMOTE

    def _attachment(self, row: dict[str, Any]) -> Attachment:
        return Attachment(
            id=row["id"], patient_id=row["patient_id"],
            title=row["title"] or row["filename"], date=row["date"], category=row["category"],
            filename=row["filename"], media_type=row["media_type"], size=int(row["size"]),
            added_by=row["added_by"], created_at=row["created_at"], blob_id=row["blob_id"],
            availability=self._availability(row["blob_id"]),
        )  # fmt: skip

    def add(
        self,
        patient_id: str,
        path: Path,
        *,
        title: str,
        date: str | None = None,
        category: str | None = None,
    ) -> Attachment:
        """Encrypt the file at ``path`` into the cache and record it in the chart; it is
        uploaded at the next sync. An empty file, one past :data:`MAX_FILE_BYTES`, or a PDF
        or image that is not what its name says is refused (FileRefused, naming the
        problem) with nothing stored."""
        self.records.get_patient(patient_id)
        self.records.require("attachments.list", patient_id)
        # The date and the file are checked before the file is encrypted: refused
        # afterwards, they left a blob marked for upload that no record refers to.
        date = v.past_date("date", date)
        media_type = check_file(path)
        key = current_key(self.records)
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            with path.open("rb") as src:
                stored = put_attachment(
                    self.cache, src, kek=key.kek, aad=key.aad(), id_key=key.id_key,
                    spool_dir=self.folder,
                )  # fmt: skip
        except OSError as exc:
            raise AttachmentProblem(f"cannot read {path}: {exc.strerror or exc}") from exc
        if not 0 < stored.plaintext_size <= MAX_FILE_BYTES:
            # Changed since it was checked (still being written by a scanner?): refused, and
            # its blob dropped unless a file of the chart (or one waiting to upload) is it.
            held = self.records.db.query(
                "SELECT 1 FROM attachments WHERE blob_id = ?", (stored.blob_id,)
            )
            if not held and stored.blob_id not in self.pending():
                self.cache.delete(stored.blob_id)
            raise FileRefused(f"{path.name} changed while it was being added; add it again")
        sha256 = _file_sha256(self.cache.path_for(stored.blob_id))
        mark = self._pending_mark(stored.blob_id)
        mark.parent.mkdir(mode=0o700, exist_ok=True)
        mark.touch()
        record_id = self.entries.add(
            "attachment", patient_id,
            {
                "filename": path.name, "media_type": media_type,
                "size": str(stored.plaintext_size), "sha256": sha256, "title": title,
                "date": date, "category": category, "blob_id": stored.blob_id,
                "key_id": key.key_id, "added_by": self.records.actor,
            },
        )  # fmt: skip
        self.evict()
        return self.get(record_id)

    def get(self, record_id: str) -> Attachment:
        """One attachment's metadata."""
        row = self.entries.get("attachment", record_id)  # attachments.list on its chart
        return self._attachment({"id": record_id, **row})

    def for_patient(self, patient_id: str, *, include_removed: bool = False) -> list[Attachment]:
        """A patient's attachments, newest first; ``include_removed``: with the files taken
        off the chart (each saying who removed it, when and why)."""
        self.records.get_patient(patient_id)
        found = [self._attachment(r) for r in self.entries.for_patient("attachment", patient_id)]
        if include_removed:  # the read just checked covers them: the same chart's files
            charts = merged.chart_ids(self.records.db, patient_id)
            found += [self._removed(r) for r in removed_from(self.records.db, charts)]
        return sorted(
            found, key=lambda a: (a.date or a.created_at[:10], a.created_at), reverse=True
        )

    def _removed(self, gone: RemovedRecord) -> Attachment:
        values = gone.values
        item = self._attachment(
            {**values, "id": gone.record_id, "size": values["size"] or 0,
             "filename": values["filename"] or "", "created_at": values["created_at"] or ""}
        )  # fmt: skip
        removal = gone.removal
        return dataclasses.replace(
            item, removed_by=removal.by, removed_at=removal.at, removed_reason=removal.reason
        )

    def remove(self, record_id: str, reason: str | None) -> None:
        """Take a file off its chart, saying why (core/records/removed_attachments.py): it
        leaves the chart's list on every workstation and is listed as removed; the
        encrypted file is kept (here, and on the server once uploaded)."""
        remove_attachment(self.records, record_id, reason)

    def edit(
        self,
        record_id: str,
        *,
        title: str | None = None,
        date: str | None = None,
        category: str | None = None,
    ) -> Attachment:
        """Correct a file's title, date or category (those given; ``""`` clears a date or
        category). A title cannot be emptied. Audited as ``attachment.update`` naming the
        fields changed; the write gate checks it."""
        fields: dict[str, str | None] = {}
        if title is not None:
            fields["title"] = v.required_text("title", title)
        if date is not None:
            fields["date"] = date or None
        if category is not None:
            fields["category"] = category.strip() or None
        if not fields:
            raise ValidationError("title", "give a new title, date or category")
        self.entries.update("attachment", record_id, fields)
        return self.get(record_id)

    def fetch(
        self, record_id: str, progress: Progress | None = None, *, opening: bool = False
    ) -> Attachment:
        """Make sure the encrypted file is in the cache, downloading (resumably) if not.
        ``opening``: it is being opened, so it becomes an opened file (no longer one the
        prefetch guessed, which eviction takes first) before anything may evict it."""
        item = self.get(record_id)
        row = entry_row(self.records.db, "attachment", record_id)  # read checked above
        if item.blob_id is None:
            raise AttachmentProblem(
                f"attachment {record_id} was stored by the server's old scheme; open it "
                "with the release that added it"
            )
        cached = self.cache.exists(item.blob_id)
        if cached and not opening:
            return item
        if not cached and not self.can_fetch():
            raise AttachmentProblem(
                f"{item.title}: available when connected (this workstation has not fetched "
                "it and has no server or LAN peer to ask)"
            )
        # Waits for a prefetch of the same file on the sync thread, then finds it here.
        with fetch_lock(item.blob_id):
            downloaded = not self.cache.exists(item.blob_id)
            if downloaded:
                self.download(
                    item.blob_id, row["sha256"], item.title, progress or _quiet,
                    record_size=item.size,
                )  # fmt: skip
            if opening:
                # Under the lock, before any eviction: the prefetch drops only its guesses,
                # so the file stays while it is read, and is kept as an opened file after;
                # recently used, it is evicted last.
                self.prefetched_mark(item.blob_id).unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    os.utime(self.cache.path_for(item.blob_id))
        if downloaded:
            self.evict()
        return self.get(record_id)

    def can_fetch(self) -> bool:
        """Whether there is a server or a LAN peer to fetch files from."""
        return self.credential is not None or bool(self.peers)

    def download(
        self,
        blob_id: str,
        sha256: str,
        title: str,
        report: Progress,
        timeout: httpx.Timeout = TIMEOUT,
        *,
        record_size: int,
    ) -> None:
        """Download blob ``blob_id`` into the cache from the server, else from the LAN
        peers, resuming a partial download; its ciphertext must have SHA-256 ``sha256``
        (the attachment record's), else it is deleted. The caller holds
        :func:`fetch_lock`. ``timeout``: how long a silent server is waited for;
        ``record_size``: the file's size as its record states it: the progress shown
        counts its ciphertext, and a LAN peer is refused once it sends more than any
        ciphertext of that size can hold.

        Raises AttachmentProblem naming what each source said: DeviceRefused when the
        server refused this device, BlobRefused when damaged bytes arrived, BlobMissing
        when the server (else a peer) says it does not have the file yet, whatever the
        other sources did. An exception raised by ``report`` (a prefetch
        told to stop) passes through, the partial file kept for the next try."""
        dest = self.cache.path_for(blob_id)
        dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        sources: list[Callable[[], None]] = []
        if self.credential is not None:
            sources.append(
                functools.partial(
                    blob_client.fetch, self.credential, blob_id, dest, sha256, report,
                    size=ciphertext_size(max(record_size, 0)), timeout=timeout,
                )
            )  # fmt: skip
        for peer in self.peers:
            sources.append(
                functools.partial(
                    peer.fetch_blob, blob_id, dest, sha256, report, timeout=timeout.read,
                    max_bytes=largest_ciphertext_size(record_size),
                )
            )  # fmt: skip
        problems: list[str] = []
        failures: list[Exception] = []
        for source in sources:
            try:
                source()
                return
            except DeviceRejectedError as exc:
                failures.append(exc)
                problems.append(
                    f"the clinic server refused this device ({exc}): it may have been "
                    "revoked; ask the clinic's administrator"
                )
            except (AttachmentError, TransportError) as exc:
                failures.append(exc)
                problems.append(str(exc))
        kind: type[AttachmentProblem] = AttachmentProblem
        # The server's answer decides whether the file is missing or the network is at
        # fault: its 404 says the file is not uploaded yet, whatever a silent peer did (so
        # a prefetch waits on that file alone instead of backing off entirely). Without a
        # server, one peer saying it lacks the file is enough.
        said_missing = (
            isinstance(failures[0], AttachmentNotFoundError)
            if self.credential is not None and failures
            else any(isinstance(e, AttachmentNotFoundError) for e in failures)
        )
        if any(isinstance(e, DeviceRejectedError) for e in failures):
            kind = DeviceRefused
        elif any(isinstance(e, BlobDamagedError) for e in failures):
            kind = BlobRefused
        elif said_missing:
            kind = BlobMissing
        said = "; ".join(problems)
        # The person is told the title; a log (the prefetch's) names the blob only.
        raise kind(
            f"{title}: available when connected ({said})",
            log_text=f"attachment {blob_id}: available when connected ({said})",
        )

    def obtain_key(
        self,
        key_id: str,
        timeout: httpx.Timeout = TIMEOUT,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> ClinicAttachmentKey | None:
        """The clinic attachment key ``key_id``: held here, or sealed for this device by a
        workstation that holds it (core.sync.key_grants), from the server or a LAN peer;
        None when none of them gives it, or when ``should_stop`` says so between asking
        one and the next (a prefetch told to stop). ``timeout``: for the server."""
        key = key_for(self.records, key_id)
        if key is None and self.credential is not None and not should_stop():
            from core.sync.key_grants import exchange_keys

            with contextlib.suppress(AttachmentError):
                exchange_keys(self.records, self.credential, timeout)
            key = key_for(self.records, key_id)
        for peer in self.peers if key is None else ():
            from core.sync.key_grants import keys_from_peer

            if should_stop():
                return None
            with contextlib.suppress(TransportError):
                keys_from_peer(self.records, peer)
            key = key_for(self.records, key_id)
        return key

    def _key_of(self, item: Attachment, key_id: str) -> ClinicAttachmentKey:
        key = self.obtain_key(key_id)
        if key is None:
            raise AttachmentProblem(
                f"{item.title}: this workstation does not hold the clinic attachment key "
                f"{key_id!r}; import it from a workstation that does "
                "('careline attachment key export' there, 'careline attachment key import' here)"
            )
        return key

    def decrypt_into(
        self,
        record_id: str,
        out: BinaryIO,
        progress: Progress | None = None,
        *,
        action: str = VIEWED,
    ) -> Attachment:
        """Fetch the attachment if need be and write its plaintext to ``out`` (a file, or
        memory: the app's PDF and image viewers never put the plaintext on disk), audited
        as ``action`` (:data:`VIEWED` or :data:`SAVED`, naming the file's record and its
        patient) once decrypted, as printing a chart is. A damaged or forged file raises
        AttachmentProblem naming it; ``out`` may then hold part of the plaintext, which
        the caller discards."""
        item = self.fetch(record_id, progress, opening=True)
        assert item.blob_id is not None  # fetch refused the old scheme
        row = entry_row(self.records.db, "attachment", record_id)  # read checked above
        key = self._key_of(item, row["key_id"] or "")
        try:
            get_attachment(
                self.cache, item.blob_id, out, kek=key.kek, aad=key.aad(), id_key=key.id_key
            )
        except (DecryptionError, BlobIntegrityError) as exc:
            self.cache.delete(item.blob_id)  # fetch it again next time
            raise AttachmentProblem(f"{item.title} was refused: {exc}") from exc
        with contextlib.suppress(OSError):
            os.utime(self.cache.path_for(item.blob_id))  # recently used: evicted last
        # A disclosure, audited as printing is (the gate checks view_clinical); the file's
        # title and name are clinical values and stay out of the log.
        details = {"patient": item.patient_id}
        with self.records.db.write(self.records.actor, action, "attachment", record_id, details):
            pass
        return item

    def read(self, record_id: str, progress: Progress | None = None) -> bytes:
        """The attachment's plaintext, in memory only (for viewers inside the app)."""
        buffer = io.BytesIO()
        self.decrypt_into(record_id, buffer, progress)
        return buffer.getvalue()

    def open_to(
        self,
        record_id: str,
        dest: Path,
        progress: Progress | None = None,
        *,
        action: str = SAVED,
    ) -> Path:
        """Decrypt the attachment into ``dest`` (written whole or not at all, mode 0600),
        audited as ``action``: :data:`SAVED` (a copy saved), or :data:`VIEWED` for a copy
        handed to the system's viewer."""
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                self.decrypt_into(record_id, out, progress, action=action)
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return dest

    def pending(self) -> list[str]:
        """Blob ids added here and not yet on the server."""
        folder = self.folder / "pending"
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []

    def push_pending(
        self,
        progress: Progress | None = None,
        *,
        progress_of: Callable[[str], Progress] | None = None,
        uploaded: Callable[[str], None] | None = None,
    ) -> int:
        """Upload every file waiting for it (each resumes where it stopped); returns how
        many went up. Raises AttachmentProblem on the first that fails.

        ``progress_of(blob_id)`` gives a progress sink per file (else ``progress`` takes
        them all); ``uploaded(blob_id)`` is called as each file reaches the server."""
        if self.credential is None:
            return 0
        from core.sync.key_grants import exchange_keys

        try:
            exchange_keys(self.records, self.credential)  # the others can open what goes up
        except AttachmentError as exc:
            raise AttachmentProblem(f"attachment key exchange stopped: {exc}") from exc
        done = 0
        for blob_id in self.pending():
            path = self.cache.path_for(blob_id)
            report = progress_of(blob_id) if progress_of is not None else progress or _quiet
            try:
                blob_client.push(self.credential, blob_id, path, _file_sha256(path), report)
            except AttachmentError as exc:
                raise AttachmentProblem(f"attachment upload stopped: {exc}") from exc
            self._pending_mark(blob_id).unlink(missing_ok=True)
            if uploaded is not None:
                uploaded(blob_id)
            done += 1
        return done

    def prefetched_mark(self, blob_id: str) -> Path:
        """The mark of a file the prefetch fetched and nobody has opened here since."""
        return self.folder / "prefetched" / blob_id

    def prefetched(self) -> list[str]:
        """Blob ids fetched ahead of need and not opened since."""
        folder = self.folder / "prefetched"
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []

    def cached_files(self) -> list[Path]:
        """The cache's encrypted files, partial downloads included."""
        return [p for p in self.folder.glob("??/*") if p.is_file()]

    def check_cached(self, blob_id: str, key_id: str | None) -> bool:
        """Decrypt a cached blob into nothing, checking every chunk's tag and the blob id
        (the checks opening makes). True when it passed; False when this workstation does
        not hold its key yet (opening checks it then). A damaged or forged blob is
        deleted and AttachmentProblem says so."""
        key = key_for(self.records, key_id or "")
        if key is None:
            return False
        try:
            get_attachment(
                self.cache, blob_id, _discard(), kek=key.kek, aad=key.aad(), id_key=key.id_key
            )
        except (DecryptionError, BlobIntegrityError) as exc:
            self.cache.delete(blob_id)
            raise BlobRefused(f"attachment {blob_id} was refused: {exc}") from exc
        return True

    def evict(self) -> int:
        """Drop cached files past the size budget: first those the prefetch fetched and
        nobody opened, then the least recently opened; never one waiting for upload.
        Returns how many were dropped."""
        waiting = set(self.pending())
        guessed = set(self.prefetched())
        every = self.cached_files()
        total = sum(p.stat().st_size for p in every)
        files = [p for p in every if p.name not in waiting]
        dropped = 0
        for path in sorted(files, key=lambda p: (p.name not in guessed, p.stat().st_mtime)):
            if total <= self.budget:
                break
            total -= path.stat().st_size
            path.unlink(missing_ok=True)
            self.prefetched_mark(path.name).unlink(missing_ok=True)
            dropped += 1
        return dropped


class _Discard(io.RawIOBase):
    """A sink for plaintext nobody needs (a prefetched file is checked, never kept)."""

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return len(memoryview(data))


def _discard() -> BinaryIO:
    return cast(BinaryIO, _Discard())


def _quiet(done: int, total: int) -> None:
    """Ignore progress."""


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as src:
        while piece := src.read(1024 * 1024):
            digest.update(piece)
    return digest.hexdigest()
