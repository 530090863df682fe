"""The workstation's key file: key slots, the wrapped database key, and unlocking.

Hierarchy (an intentional refinement of DESIGN.md section 3): every slot wraps one random
key-encryption key (KEK); the KEK wraps the 32-byte SQLCipher database key. Re-keying the
database (``PRAGMA rekey``) then only re-wraps one blob, and every staff member's password
slot keeps working. Slots still have LUKS semantics: any one secret opens the workstation.

The file (``keyslots.json``, mode 0600) is written atomically (temp file, fsync, rename).
Every change is a read-modify-write under a cross-process lock (``keyslots.json.lock``
beside it): the file is re-read under the lock and the change applied to what is on disk
then, so two processes (a password change and a sign-in) never overwrite each other's slot
with a stale copy.
It holds no plaintext key: only AES-256-GCM blobs, salts, Argon2id parameters, user names
used as slot labels, and a check value (HMAC-SHA256 of a constant under the database key)
that tells "wrong key" apart from "damaged database" without revealing the key.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.crypto import aead
from core.crypto.errors import DecryptionError
from core.crypto.kdf import DEFAULT_PARAMS, Argon2Params
from core.crypto.keyslots import KeySlot, make_slot, open_slot
from core.crypto.secure_memory import SecureMemory
from core.keys import keyring_store
from core.keys.errors import NoSlotError, SlotFileError, WrongSecretError
from core.keys.files import exclusive_lock, parse_versioned_json, replace_private
from core.keys.recovery import new_recovery_key, normalize_recovery_key

FILE_FORMAT = "careline-keyslots"
FILE_VERSION = 1
KEYSLOT_FILE_NAME = "keyslots.json"
# Recovery keys carry 160 random bits; Argon2id adds little, so use the light profile.
RECOVERY_PARAMS = Argon2Params(iterations=1, lanes=1, memory_kib=8 * 1024)


def lock_path_for(path: Path) -> Path:
    """The lock file serialising changes to the key file at ``path`` (kept beside it)."""
    return path.with_name(path.name + ".lock")


@dataclass
class _Edit:
    """One locked change to the key file; ``save=False`` when it turned out to change
    nothing."""

    save: bool = True


def key_check_value(db_key: bytes) -> bytes:
    """HMAC-SHA256 of a fixed label under the database key."""
    return hmac.new(db_key, b"careline-db-key-check-v1", hashlib.sha256).digest()


@dataclass
class WrappedDbKey:
    """The database key wrapped under the KEK, with its generation and check value."""

    generation: int
    wrapped: bytes
    check: bytes

    def aad(self, db_id: str) -> bytes:
        """Binds the blob to this database and generation."""
        return f"careline-dbkey|v1|{db_id}|{self.generation}".encode()

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "generation": self.generation,
            "wrapped": base64.b64encode(self.wrapped).decode(),
            "check": base64.b64encode(self.check).decode(),
        }

    @classmethod
    def from_dict(cls, data: Any) -> WrappedDbKey:
        """Parse, refusing anything malformed."""
        try:
            return cls(
                int(data["generation"]),
                base64.b64decode(data["wrapped"], validate=True),
                base64.b64decode(data["check"], validate=True),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SlotFileError(f"the wrapped database key is malformed: {exc}") from exc


@dataclass
class UnlockedKeys:
    """Keys of an unlocked workstation, in locked memory. Close to wipe them."""

    kek: SecureMemory
    db_key: SecureMemory
    pending_db_key: SecureMemory | None = None

    def close(self) -> None:
        """Zero every key held."""
        self.kek.close()
        self.db_key.close()
        if self.pending_db_key is not None:
            self.pending_db_key.close()


@dataclass
class Keychain:
    """In-memory view of ``keyslots.json``; every change is saved at once."""

    path: Path
    db_id: str
    default_user: str
    db_key: WrappedDbKey
    slots: list[KeySlot] = field(default_factory=list)
    pending_db_key: WrappedDbKey | None = None
    # The database file's SQLCipher salt (its first 16 bytes, not secret, kept by PRAGMA
    # rekey): tells "this key file belongs to another database" from "the file is damaged".
    db_salt: str | None = None
    # user -> digest of the synced password verifier each password slot was made for: when
    # the verifier changes (the password was changed on another workstation), the slot is
    # re-wrapped under the new password at the next sign-in.
    slot_verifiers: dict[str, str] = field(default_factory=dict)
    # A new recovery slot made but not in force (``stage_recovery_key``): the person it was
    # shown to has not confirmed storing its key yet. It opens nothing through this class,
    # and ``confirm_recovery_key`` swaps it for the current one.
    pending_recovery: KeySlot | None = None

    # ----- file I/O -------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path) -> Keychain:
        """Read and validate the key file; a damaged one raises SlotFileError naming it."""
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise SlotFileError(f"key file {path} is missing") from None
        except OSError as exc:
            raise SlotFileError(f"key file {path} cannot be read: {exc.strerror}") from exc
        data = parse_versioned_json(
            raw, FILE_FORMAT, FILE_VERSION, f"key file {path}", SlotFileError, "key file"
        )
        try:
            slots = [KeySlot.from_dict(s) for s in data["slots"]]
            db_id, default_user = str(data["db_id"]), str(data["default_user"])
        except (KeyError, TypeError, ValueError) as exc:
            raise SlotFileError(f"key file {path} is malformed: {exc}") from exc
        pending = data.get("pending_db_key")
        salt = data.get("db_salt")
        if salt is not None and not isinstance(salt, str):
            raise SlotFileError(f"key file {path} is malformed: db_salt must be text")
        staged = data.get("pending_recovery_slot")
        try:
            pending_recovery = None if staged is None else KeySlot.from_dict(staged)
        except (KeyError, TypeError, ValueError) as exc:
            raise SlotFileError(f"key file {path} is malformed: {exc}") from exc
        if pending_recovery is not None and pending_recovery.kind != "recovery":
            raise SlotFileError(f"key file {path} is malformed: a staged slot must be recovery")
        verifiers = data.get("slot_verifiers", {})
        if not isinstance(verifiers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in verifiers.items()
        ):
            raise SlotFileError(f"key file {path} is malformed: slot_verifiers must map text")
        return cls(
            path=path,
            db_id=db_id,
            default_user=default_user,
            db_key=WrappedDbKey.from_dict(data.get("db_key")),
            slots=slots,
            pending_db_key=None if pending is None else WrappedDbKey.from_dict(pending),
            db_salt=salt,
            slot_verifiers=dict(verifiers),
            pending_recovery=pending_recovery,
        )

    @contextlib.contextmanager
    def _editing(self) -> Iterator[_Edit]:
        """Hold the key file's cross-process lock, re-read the file into this object, and
        save it after the block (unless the block sets ``save`` False or raises). Every
        change goes through here, so it applies to the file as it is now, never to a copy
        another process has since replaced."""
        with exclusive_lock(lock_path_for(self.path)):
            self.reload()
            edit = _Edit()
            yield edit
            if edit.save:
                self.save()

    def reload(self) -> None:
        """Re-read the file (without the lock: writes replace it atomically)."""
        fresh = Keychain.load(self.path)
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(fresh, f.name))

    def save(self) -> None:
        """Write the file atomically with mode 0600 (callers hold the lock: see
        ``_editing``)."""
        data = {
            "format": FILE_FORMAT,
            "version": FILE_VERSION,
            "db_id": self.db_id,
            "default_user": self.default_user,
            "db_key": self.db_key.to_dict(),
            "pending_db_key": None
            if self.pending_db_key is None
            else self.pending_db_key.to_dict(),
            "slots": [s.to_dict() for s in self.slots],
            "db_salt": self.db_salt,
            "slot_verifiers": self.slot_verifiers,
        }
        if self.pending_recovery is not None:  # only while one is staged (older releases
            # ignore it, and rewriting the file without it withdraws the staged key)
            data["pending_recovery_slot"] = self.pending_recovery.to_dict()
        replace_private(self.path, json.dumps(data, indent=2).encode("utf-8"))

    # ----- creation -------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: Path,
        admin_user: str,
        admin_password: str,
        params: Argon2Params = DEFAULT_PARAMS,
    ) -> tuple[Keychain, UnlockedKeys, str]:
        """New KEK and database key, an admin password slot and a recovery slot.

        Returns the keychain, the unlocked keys and the recovery key, which is never
        stored anywhere and must be shown to the person once.
        """
        chain, keys, recovery = cls._create(path, admin_user, admin_password, params, True)
        assert recovery is not None
        return chain, keys, recovery

    @classmethod
    def create_without_recovery(
        cls, path: Path, user: str, password: str, params: Argon2Params = DEFAULT_PARAMS
    ) -> tuple[Keychain, UnlockedKeys]:
        """New KEK and database key behind ``user``'s password slot alone: a replica joined
        by a person who may not hold its recovery key (only an administrator does); an
        administrator makes one later (:meth:`new_recovery_key`)."""
        chain, keys, _none = cls._create(path, user, password, params, False)
        return chain, keys

    @classmethod
    def _create(
        cls, path: Path, user: str, password: str, params: Argon2Params, recovery_slot: bool
    ) -> tuple[Keychain, UnlockedKeys, str | None]:
        if path.exists():
            raise SlotFileError(f"key file {path} already exists; refusing to overwrite it")
        kek = SecureMemory.from_bytes(bytearray(aead.generate_key()))
        db_key = SecureMemory.from_bytes(bytearray(aead.generate_key()))
        db_id = secrets.token_hex(16)
        chain = cls(path, db_id, user, cls._wrap_db_key(kek, db_key, db_id, 1))
        chain.slots.append(
            make_slot(kek.read(), db_id, "password", user, password.encode(), params)
        )
        recovery = chain._new_recovery_slot(kek) if recovery_slot else None
        with exclusive_lock(lock_path_for(path)):
            if path.exists():  # another process set up here meanwhile
                kek.close()
                db_key.close()
                raise SlotFileError(f"key file {path} already exists; refusing to overwrite it")
            chain.save()
        return chain, UnlockedKeys(kek, db_key), recovery

    @classmethod
    def create_for_keyring(cls, path: Path) -> tuple[Keychain, UnlockedKeys]:
        """New KEK and database key behind an OS-keyring slot alone: a workstation joined
        with no person present (silent enrollment). The first staff member to sign in adds
        their password slot; an administrator makes a recovery key afterwards.

        The keyring secret is stored before the key file is written, so without a keyring
        (KeyringUnavailableError) nothing is made, and the key never touches the disk in
        the clear either way."""
        if path.exists():
            raise SlotFileError(f"key file {path} already exists; refusing to overwrite it")
        kek = SecureMemory.from_bytes(bytearray(aead.generate_key()))
        db_key = SecureMemory.from_bytes(bytearray(aead.generate_key()))
        db_id = secrets.token_hex(16)
        chain = cls(path, db_id, "", cls._wrap_db_key(kek, db_key, db_id, 1))
        secret = aead.generate_key()
        try:
            keyring_store.store_secret(chain.keyring_account, secret)
        except BaseException:
            kek.close()
            db_key.close()
            raise
        chain.slots.append(make_slot(kek.read(), db_id, "keyring", "os-keyring", secret, None))
        with exclusive_lock(lock_path_for(path)):
            if path.exists():
                kek.close()
                db_key.close()
                keyring_store.delete_secret(chain.keyring_account)
                raise SlotFileError(f"key file {path} already exists; refusing to overwrite it")
            chain.save()
        return chain, UnlockedKeys(kek, db_key)

    @staticmethod
    def _wrap_db_key(
        kek: SecureMemory, db_key: SecureMemory, db_id: str, generation: int
    ) -> WrappedDbKey:
        holder = WrappedDbKey(generation, b"", key_check_value(db_key.read()))
        holder.wrapped = aead.encrypt(kek.read(), db_key.read(), holder.aad(db_id))
        return holder

    def _new_recovery_slot(self, kek: SecureMemory) -> str:
        recovery, slot = self._make_recovery_slot(kek)
        self.slots = [s for s in self.slots if s.kind != "recovery"]
        self.slots.append(slot)
        # A key staged elsewhere (the app, waiting for its confirmation) is withdrawn: once
        # confirmed it would silently replace the key made here.
        self.pending_recovery = None
        return recovery

    def _make_recovery_slot(self, kek: SecureMemory) -> tuple[str, KeySlot]:
        recovery = new_recovery_key()
        slot = make_slot(
            kek.read(),
            self.db_id,
            "recovery",
            "recovery",
            normalize_recovery_key(recovery),
            RECOVERY_PARAMS,
        )
        return recovery, slot

    # ----- unlocking ------------------------------------------------------------------

    def _unlock_with_kek(self, kek_bytes: bytes) -> UnlockedKeys:
        kek = SecureMemory.from_bytes(bytearray(kek_bytes))
        try:
            db_key = SecureMemory.from_bytes(
                bytearray(
                    aead.decrypt(kek.read(), self.db_key.wrapped, self.db_key.aad(self.db_id))
                )
            )
            pending = None
            if self.pending_db_key is not None:
                pending = SecureMemory.from_bytes(
                    bytearray(
                        aead.decrypt(
                            kek.read(),
                            self.pending_db_key.wrapped,
                            self.pending_db_key.aad(self.db_id),
                        )
                    )
                )
        except DecryptionError as exc:
            kek.close()
            raise SlotFileError(
                f"key file {self.path}: the wrapped database key fails authentication "
                "(the file was altered or damaged)"
            ) from exc
        return UnlockedKeys(kek, db_key, pending)

    def password_slot(self, user: str) -> KeySlot | None:
        """The password slot labelled with ``user``, if this workstation has one."""
        return next((s for s in self.slots if s.kind == "password" and s.label == user), None)

    def password_users(self) -> list[str]:
        """The user names labelling password slots, sorted (they are stored in the clear)."""
        return sorted(s.label for s in self.slots if s.kind == "password")

    def has_keyring_slot(self) -> bool:
        """Whether an OS-keyring slot exists (the keyring itself may still be unavailable)."""
        return any(s.kind == "keyring" for s in self.slots)

    def unlock_with_password(self, user: str, password: str) -> UnlockedKeys:
        """Open ``user``'s password slot."""
        slot = self.password_slot(user)
        if slot is None:
            raise NoSlotError(f"user {user!r} has no password slot on this workstation")
        try:
            kek = open_slot(slot, self.db_id, password.encode())
        except DecryptionError:
            raise WrongSecretError(f"wrong password for user {user!r}") from None
        return self._unlock_with_kek(kek)

    def unlock_with_recovery_key(self, recovery_key: str) -> UnlockedKeys:
        """Open the recovery slot in force (a staged one opens nothing until confirmed)."""
        slot = self.recovery_slot()
        if slot is None:
            raise NoSlotError("this workstation has no recovery slot")
        try:
            secret = normalize_recovery_key(recovery_key)
            kek = open_slot(slot, self.db_id, secret)
        except (ValueError, DecryptionError):
            raise WrongSecretError("the recovery key is not correct") from None
        return self._unlock_with_kek(kek)

    @property
    def keyring_account(self) -> str:
        """Keyring account name: the database id, never a clinic or user name."""
        return f"workstation-{self.db_id}"

    def unlock_with_keyring(self) -> UnlockedKeys:
        """Open the keyring slot (raises KeyringUnavailableError when there is no keyring)."""
        slot = next((s for s in self.slots if s.kind == "keyring"), None)
        if slot is None:
            raise NoSlotError("this workstation has no OS-keyring slot")
        secret = keyring_store.load_secret(self.keyring_account)
        if secret is None:
            raise WrongSecretError("the OS keyring holds no secret for this workstation")
        try:
            kek = open_slot(slot, self.db_id, secret)
        except DecryptionError:
            raise WrongSecretError(
                "the secret in the OS keyring does not open this workstation"
            ) from None
        return self._unlock_with_kek(kek)

    # ----- managing slots -------------------------------------------------------------

    def add_password_slot(
        self,
        keys: UnlockedKeys,
        user: str,
        password: str,
        params: Argon2Params = DEFAULT_PARAMS,
        verifier: str | None = None,
    ) -> KeySlot:
        """Add (or replace) ``user``'s password slot; ``verifier``: digest of the synced
        password verifier the password was checked against (see ``slot_verifier``)."""
        slot = make_slot(keys.kek.read(), self.db_id, "password", user, password.encode(), params)
        with self._editing():
            self._put_password_slot(slot, verifier)
        return slot

    def _put_password_slot(self, slot: KeySlot, verifier: str | None) -> None:
        user = slot.label
        self.slots = [s for s in self.slots if not (s.kind == "password" and s.label == user)]
        self.slots.append(slot)
        if verifier is None:
            self.slot_verifiers.pop(user, None)
        else:
            self.slot_verifiers[user] = verifier

    def set_password_slot(
        self,
        keys: UnlockedKeys,
        user: str,
        password: str,
        verifier: str,
        still_current: Callable[[], bool],
        params: Argon2Params = DEFAULT_PARAMS,
    ) -> str | None:
        """Make ``user``'s slot open with ``password``, which was checked against (or just
        made) the synced verifier whose digest is ``verifier``: a compare-and-swap.

        Under the key file's lock the file is re-read; nothing is written if the slot is
        already made for ``verifier``, or if ``still_current()`` (asked under the lock) says
        the synced verifier has changed since (another process changed the password: its
        slot, for the newer password, must not be overwritten with this older one).
        Returns ``"added"`` or ``"rewrapped"``, or None when nothing was written.
        """
        self.reload()
        if self.password_slot(user) is not None and self.slot_verifier(user) == verifier:
            return None
        # Argon2id is slow: the slot is made before taking the lock, which it does not need.
        slot = make_slot(keys.kek.read(), self.db_id, "password", user, password.encode(), params)
        with self._editing() as edit:
            existing = self.password_slot(user)
            if (existing is not None and self.slot_verifier(user) == verifier) or not (
                still_current()
            ):
                edit.save = False
                return None
            self._put_password_slot(slot, verifier)
            return "added" if existing is None else "rewrapped"

    def slot_verifier(self, user: str) -> str | None:
        """Digest of the synced verifier ``user``'s slot was made for (None: unknown)."""
        return self.slot_verifiers.get(user)

    def change_password(
        self,
        user: str,
        old_password: str,
        new_password: str,
        params: Argon2Params = DEFAULT_PARAMS,
    ) -> None:
        """Re-wrap ``user``'s slot under a new password, after proving the old one."""
        with self._editing():
            keys = self.unlock_with_password(user, old_password)
            try:
                slot = make_slot(
                    keys.kek.read(), self.db_id, "password", user, new_password.encode(), params
                )
                self._put_password_slot(slot, None)
            finally:
                keys.close()

    def add_keyring_slot(self, keys: UnlockedKeys) -> KeySlot:
        """Store a random secret in the OS keyring and a slot it opens."""
        secret = aead.generate_key()
        keyring_store.store_secret(self.keyring_account, secret)
        slot = make_slot(keys.kek.read(), self.db_id, "keyring", "os-keyring", secret, None)
        with self._editing():
            self.slots = [s for s in self.slots if s.kind != "keyring"]
            self.slots.append(slot)
        return slot

    def new_recovery_key(self, keys: UnlockedKeys) -> str:
        """Replace the recovery slot; returns the new key, to be shown once."""
        with self._editing():
            recovery = self._new_recovery_slot(keys.kek)
        return recovery

    def stage_recovery_key(self, keys: UnlockedKeys) -> tuple[str, str]:
        """Step 1 of replacing the recovery key while the person it is shown to confirms
        storing it: a new recovery slot is kept beside the current one, which stays in
        force (a key staged before is withdrawn). Returns the new key, to be shown once,
        and the staged slot's id for :meth:`confirm_recovery_key`.

        The staged slot opens nothing here until confirmed; its key is never stored. (It is
        a slot like any other in the file: whoever holds its key and this file could open
        it by hand, so a staged key nobody confirmed is withdrawn, by the app when its
        dialog closes, or at the next open: ``Workstation._open``.)"""
        recovery, slot = self._make_recovery_slot(keys.kek)
        with self._editing():
            self.pending_recovery = slot
        return recovery, slot.slot_id

    def confirm_recovery_key(self, slot_id: str) -> bool:
        """Step 2: the staged key ``slot_id`` replaces the current recovery slot, whose key
        stops working. Returns True, or False if that key is in force already (confirmed
        before: nothing changes). Raises NoSlotError if it was withdrawn meanwhile (the
        current key then still works)."""
        with self._editing() as edit:
            staged = self.pending_recovery
            if staged is None or staged.slot_id != slot_id:
                edit.save = False
                if any(s.kind == "recovery" and s.slot_id == slot_id for s in self.slots):
                    return False
                raise NoSlotError(
                    "the new recovery key was withdrawn before it was confirmed (the clinic "
                    "was opened again on this computer meanwhile); the previous recovery key "
                    "still works"
                )
            self.slots = [s for s in self.slots if s.kind != "recovery"]
            self.slots.append(staged)
            self.pending_recovery = None
        return True

    def hold_recovery_key(self, slot_id: str) -> None:
        """The recovery slot ``slot_id``, in force, goes back to staged: a restored
        computer's new key, which opens nothing until the person it is shown to confirms
        storing it (:meth:`confirm_recovery_key`); if they never do, the next open withdraws
        it (``Workstation._open``). Raises NoSlotError if there is no such slot."""
        with self._editing():
            slot = next((s for s in self.slots if s.slot_id == slot_id), None)
            if slot is None or slot.kind != "recovery":
                raise NoSlotError(f"no recovery key slot with id {slot_id!r}")
            self.slots = [s for s in self.slots if s is not slot]
            self.pending_recovery = slot

    def discard_recovery_key(self, slot_id: str | None = None) -> bool:
        """Withdraw the staged recovery key (only if it is ``slot_id``, when given): the
        current one stays in force. Returns True if one was withdrawn."""
        with self._editing() as edit:
            staged = self.pending_recovery
            if staged is None or (slot_id is not None and staged.slot_id != slot_id):
                edit.save = False
                return False
            self.pending_recovery = None
        return True

    def drop_recovery_key(self) -> bool:
        """Remove the recovery slot in force and any staged one: nothing but a password (or
        the OS keyring) opens this workstation until an administrator makes a new key.
        Refused (NoSlotError) when the recovery slot is the last one a person can open.
        Returns True if there was one."""
        with self._editing() as edit:
            found = [s for s in self.slots if s.kind == "recovery"]
            if not found and self.pending_recovery is None:
                edit.save = False
                return False
            remaining = [s for s in self.slots if s.kind != "recovery"]
            if not any(s.kind in ("password", "keyring") for s in remaining):
                raise NoSlotError(
                    "refusing to remove the recovery slot: nothing else opens this workstation"
                )
            self.slots = remaining
            self.pending_recovery = None
        return True

    def recovery_slot(self) -> KeySlot | None:
        """The recovery slot in force (None: this workstation has no recovery key)."""
        return next((s for s in self.slots if s.kind == "recovery"), None)

    def remove_slot(self, slot_id: str) -> None:
        """Remove a slot; the last password or recovery slot cannot go."""
        with self._editing():
            slot = next((s for s in self.slots if s.slot_id == slot_id), None)
            if slot is None:
                raise NoSlotError(f"no key slot with id {slot_id!r}")
            remaining = [s for s in self.slots if s.slot_id != slot_id]
            if not any(s.kind in ("password", "recovery") for s in remaining):
                raise NoSlotError(
                    "refusing to remove the last password or recovery slot: "
                    "the database could no longer be opened without the OS keyring"
                )
            self.slots = remaining
        if slot.kind == "keyring":
            keyring_store.delete_secret(self.keyring_account)

    # ----- re-keying ------------------------------------------------------------------

    def stage_new_db_key(self, keys: UnlockedKeys) -> SecureMemory:
        """Step 1 of a re-key: record the next database key as pending, before rekeying.

        If the process dies after this, opening tries the pending key too, so a crash in
        the middle of ``PRAGMA rekey`` never strands the database.
        """
        new_key = SecureMemory.from_bytes(bytearray(aead.generate_key()))
        with self._editing():
            self.pending_db_key = self._wrap_db_key(
                keys.kek, new_key, self.db_id, self.db_key.generation + 1
            )
        keys.pending_db_key = new_key
        return new_key

    def commit_new_db_key(self, keys: UnlockedKeys) -> None:
        """Step 2 of a re-key: the database now uses the pending key; make it current."""
        with self._editing():
            if self.pending_db_key is None or keys.pending_db_key is None:
                raise NoSlotError("no re-key is in progress")
            self.db_key, self.pending_db_key = self.pending_db_key, None
        keys.db_key.close()
        keys.db_key, keys.pending_db_key = keys.pending_db_key, None

    def remember_database(self, salt: bytes) -> None:
        """Record which database file this key file belongs to (by its salt)."""
        if self.db_salt != salt.hex():
            with self._editing() as edit:
                edit.save = self.db_salt != salt.hex()
                self.db_salt = salt.hex()

    def belongs_to(self, salt: bytes | None) -> bool | None:
        """Whether this key file was made for the database with ``salt``; None if unknown
        (a key file written before salts were recorded, or a file too short to hold one)."""
        if self.db_salt is None or salt is None:
            return None
        return hmac.compare_digest(self.db_salt, salt.hex())

    def matches(self, db_key: bytes) -> bool:
        """True if ``db_key`` is this keychain's current database key."""
        return hmac.compare_digest(key_check_value(db_key), self.db_key.check)
