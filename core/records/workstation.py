"""A workstation's clinic replica: key file + encrypted database + the signed-in person.

Three states (README, "Security notes"):

- closed: ``Workstation(data_dir)`` starts closed; ``lock`` returns to it (the database
  closes and every key in locked memory is zeroed).
- open, nobody signed in: ``unlock_with_keyring`` (or ``sign_out``) leaves the database
  open with its key in locked memory. Any active staff member can then ``sign_in``: the
  password is checked against their synced Argon2id verifier, and a first sign-in here
  adds their password slot.
- signed in: ``sign_in`` opens the database if needed (with the person's slot, or the
  keyring slot) and makes ``records`` act as that person.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from core.crypto.kdf import DEFAULT_PARAMS, Argon2Params
from core.keys.errors import (
    KeyringUnavailableError,
    NoSlotError,
    SlotFileError,
    WrongSecretError,
)
from core.keys.files import exclusive_lock
from core.keys.keychain import KEYSLOT_FILE_NAME, Keychain, UnlockedKeys, lock_path_for
from core.records import authorize, relations, two_factor, unknown
from core.records import validation as v
from core.records.clinic import ClinicRecords, new_user
from core.records.errors import (
    AuthenticationError,
    NotFoundError,
    PasswordChangeRequiredError,
    SecondFactorRequiredError,
    SignInDelayedError,
    StaleSlotError,
    UnknownAccountError,
    ValidationError,
)
from core.records.errors import NotAllowedError as NotAllowedError  # re-exported: it was here
from core.records.lockout import DELAYS_FILE, Clock, Lockout, SignInDelays
from core.records.models import User
from core.records.staff import Staff, require_staff_manager
from core.store.database import DB_FILE_NAME, Database, file_salt, utc_now
from core.store.errors import StoreError, WrongKeyError

log = logging.getLogger(__name__)


# The audit and op-log author of a password set with the recovery key: nobody signed in,
# so the entry names the key that was used rather than guessing at a person.
RECOVERY_ACTOR = "recovery-key"


# The audit actor of a failed sign-in: nobody is known to be at the keyboard.
FAILED_SIGN_IN_ACTOR = "(unknown)"

# Failed sign-ins while the clinic is closed here (the encrypted audit log cannot be written
# without a key): one JSON line each (account tried, time; never the password), moved into
# the audit chain at the next successful sign-in.
FAILED_SIGN_INS_FILE = "failed-sign-ins.jsonl"

# What the audit log names for a sign-in tried with a user name no account has. The text
# typed is not kept anywhere (not in the audit log, which syncs to the server, nor in the
# delays file, which is plaintext): people type their password into the user name box.
NOT_AN_ACCOUNT = "(not an account)"
# What a sign-in refused while the clinic is closed, by a name labelling no password slot
# here, is noted and audited as: while closed, this computer cannot tell whether any
# account has the name, and the text typed may be a password.
NOT_KNOWN_HERE = "(no password on this computer)"

# In the data folder from a new replica's accepted enrollment until its first sync and the
# joining person's account check are done (core.sync.join); it holds nothing.
JOIN_PENDING_MARKER = "first-sync-pending"


class WorkstationLockedError(StoreError):
    """An operation needs the clinic database open (or someone signed in), and it is not."""

    plain_template = "{detail}"  # the message says it all


# The audit actor of what a workstation does by itself at open (no person asked for it).
WORKSTATION_ACTOR = "(workstation)"


class NotOpenableHereError(AuthenticationError):
    """Nothing this person has opens this closed workstation (not a wrong password: such a
    refusal does not count towards the account's sign-in delay)."""


def describe_openers(users: list[str]) -> str:
    """``it opens with the password of a, b or c, or with the recovery key``."""
    if not users:
        return "it opens only with the recovery key"
    names = users[0] if len(users) == 1 else f"{', '.join(users[:-1])} or {users[-1]}"
    return f"it opens with the password of {names}, or with the recovery key"


class Workstation:
    """The clinic replica held in ``data_dir``."""

    def __init__(
        self, data_dir: Path, kdf_params: Argon2Params = DEFAULT_PARAMS, clock: Clock = time.time
    ) -> None:
        self.data_dir = data_dir
        self.kdf_params = kdf_params
        # Time for sign-in delays and TOTP codes (injectable: tests move it).
        self.clock = clock
        # The signed-in person must choose a new password before anything else.
        self._must_change_password = False
        # That person's sign-in opened the closed clinic: should they sign out before
        # choosing their own password, it is closed again (:meth:`sign_out`).
        self._opened_for_change = False
        self._keys: UnlockedKeys | None = None
        self._db: Database | None = None
        self._records: ClinicRecords | None = None
        self.keyring_note: str | None = None
        # Whether the key file already records the database's salt (lock() need not look).
        self._salt_recorded = False

    @property
    def keyfile_path(self) -> Path:
        """Where the key slots live."""
        return self.data_dir / KEYSLOT_FILE_NAME

    @property
    def db_path(self) -> Path:
        """Where the encrypted database lives."""
        return self.data_dir / DB_FILE_NAME

    def use_folder(self, data_dir: Path) -> None:
        """Hold the clinic in ``data_dir`` from now on (the desktop app switches between the
        clinic's folder and the demo's this way); only while the clinic is closed here."""
        if self._db is not None or self._keys is not None:
            raise StoreError("close the clinic on this computer before switching folders")
        self.data_dir = data_dir
        self._salt_recorded = False

    def is_initialized(self) -> bool:
        """True if a clinic has been set up in this data folder."""
        return self.keyfile_path.exists() or self.db_path.exists()

    def keychain(self) -> Keychain:
        """The key file, freshly read."""
        return Keychain.load(self.keyfile_path)

    def unfinished_join_by(self) -> str | None:
        """The person whose join into this folder is unfinished (enrolled, but its first
        sync or their account check is not done: core.sync.join), read without opening
        anything; None when there is none, or for a silent join (no password slot).

        Until it is finished, only the join itself may open that replica: its records may
        hold no account of that person, so nothing here has proved who they are."""
        if not (self.data_dir / JOIN_PENDING_MARKER).exists() or not self.is_initialized():
            return None
        users = self.keychain().password_users()
        return users[0] if users else None

    # ----- set-up -----------------------------------------------------------------------

    def init(
        self, clinic_name: str, username: str, full_name: str, password: str, keyring: bool = True
    ) -> str:
        """Create the clinic, its first admin and key slots; returns the recovery key.

        ``keyring=False`` adds no OS-keyring slot (the demo clinic, whose password is
        published, has no business in the person's keyring)."""
        if self.is_initialized():
            raise StoreError(f"a clinic already exists in {self.data_dir}; refusing to overwrite")
        # Validate before anything touches the disk.
        v.text("clinic", clinic_name)
        new_user(username, full_name, "admin", password)
        chain, keys, recovery = Keychain.create(
            self.keyfile_path, username.strip().lower(), password, self.kdf_params
        )
        try:
            db = Database.create(self.db_path, keys.db_key)
            records = ClinicRecords(db, username.strip().lower(), self.kdf_params)
            records.set_up_clinic(clinic_name, username, full_name, password)
        except BaseException:
            keys.close()
            for leftover in self.data_dir.glob(DB_FILE_NAME + "*"):
                leftover.unlink()
            self.keyfile_path.unlink(missing_ok=True)
            raise
        self._keys, self._db, self._records = keys, db, records
        if not keyring:
            self.keyring_note = "not wanted for this clinic"
            return recovery
        try:
            chain.add_keyring_slot(keys)
            self.keyring_note = None
        except KeyringUnavailableError as exc:
            # Reported to the person by the caller (keyring_note); only logged here.
            self.keyring_note = str(exc)
            log.info("no OS-keyring slot: %s", exc)
        return recovery

    def prepare_join(self, username: str, password: str) -> None:
        """An empty encrypted replica, unlocked, that the first sync fills with the clinic.

        ``username``'s password slot is created here; the account itself (and its verifier)
        arrives with the clinic's records. There is no recovery slot: the recovery key is
        an administrator's, so it is made only once the person's account has arrived and
        proves them one (core.sync.join_recovery), or later by an administrator.
        """
        if self.is_initialized():
            raise StoreError(f"a clinic already exists in {self.data_dir}; refusing to overwrite")
        name = v.username(username)
        v.password(password)
        _chain, keys = Keychain.create_without_recovery(
            self.keyfile_path, name, password, self.kdf_params
        )
        try:
            self._db = Database.create(self.db_path, keys.db_key)
        except BaseException:
            keys.close()
            self.keyfile_path.unlink(missing_ok=True)
            raise
        self._keys = keys
        self._records = ClinicRecords(self._db, name, self.kdf_params)
        # No OS-keyring slot yet: until the person's account has arrived and been checked,
        # their password alone opens this replica (add_keyring_slot, core.sync.join).
        self.keyring_note = None

    def add_keyring_slot(self) -> None:
        """Let the OS keyring open this (open) workstation too: a joined replica, once the
        joining person's account has been checked. Without a keyring nothing changes and
        ``keyring_note`` says why."""
        if self._keys is None or not self.is_unlocked:
            raise WorkstationLockedError("the clinic is closed on this computer")
        try:
            self.keychain().add_keyring_slot(self._keys)
            self.keyring_note = None
        except KeyringUnavailableError as exc:
            self.keyring_note = str(exc)

    def prepare_unattended_join(self) -> None:
        """An empty encrypted replica, unlocked, whose key only the OS keyring opens (no
        person is present: silent enrollment). Without a keyring, KeyringUnavailableError
        and nothing is made: the key is never kept in the clear."""
        if self.is_initialized():
            raise StoreError(f"a clinic already exists in {self.data_dir}; refusing to overwrite")
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        _chain, keys = Keychain.create_for_keyring(self.keyfile_path)
        try:
            self._db = Database.create(self.db_path, keys.db_key)
        except BaseException:
            keys.close()
            self.keyfile_path.unlink(missing_ok=True)
            raise
        self._keys = keys
        self._records = ClinicRecords(self._db, WORKSTATION_ACTOR, self.kdf_params)
        self.keyring_note = None

    # ----- unlocking --------------------------------------------------------------------

    @property
    def is_unlocked(self) -> bool:
        """True while the database is open."""
        return self._db is not None and not self._db.closed

    def _open(self, chain: Keychain, keys: UnlockedKeys, tidy: bool = True) -> None:
        """Open the database with ``keys``; ``tidy``: also drop deactivated accounts' key
        slots (not when the database is opened only to be examined, which writes nothing)."""
        try:
            # While a re-key is pending, a failure may just mean the new key is in force.
            known_good = keys.pending_db_key is None and chain.matches(keys.db_key.read())
            if known_good and chain.belongs_to(file_salt(self.db_path)) is False:
                # The key is right for this key file, but the key file is another database's.
                raise WrongKeyError(
                    f"the key file {self.keyfile_path} belongs to another clinic database, "
                    f"not to {self.db_path}; put back the keyslots.json that was made with it"
                )
            db = Database.open(self.db_path, keys.db_key, known_good)
        except WrongKeyError:
            if keys.pending_db_key is None:
                keys.close()
                raise
            # A re-key was interrupted after PRAGMA rekey: finish it.
            db = Database.open(self.db_path, keys.pending_db_key, key_is_known_good=True)
            chain.commit_new_db_key(keys)
        except BaseException:
            keys.close()
            raise
        self._keys, self._db = keys, db
        self._remember_database(chain)
        # After an upgrade: rows of records kept for this (now newer) version are derived.
        unknown.refresh(db)
        if tidy:
            self._drop_deactivated_slots(chain, db)
            self._drop_staged_recovery_key(chain)

        # After an upgrade from a release without authorization: admins who did clinical
        # work keep doing it (core/records/relations.py upgrade_clinicians).
        relations.upgrade_clinicians(db)

    def _drop_deactivated_slots(self, chain: Keychain, db: Database) -> None:
        """Remove the password slots of accounts deactivated since (here or, synced, on
        another workstation): their password no longer opens this closed workstation.
        Audited; the account's records and past work are untouched."""
        labelled = set(chain.password_users())
        if not labelled:
            return
        inactive = [
            str(name)
            for (name,) in db.query("SELECT username FROM users WHERE active = 0")
            if str(name) in labelled
        ]
        for name in inactive:
            slot = chain.password_slot(name)
            if slot is None:
                continue
            try:
                chain.remove_slot(slot.slot_id)
            except (NoSlotError, SlotFileError, OSError) as exc:
                log.warning("could not remove the key slot of deactivated %r: %s", name, exc)
                continue
            details = {"reason": "account deactivated"}
            with db.write(WORKSTATION_ACTOR, "keys.slot_remove", "user", f"user:{name}", details):
                pass

    def _drop_staged_recovery_key(self, chain: Keychain) -> None:
        """A recovery key staged and never confirmed (the app stopped while showing it): it
        is withdrawn, and the key in force before stays the only one."""
        if chain.pending_recovery is None:
            return
        try:
            chain.discard_recovery_key()
        except (SlotFileError, OSError) as exc:
            log.warning("could not withdraw an unconfirmed recovery key: %s", exc)
        else:
            log.info("withdrew a new recovery key that was never confirmed")

    def _remember_database(self, chain: Keychain) -> None:
        """Record the database's salt in the key file once the file holds one (a new
        database in WAL mode may not have written its first page yet)."""
        if chain.db_salt is None and (salt := file_salt(self.db_path)) is not None:
            chain.remember_database(salt)
        self._salt_recorded = chain.db_salt is not None

    def unlock_with_keyring(self) -> None:
        """Open the database with the OS-keyring slot (no person needed)."""
        chain = self.keychain()
        self._open(chain, chain.unlock_with_keyring())

    def unlock_with_password(self, username: str, password: str) -> None:
        """Open the database with a password slot alone, without signing anyone in (a newly
        joined workstation holds no accounts until its first sync)."""
        chain = self.keychain()
        try:
            self._open(
                chain, chain.unlock_with_password(username.strip().lower(), password), tidy=False
            )
        except (WrongSecretError, NoSlotError):
            raise AuthenticationError("wrong user name or password") from None

    def unlock_with_recovery_key(self, recovery_key: str) -> None:
        """Open the database with the recovery key (an admin then resets passwords)."""
        chain = self.keychain()
        self._open(chain, chain.unlock_with_recovery_key(recovery_key))

    @property
    def sign_in_delays(self) -> SignInDelays:
        """This workstation's per-account sign-in delays (core/records/lockout.py)."""
        return SignInDelays(
            self.data_dir / DELAYS_FILE, lock_path_for(self.keyfile_path), self.clock
        )

    def lockouts(self) -> list[Lockout]:
        """Accounts with failed sign-ins counted on this workstation (for the admin)."""
        return self.sign_in_delays.all()

    def sign_in(
        self,
        username: str,
        password: str,
        previous_password: str | None = None,
        totp_code: str | None = None,
    ) -> User:
        """Sign a person in (see :meth:`_sign_in`), unless the account must still wait after
        repeated failures here (SignInDelayedError, checked before anything else: no
        password is even tried). A wrong password or code counts towards the delay; a
        successful sign-in ends it. An account with two-factor sign-in needs ``totp_code``:
        without one, SecondFactorRequiredError (the password was right: ask for the code).
        """
        name = username.strip().lower()
        delays = self.sign_in_delays
        delays.check(name)
        was_open = self.is_unlocked
        try:
            user = self._sign_in(name, password, previous_password, totp_code)
        except (
            SignInDelayedError,
            SecondFactorRequiredError,
            NotOpenableHereError,
            UnknownAccountError,
        ):
            # No delay is counted for a name no account has: only an account can be guessed
            # at, and counting would write whatever was typed to a plaintext file.
            raise
        except AuthenticationError:
            delays.failed(name)
            raise
        delays.succeeded(name)
        self._must_change_password = user.must_change_password
        # A password someone else set (which its holder must replace) opens the clinic only
        # for that change: declined, the clinic is closed again as it was found.
        self._opened_for_change = user.must_change_password and not was_open
        return user

    def _sign_in(
        self, username: str, password: str, previous_password: str | None, totp_code: str | None
    ) -> User:
        """Sign a person in, unlocking the database if needed.

        With the database closed, the user's password slot opens it; if this workstation
        has no slot for them yet, the keyring slot opens it. Either way the password is then
        checked against the user's synced verifier. A first sign-in here adds their slot, and
        a password changed on another workstation re-wraps it: the slot still holds the old
        password, so the database is opened with the keyring or with ``previous_password``.
        Neither happens with a password someone else set, which the person must replace: the
        slot waits for their own (:meth:`change_password`). A failed sign-in leaves the
        database as open or closed as it found it.
        """
        name = username.strip().lower()
        chain = self.keychain()
        opened_here = not self.is_unlocked
        if opened_here:
            try:
                self._unlock_for_sign_in(chain, name, password, previous_password)
            except AuthenticationError:
                # Noted by name only for a name labelling a password slot here (an account
                # of this clinic): anything else typed may be a password, and the note is
                # a plaintext file whose names end in the synced audit log.
                known = chain.password_slot(name) is not None
                self._note_failed_sign_in(name if known else NOT_KNOWN_HERE)
                raise

        def second_factor(user: User, secret: str) -> None:
            if totp_code is None or not totp_code.strip():
                raise SecondFactorRequiredError(
                    f"{user.username!r} signs in with two-factor authentication: enter the "
                    "6-digit code the authenticator app shows"
                )
            if not two_factor.verify(secret, totp_code, self.clock()):
                raise AuthenticationError("wrong two-factor code")

        try:
            records = ClinicRecords(self._require_db(), name, self.kdf_params)
            user, digest = records.authenticate_against(name, password, second_factor)
        except SecondFactorRequiredError:
            # Not a failure: the password was right and the code is asked for next.
            if opened_here:
                self.lock()
            raise
        except AuthenticationError as refused:
            # Audited, naming the account tried (never the password typed, nor a name no
            # account has), also when this attempt opened the clinic only to be refused by
            # the synced verifier.
            tried = NOT_AN_ACCOUNT if isinstance(refused, UnknownAccountError) else name
            with self._require_db().write(
                FAILED_SIGN_IN_ACTOR, "user.sign_in_failed", "user", tried
            ):
                pass
            if opened_here:
                self.lock()
            raise
        except BaseException:
            if opened_here:
                self.lock()
            raise
        self._audit_noted_failures(records.db)
        accounts = {str(n) for (n,) in records.db.query("SELECT username FROM users")}
        self.sign_in_delays.keep_only(accounts)
        if not user.must_change_password:
            self._store_slot_audited(records, name, password, digest, user.id)
        # else: a password someone else set (the administrator knows it) gets no slot here,
        # nor does a slot the person had re-wrap under it: their slot is made with their own
        # password once they choose it (change_password). Declined, or Careline stopped
        # before the change, and no slot here opens with the administrator's password.
        self._records = records
        return user

    @property
    def failed_sign_ins_path(self) -> Path:
        """Failed sign-ins noted while the clinic was closed, not yet in the audit log."""
        return self.data_dir / FAILED_SIGN_INS_FILE

    def _note_failed_sign_in(self, name: str) -> None:
        """Note a sign-in refused while the clinic is closed (no key opens the audit log)."""
        line = json.dumps({"user": name, "at": utc_now()}) + "\n"
        try:
            with exclusive_lock(lock_path_for(self.keyfile_path)):
                fd = os.open(
                    self.failed_sign_ins_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600
                )
                try:
                    os.write(fd, line.encode())
                finally:
                    os.close(fd)
        except OSError as exc:  # a read-only folder: the refusal itself still stands
            log.warning("could not note a failed sign-in: %s", exc)

    def _audit_noted_failures(self, db: Database) -> None:
        """Move the failed sign-ins noted while closed into the audit chain (each with the
        time it happened), then forget the note."""
        path = self.failed_sign_ins_path
        if not path.exists():
            return
        accounts = {str(n) for (n,) in db.query("SELECT username FROM users")}
        with exclusive_lock(lock_path_for(self.keyfile_path)):
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except FileNotFoundError:
                return
            for line in lines:
                try:
                    noted = json.loads(line)
                    name, at = str(noted["user"]), str(noted["at"])
                except (ValueError, KeyError, TypeError):
                    name, at = "(unreadable note)", ""
                if name not in accounts and name != NOT_KNOWN_HERE:
                    # A note an earlier release wrote with whatever was typed.
                    name = NOT_AN_ACCOUNT
                with db.write(
                    FAILED_SIGN_IN_ACTOR,
                    "user.sign_in_failed",
                    "user",
                    name,
                    {"at": at, "while": "closed"},
                ):
                    pass
            path.unlink()

    def _unlock_for_sign_in(
        self, chain: Keychain, name: str, password: str, previous_password: str | None
    ) -> None:
        try:
            self._open(chain, chain.unlock_with_password(name, password))
            return
        except WrongSecretError:
            if previous_password is not None:
                try:
                    self._open(chain, chain.unlock_with_password(name, previous_password))
                    return
                except WrongSecretError:
                    raise AuthenticationError("wrong user name or password") from None
            stale = True
        except NoSlotError:
            stale = False
        try:
            self.unlock_with_keyring()
        except (KeyringUnavailableError, NoSlotError, WrongSecretError):
            if stale:
                # Indistinguishable here from a wrong password: the message stays the same,
                # the type lets the app offer the "previous password" field.
                raise StaleSlotError("wrong user name or password") from None
            raise NotOpenableHereError(self._closed_to(name, chain)) from None

    @staticmethod
    def _closed_to(name: str, chain: Keychain) -> str:
        """Why ``name`` cannot open a closed workstation, and who can."""
        return (
            f"{name!r} has not signed in on this workstation before, and the clinic is "
            f"closed here: {describe_openers(chain.password_users())}. Once one of them has "
            "signed in (and out) in the Careline app, anyone on the staff can sign in here."
        )

    def password_users(self) -> list[str]:
        """User names whose password opens this workstation while it is closed (read from
        the key file, which labels password slots with user names; no key needed)."""
        return self.keychain().password_users()

    def has_keyring_slot(self) -> bool:
        """Whether this workstation has an OS-keyring slot (with it, any active staff member
        can open the closed clinic by signing in, while this account's keyring answers)."""
        return self.keychain().has_keyring_slot()

    def sign_out(self) -> None:
        """Nobody is signed in any more; the database stays open (its key stays in locked
        memory) so that any staff member can sign in next, the first time here included.
        The sign-out is audited. Exception: a person who signed in with a password someone
        else set, and whose sign-in opened the closed clinic, signs out before choosing
        their own: the clinic is closed again, as before that sign-in (otherwise a password
        its holder was made to replace would have opened it to all staff)."""
        records, self._records = self._records, None
        close_again = self._must_change_password and self._opened_for_change
        self._must_change_password = self._opened_for_change = False
        if records is not None and self.is_unlocked:
            user = records.user(records.actor)
            with records.db.write(records.actor, "user.sign_out", "user", user.id if user else ""):
                pass
        if close_again:
            self.lock()

    def unlock_for(self, username: str) -> ClinicRecords:
        """Records acting as ``username`` after an unattended unlock (keyring or recovery);
        never a deactivated account."""
        records = ClinicRecords(self._require_db(), username.strip().lower(), self.kdf_params)
        user = records.user(username)
        if user is None:
            raise AuthenticationError(f"no user {username!r} in this clinic")
        if not user.active:
            raise AuthenticationError(
                f"the account {user.username!r} has been deactivated by the clinic's administrator"
            )
        self._records = records
        self._must_change_password = self._opened_for_change = False
        return records

    def _require_db(self) -> Database:
        if self._db is None or self._db.closed:
            raise WorkstationLockedError("the clinic is closed on this computer")
        return self._db

    @property
    def records(self) -> ClinicRecords:
        """Operations as the signed-in person; refused (PasswordChangeRequiredError) until a
        person whose password someone else set has chosen their own."""
        records = self._signed_in_records()
        if self._must_change_password:
            raise PasswordChangeRequiredError(
                f"{records.actor!r} must choose a new password before anything else: the "
                "current one was set by an administrator (in the app: the sign-in asks for it; "
                f"on the command line: careline --user {records.actor} password change)"
            )
        return records

    def clinic_name(self) -> str:
        """The clinic's name (readable while a forced password change is pending: the
        screen asking for it names the clinic)."""
        return self._signed_in_records().clinic_name()

    @property
    def password_change_required(self) -> bool:
        """The signed-in person must change their password before anything else."""
        return self._records is not None and self._must_change_password

    def _signed_in_records(self) -> ClinicRecords:
        if self._records is None or not self.is_unlocked:
            raise WorkstationLockedError("nobody is signed in")
        return self._records

    @property
    def database(self) -> Database:
        """The open database (for checks)."""
        return self._require_db()

    @property
    def unlocked_keys(self) -> UnlockedKeys:
        """The open clinic's keys in locked memory (a backup seals to the recovery key
        through the key-encryption key and copies the database with its key)."""
        self._require_db()
        assert self._keys is not None  # set whenever the database is open
        return self._keys

    @property
    def is_signed_in(self) -> bool:
        """True while someone is signed in (the database is then open)."""
        return self._records is not None and self.is_unlocked

    def lock(self) -> None:
        """Close the clinic on this computer: close the database, zero the keys in memory
        and sign out whoever was signed in."""
        if self._db is not None:
            self._db.close()
            try:
                if not self._salt_recorded and self.keyfile_path.exists():
                    self._remember_database(self.keychain())
            except (SlotFileError, OSError) as exc:
                # Locking must not fail: the salt is recorded at a later open instead.
                log.warning("could not record the database salt in the key file: %s", exc)
        if self._keys is not None:
            self._keys.close()
        self._db = self._keys = self._records = None
        self._must_change_password = self._opened_for_change = False

    # ----- key management ---------------------------------------------------------------

    def change_password(self, username: str, old_password: str, new_password: str) -> None:
        """Change a password: the synced verifier and this workstation's slot. This is also
        how a person whose password someone else set chooses their own (it must differ)."""
        records = self._signed_in_records()
        if self._must_change_password and new_password == old_password:
            raise ValidationError(
                "password", "choose a password of your own, not the one you were given"
            )
        user = records.authenticate(username, old_password)
        digest = records.change_password(username, new_password)
        # A person who signed in with a password someone else set has no slot here yet (or
        # one under their previous password): it is made now, with the password of their own.
        self._store_slot_audited(records, username, new_password, digest, user.id)
        if username.strip().lower() == records.actor:
            self._must_change_password = self._opened_for_change = False

    def _store_slot_audited(
        self, records: ClinicRecords, username: str, password: str, digest: str, user_id: str
    ) -> None:
        """:meth:`_store_slot`, audited as ``keys.slot_add`` or ``keys.slot_rewrap`` when it
        wrote anything: who can open this computer's copy while it is closed changed."""
        made = self._store_slot(records, username, password, digest)
        if made is not None:
            action = "keys.slot_add" if made == "added" else "keys.slot_rewrap"
            with records.db.write(records.actor, action, "user", user_id):
                pass

    def _store_slot(
        self, records: ClinicRecords, username: str, password: str, digest: str
    ) -> str | None:
        """(Re-)wrap ``username``'s slot under ``password``, which matches the synced
        verifier with ``digest``, unless that verifier is no longer the current one (another
        process changed the password meanwhile: its newer slot stays). Returns "added",
        "rewrapped" or None (see :meth:`Keychain.set_password_slot`)."""
        assert self._keys is not None
        name = username.strip().lower()
        return self.keychain().set_password_slot(
            self._keys,
            name,
            password,
            digest,
            lambda: records.verifier_digest(name) == digest,
            self.kdf_params,
        )

    def require_admin(self, what: str) -> ClinicRecords:
        """The signed-in person's records if they are an administrator; ``what`` names the
        operation in the refusal (e.g. "issue a new recovery key"). The check itself is
        :func:`core.records.staff.require_staff_manager`, the one place it lives."""
        records = self.records
        require_staff_manager(records, what)
        return records

    def require(self, action: str) -> ClinicRecords:
        """The signed-in person's records if the permission matrix lets them do ``action``
        (``keys.rekey``); NotAllowedError (audited) names who may."""
        records = self.records
        authorize.require(records.db, records.actor, action)
        return records

    # ----- staff (core/records/staff.py) ------------------------------------------------

    def staff(self) -> Staff:
        """Staff management as the signed-in person (each operation checks who may)."""
        return Staff(self.records)

    def add_staff(self, username: str, full_name: str, role: str, first_password: str) -> User:
        """An administrator adds a staff member (core/records/staff.py) with a first password
        they must change at first sign-in, and gives them a password slot here: with no OS
        keyring, they can then sign in on this computer while the clinic is closed."""
        records = self.records
        Staff(records).add(username, full_name, role, first_password)
        name = v.username(username)
        digest = records.verifier_digest(name)
        assert digest is not None  # just written
        self._store_slot(records, name, first_password, digest)
        user = records.user(name)
        assert user is not None
        return user

    def reset_staff_password(self, username: str, new_password: str) -> None:
        """An administrator sets a staff member's password; they must change it at their
        next sign-in (audited ``user.password_reset``). This workstation's slot for them is
        re-wrapped (their old password no longer opens it here) and their sign-in delay
        here is lifted."""
        records = self.records
        name = v.username(username)
        digest = Staff(records).reset_password(name, new_password)
        self._store_slot(records, name, new_password, digest)
        self.sign_in_delays.clear(name)

    def reset_password(self, username: str, new_password: str) -> None:
        """Set ``username``'s password without their old one: the synced verifier (audited as
        the acting person) and this workstation's slot, so the old password no longer opens
        it here. Callers decide who may do this (an admin, or the recovery-key holder)."""
        v.password(new_password)
        name = v.username(username)
        records = self.records
        if records.user(name) is None:
            raise NotFoundError(f"no user {name!r} in this clinic")
        digest = records.change_password(name, new_password)
        self._store_slot(records, name, new_password, digest)

    def recover_password(self, recovery_key: str, username: str, new_password: str) -> None:
        """Forgotten password: prove the recovery key, then set ``username``'s new password.

        The recovery slot is opened even when the database is already open (by the OS
        keyring), so a wrong key is refused either way, before anything is written. The
        change is audited with the author ``recovery-key``. A database opened here is closed
        again afterwards: the person then signs in with the new password, proving it works.

        Any account's, an administrator's included: the key is only ever made for an
        administrator (core.sync.join_recovery), and this is the way back for one who forgot
        their password with nobody to reset it (README, "Security notes").
        """
        v.password(new_password)
        v.username(username)
        chain = self.keychain()
        keys = chain.unlock_with_recovery_key(recovery_key)
        opened_here = not self.is_unlocked
        if opened_here:
            self._open(chain, keys)
        else:
            keys.close()
        previous = self._records
        try:
            self._records = ClinicRecords(self._require_db(), RECOVERY_ACTOR, self.kdf_params)
            self.reset_password(username, new_password)
        finally:
            self._records = previous
            if opened_here:
                self.lock()

    def new_recovery_key(self) -> str:
        """Admin only: replace this workstation's recovery slot; returns the new key, to be
        shown once (the old key stops opening the workstation at once: the command line,
        which prints it). Audited. The app confirms first: :meth:`stage_recovery_key`."""
        records = self.require("keys.recovery_replace")
        assert self._keys is not None
        chain = self.keychain()
        # Audited first: if replacing the slot then fails, the old key still works, and the
        # log shows an attempt rather than missing a change.
        with records.db.write(records.actor, "keys.recovery_replace", "workstation", chain.db_id):
            pass
        return chain.new_recovery_key(self._keys)

    def stage_recovery_key(self) -> tuple[str, str]:
        """Admin only: a new recovery key that is not in force yet (the current one still
        works); returns it, to be shown once, and the id that :meth:`confirm_recovery_key`
        puts in force once the person confirms storing it (see
        :meth:`Keychain.stage_recovery_key`)."""
        self.require("keys.recovery_replace")
        assert self._keys is not None
        return self.keychain().stage_recovery_key(self._keys)

    def confirm_recovery_key(self, slot_id: str) -> None:
        """Admin only: the staged recovery key ``slot_id`` replaces the current one, which
        stops working. Audited (``keys.recovery_replace``) before the key file changes, so a
        failure shows as an attempt; asked again once in force, it changes nothing. Raises
        NoSlotError when the staged key was withdrawn (the previous key still works)."""
        records = self.require("keys.recovery_replace")
        chain = self.keychain()
        staged = chain.pending_recovery
        if staged is not None and staged.slot_id == slot_id:
            with records.db.write(
                records.actor, "keys.recovery_replace", "workstation", chain.db_id
            ):
                pass
        chain.confirm_recovery_key(slot_id)

    def discard_recovery_key(self, slot_id: str | None = None) -> bool:
        """Withdraw a staged recovery key nobody confirmed (only ``slot_id``, when given):
        the current one stays in force. Needs no sign-in (the key file only loses a slot
        that opens nothing yet). Returns True if one was withdrawn."""
        if not self.keyfile_path.exists():
            return False
        return self.keychain().discard_recovery_key(slot_id)

    def rekey(self) -> None:
        """Admin only: re-encrypt the database under a fresh key (crash-safe: the new key is
        staged first). Audited."""
        records = self.require("keys.rekey")
        assert self._keys is not None
        chain = self.keychain()
        with records.db.write(records.actor, "keys.rekey", "workstation", chain.db_id):
            pass
        new_key = chain.stage_new_db_key(self._keys)
        self._require_db().rekey(new_key)
        chain.commit_new_db_key(self._keys)
