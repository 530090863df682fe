"""Joining an existing clinic: the one workflow behind ``careline enroll``, ``careline pair
join`` and the first-run wizard's "Join an existing clinic".

Through the server: redeem a one-time enrollment code (:func:`core.sync.enroll.enroll`),
keep the device credential, first sync. Through a LAN peer: redeem the peer's pairing code
and first sync over mutual TLS (:func:`core.sync.lan.pairing.pair_and_sync`).

On an empty data folder the local replica is made first (``Workstation.prepare_join``:
key file and empty encrypted database for the joining person). Through the server, the
person's user name and password are then checked against the account the server holds
before the code is spent (:func:`_check_account_before_code`): a typo costs no code and
leaves no device enrolled. Once the records have arrived, the person's account is checked
again: it must have come with them (a server older than the first check is checked only
then). If anything fails
before the server accepts the code, what this attempt made is removed (the key file, the
database and its side files, the OS-keyring secret, the folder if it was made), so the next
attempt starts clean. Nothing that existed before is touched. A workstation that already
holds a clinic keeps all of it: a failed first sync there is finished by the next sync.

Once the server has accepted an enrollment code, the code's use is spent, so a failed first
sync keeps the replica, its device credential (in the encrypted database, behind the joining
person's password slot, or the OS-keyring slot alone for a silent join) and a marker file
(:data:`PENDING_MARKER`). An attended replica gets its OS-keyring slot only once the
person's account is checked (:func:`_check_account`): until then nothing but the join opens
it (``Workstation.unfinished_join_by``; the CLI refuses other commands). The next attempt on
that folder finishes the first sync with the credential it holds, and no code:
:func:`join_clinic` with the same user name and password (the wizard's Try again, the app's
next start, ``careline enroll`` run again), or :func:`join_unattended` for a silent join
(the app's next start or Retry, ``careline enroll --machine`` run again). It never mixes: a
resume names the same server (and CA, if one is given) as the kept credential, an attended
attempt is resumed by the person whose password opens it only, a silent one by the silent
path only. :func:`discard_unfinished_join` removes a kept attempt on request (the wizard's
Start over, ``careline enroll --discard-unfinished``). A LAN pairing is not kept: its code
is shown again on the peer. An attended join whose records hold no account for the person is
removed, as before: a replica of the clinic is not left behind a password the clinic does
not know.

A new replica gets a recovery key only when the joining person, signed in with the account
that arrived, is an administrator (core.sync.join_recovery): the key resets any account's
password, so it is never made for, nor shown to, anyone else. Their replica has no recovery
slot until an administrator makes one.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from core.crypto.kdf import verify_password
from core.errors import CarelineError
from core.keys import keyring_store
from core.keys.keychain import Keychain, lock_path_for
from core.records import op_trust, replication
from core.records.demo import refuse_if_demo
from core.records.errors import AuthenticationError, SecondFactorRequiredError
from core.records.workstation import JOIN_PENDING_MARKER, WORKSTATION_ACTOR, Workstation
from core.store.errors import StoreError
from core.sync.backup import restored_server_pin
from core.sync.ca_pin import ca_for_fingerprint, colon_hex, pem_fingerprint
from core.sync.enroll import (
    EnrollmentError,
    ServerCredential,
    account_before_enrollment,
    adopt_credential,
    enroll,
    load_credential,
)
from core.sync.join_recovery import (
    EXISTING_REPLICA,
    SECOND_FACTOR_PENDING,
    SILENT_JOIN,
    RecoveryAtJoin,
)
from core.sync.join_recovery import for_signed_in as recovery_for_signed_in
from core.sync.lan.identity import merge_revoked
from core.sync.lan.pairing import pair_and_sync_first
from core.sync.session import SyncError, SyncReport, sync
from core.sync.transport import TransportError

log = logging.getLogger(__name__)

# SQLite/SQLCipher files that travel with a database file.
_SIDE_FILES = ("-wal", "-shm", "-journal")
# In the data folder from a join's accepted enrollment until its first sync and account
# check are done; it holds nothing (the credential is in the encrypted database).
PENDING_MARKER = JOIN_PENDING_MARKER
_JOINING = "join a clinic (enroll with a clinic server or pair with a LAN workstation)"


class NoAccountError(AuthenticationError):
    """The clinic's records arrived, but hold no account with this name and password."""

    plain_template = (
        "the clinic has no account {detail} with this password; ask your administrator to "
        "create your account first (the enrollment or pairing code was used: ask for a new one)"
    )


class AccountCheckedBeforeCodeError(NoAccountError):
    """The server holds no account with this name and password, found before the code was
    spent (:func:`_check_account_before_code`): the same code can be used again."""

    plain_template = (
        "the clinic has no account {detail} with this password; check the user name and "
        "password and try again (the enrollment code was not used)"
    )


class AccountDeactivatedBeforeCodeError(NoAccountError):
    """The password is right, but the clinic's administrator deactivated the account; found
    before the code was spent."""

    plain_template = (
        "the account {detail} has been deactivated by the clinic's administrator; ask them "
        "to reactivate it (the enrollment code was not used)"
    )


class FirstSyncError(CarelineError):
    """Enrollment or pairing worked, but the first sync did not; the message says what
    happened to this workstation and what to do next. ``device_id``: the device the
    server enrolled (listed by ``careline-server admin device list``), when enrolled."""

    def __init__(self, message: str, device_id: str | None = None) -> None:
        super().__init__(message)
        self.device_id = device_id


class FirstSyncUnfinishedError(FirstSyncError):
    """A join was enrolled and kept; its next attempt finishes the first sync."""


class UnfinishedJoinError(CarelineError):
    """This folder holds another unfinished join (another server, another way of joining):
    finish that one or discard it first; nothing was sent and nothing changed."""


@dataclass(frozen=True)
class PendingJoin:
    """An unfinished join kept in a data folder (:func:`pending_join`)."""

    attended: bool  # a person's password opens it (else the OS keyring alone: silent)
    username: str  # the person whose password opens it ("" for a silent join)


@dataclass(frozen=True)
class JoinRequest:
    """Who joins, and either the server fields or the LAN peer fields."""

    username: str
    # Secrets stay out of repr(): a log line or error report printing the request.
    password: str | None = field(default=None, repr=False)  # only to make a new replica
    server_url: str = ""
    enroll_code: str = field(default="", repr=False)
    ca_pem: str | None = None
    # Instead of (or to check) ``ca_pem``: the SHA-256 of the server's CA certificate (64
    # lowercase hex digits); the certificate the server presents with it is pinned before
    # the code is sent (core.sync.ca_pin).
    ca_fingerprint: str | None = None
    device_name: str | None = None  # how the server lists this workstation (its host name)
    pair_code: str = field(default="", repr=False)
    peer: str = ""  # HOST:PORT of the peer's sync listener (pairing: PORT+1)
    # Without ``peer``: the peers seen over mDNS (HOST:PORT), each asked in turn until one
    # proves it knows the code; ``on_peer_skipped`` is told of each that did not.
    peers_seen: tuple[str, ...] = ()
    on_peer_skipped: Callable[[str], object] | None = field(default=None, compare=False)

    @property
    def via_peer(self) -> bool:
        """True for a LAN peer, False for the server."""
        return bool(self.peer or self.peers_seen)


@dataclass(frozen=True)
class JoinResult:
    """What joining gave this workstation."""

    device_id: str
    clinic_name: str  # "" through a LAN peer (the pairing reply carries no clinic name)
    records: int  # held once the first sync finished (see _first_sync)
    # A new replica's recovery key, to be shown once, only to an administrator; else None
    # and ``recovery_key_reason`` says why (core.sync.join_recovery).
    recovery_key: str | None
    recovery_key_reason: str | None = None

    @property
    def recovery(self) -> RecoveryAtJoin:
        """The recovery key, or why there is none (with the words for the person)."""
        return RecoveryAtJoin(self.recovery_key, self.recovery_key_reason)


Progress = Callable[[SyncReport], object]


def first_sync_pending(ws: Workstation) -> bool:
    """True when a join here was enrolled but its first sync is unfinished: the next
    :func:`join_clinic` or :func:`join_unattended` finishes it without a code."""
    return (ws.data_dir / PENDING_MARKER).exists() and ws.is_initialized()


def pending_join(ws: Workstation) -> PendingJoin | None:
    """The unfinished join here, if any (:func:`first_sync_pending`), and whose it is: the
    key file's password slot names the person of an attended join (read without opening
    anything)."""
    if not first_sync_pending(ws):
        return None
    users = Keychain.load(ws.keyfile_path).password_users()
    return PendingJoin(bool(users), users[0] if users else "")


DISCARDED = (
    "the unfinished join was removed from this computer (its records, device credential and "
    "key file); the device it enrolled stays listed on the server until an administrator "
    "revokes it ('careline-server admin device revoke ID'); join again with a new code"
)


def discarded_words(device_id: str | None) -> str:
    """:data:`DISCARDED`, naming the device to revoke when its ID is known here (the kept
    credential that holds it is removed, and while kept it is readable only behind the
    joining person's password); else where IT finds it."""
    if device_id is None:
        return DISCARDED.replace(
            "revoke ID')",
            "revoke ID', the ID as 'careline-server admin device list' shows it beside this "
            "workstation's name)",
        )
    return DISCARDED.replace("device it enrolled", f"device it enrolled ({device_id})").replace(
        "revoke ID'", f"revoke {device_id}'"
    )


def discard_unfinished_join(ws: Workstation) -> bool:
    """Remove a kept, unfinished join (:func:`first_sync_pending`): the replica and its side
    files, the device credential in it, the key file and its OS-keyring secret, the marker.
    The data folder stays. Returns False (and touches nothing) when there is none: a
    finished clinic is never removed here. See :data:`DISCARDED` for what is left."""
    if not first_sync_pending(ws):
        return False
    _Made(folder_existed=True, existed=frozenset()).remove(ws)
    return True


def join_clinic(
    ws: Workstation, request: JoinRequest, on_progress: Progress | None = None
) -> JoinResult:
    """Join the clinic named by ``request``; see the module docstring.

    A workstation that already holds a clinic must be unlocked by the caller and stays so;
    ops are audited as ``request.username``. On an empty folder ``request.password`` makes
    the new replica, which is left locked. ``on_progress`` is called after every page or
    batch of the first download. Raises the enrollment's or pairing's own error,
    :class:`FirstSyncError` or :class:`NoAccountError`.
    """
    # Refused before any code is redeemed (a used code is gone for good).
    refuse_if_demo(_JOINING, ws.data_dir, ws.database if ws.is_unlocked else None)
    pending = pending_join(ws)
    if pending is not None:
        return _resume_attended(ws, request, pending, on_progress)
    request = _pin_ca(request)  # before anything is made here, or sent
    if ws.is_initialized():
        return replace(_join(ws, request, on_progress), recovery_key_reason=EXISTING_REPLICA)
    if request.password is None:
        raise ValueError("a new replica needs the joining person's password")
    if not request.via_peer:
        # Before anything is made here (no key derived, no file written) or the code spent.
        _check_account_before_code(request, request.ca_pem)
    made = _Made.before(ws)
    try:
        ws.prepare_join(request.username, request.password)
        joined = _join(ws, request, on_progress, new_replica=True)
        recovery = _check_account(ws, request)
        result = replace(joined, recovery_key=recovery.key, recovery_key_reason=recovery.reason)
    except NoAccountError:
        made.remove(ws)
        raise
    except BaseException:
        if first_sync_pending(ws):
            ws.lock()  # enrolled (the code is spent), first sync unfinished: kept
        else:
            made.remove(ws)
        raise
    (ws.data_dir / PENDING_MARKER).unlink(missing_ok=True)  # none after a LAN pairing
    return result


def _pin_ca(request: JoinRequest) -> JoinRequest:
    """``request`` with the server's CA given by its fingerprint fetched and pinned
    (:func:`core.sync.ca_pin.ca_for_fingerprint`: nothing is sent to the server), or, with
    a CA certificate given too, checked against it; EnrollmentError if they differ or the
    server presents no certificate with that fingerprint (the code is not sent)."""
    expected = request.ca_fingerprint
    if expected is None or request.via_peer:
        return request
    if request.ca_pem is not None:
        if pem_fingerprint(request.ca_pem) != expected:
            raise EnrollmentError(
                "the CA certificate given does not have the SHA-256 fingerprint given "
                f"({colon_hex(expected)}); one of them is wrong",
                "ca_path",
            )
        return request
    pem = ca_for_fingerprint(
        request.server_url,
        expected,
        given_as="given",
        otherwise="give the server's CA certificate file instead",
    )
    return replace(request, ca_pem=pem)


def _check_account(ws: Workstation, request: JoinRequest) -> RecoveryAtJoin:
    """The joining person's account arrived with the records (a sign-in works, or asks for
    their two-factor code next); only then does the replica get its OS-keyring slot, and,
    if they are an administrator signed in, its recovery key (core.sync.join_recovery).
    Left locked. Returns the recovery key, or why there is none."""
    assert request.password is not None
    name = request.username.strip().lower()
    ws.lock()
    try:
        try:
            ws.sign_in(name, request.password)
            recovery = recovery_for_signed_in(ws)
        except SecondFactorRequiredError:
            # The password was right: the account exists. The person signs in with their
            # code afterwards, as at every sign-in; opened again (locked by the refusal) for
            # the keyring slot.
            ws.unlock_with_password(name, request.password)
            recovery = RecoveryAtJoin(None, SECOND_FACTOR_PENDING)
        except AuthenticationError:
            raise NoAccountError(name) from None
        # Until now only the person's password opened the replica: the keyring slot opens
        # it for anyone at this computer, right only once their account is proved here.
        ws.add_keyring_slot()
    finally:
        ws.lock()
    return recovery


def _resume_attended(
    ws: Workstation, request: JoinRequest, pending: PendingJoin, on_progress: Progress | None
) -> JoinResult:
    """Finish the first sync of a join enrolled earlier here, opened with the joining
    person's password; an administrator is then shown a new recovery key (as for a join
    that did not stop)."""
    if not pending.attended:
        raise UnfinishedJoinError(
            f"{ws.data_dir} holds a silent enrollment whose first sync is unfinished; finish "
            "it with 'careline enroll --machine' (or by starting Careline), or discard it "
            "with 'careline enroll --discard-unfinished'"
        )
    if request.via_peer or request.password is None:
        raise UnfinishedJoinError(
            f"{ws.data_dir} holds a join with a clinic server whose first sync is "
            "unfinished; finish it (the same user name and password, no new code) or "
            "discard it first"
        )
    try:
        ws.unlock_with_password(request.username, request.password)
    except AuthenticationError:
        raise AuthenticationError(
            "this computer's unfinished join opens only with the user name and password it "
            f"was started with ({pending.username})"
        ) from None
    try:
        actor = request.username.strip().lower()
        credential, records = _finish_first_sync(ws, request, actor, on_progress, _KEPT_ATTENDED)
        # A join kept by an earlier release has a recovery slot whose key was never shown:
        # gone, so that only a key made for an administrator below opens this replica.
        ws.keychain().drop_recovery_key()
    finally:
        ws.lock()
    try:
        recovery = _check_account(ws, request)
    except NoAccountError:
        discard_unfinished_join(ws)
        raise
    (ws.data_dir / PENDING_MARKER).unlink(missing_ok=True)
    return JoinResult(
        credential.device_id, credential.clinic_name, records, recovery.key, recovery.reason
    )


def join_unattended(
    ws: Workstation, request: JoinRequest, on_progress: Progress | None = None
) -> JoinResult:
    """Join the server's clinic with nobody at the keyboard (silent enrollment) into the
    empty data folder of ``ws``, which is left locked.

    The new database key is kept behind the OS-keyring slot alone
    (:meth:`Workstation.prepare_unattended_join`); without a keyring this refuses before the
    code is sent. The staff accounts arrive with the first sync, so any staff member can
    then sign in, and their first sign-in adds their own password slot. There is no
    recovery key yet: an administrator makes one after signing in. If anything fails
    before the server accepts the code, what this attempt made is removed (as
    :func:`join_clinic` does); a first sync that fails after it is finished by the next
    call (:class:`FirstSyncUnfinishedError`, :func:`first_sync_pending`).
    """
    refuse_if_demo(_JOINING, ws.data_dir)
    pending = pending_join(ws)
    if pending is not None:
        if pending.attended:
            raise UnfinishedJoinError(
                f"{ws.data_dir} holds a join started by {pending.username} whose first sync "
                "is unfinished; they finish it in Careline's set-up (or with 'careline "
                "enroll') with their password, or it is discarded with 'careline enroll "
                "--discard-unfinished' before enrolling silently"
            )
        return _finish_unattended(ws, request, on_progress)
    if ws.is_initialized():
        raise StoreError(f"a clinic already exists in {ws.data_dir}; nothing to enroll")
    made = _Made.before(ws)
    try:
        ws.prepare_unattended_join()
        unattended = JoinRequest(
            WORKSTATION_ACTOR,
            server_url=request.server_url,
            enroll_code=request.enroll_code,
            ca_pem=request.ca_pem,
            device_name=request.device_name,
        )
        result = _join(ws, unattended, on_progress, new_replica=True, attended=False)
        if not _has_staff(ws):
            raise FirstSyncError(
                "enrolled, but no staff account arrived with the clinic's records, so nobody "
                "could sign in here; nothing was kept on this computer"
            )
        ws.lock()
    except FirstSyncUnfinishedError:
        ws.lock()  # enrolled, first sync unfinished: kept for the next attempt
        raise
    except BaseException:
        made.remove(ws)
        raise
    (ws.data_dir / PENDING_MARKER).unlink(missing_ok=True)
    return replace(result, recovery_key_reason=SILENT_JOIN)


def _has_staff(ws: Workstation) -> bool:
    """Whether an active staff account arrived with the clinic's records."""
    return bool(ws.database.query("SELECT 1 FROM users WHERE active = 1 LIMIT 1"))


def _finish_first_sync(
    ws: Workstation,
    request: JoinRequest,
    actor: str,
    on_progress: Progress | None,
    next_step: str,
) -> tuple[ServerCredential, int]:
    """The first sync of a join enrolled earlier here (unlocked by the caller), with the
    device credential it keeps and no code; refused if ``request`` names another server or
    CA than the credential's. Returns the credential and the records held after it."""
    credential = load_credential(ws.database)
    if credential is None:
        raise FirstSyncUnfinishedError(
            f"{ws.data_dir} holds an unfinished enrollment without its device credential; "
            "discard it ('careline enroll --discard-unfinished') and enroll again with a new "
            "code"
        )
    _refuse_other_server(credential, request)
    joined_as = f"enrolled as device {credential.device_id}"
    records = _first_sync(ws, credential, actor, on_progress, joined_as, next_step)
    return credential, records


def _refuse_other_server(credential: ServerCredential, request: JoinRequest) -> None:
    """A resume goes to the server (and pinned CA) the code was spent with, never another."""
    url = request.server_url.strip().rstrip("/")
    other_url = bool(url) and url.lower() != credential.server_url.lower()
    pinned = (
        pem_fingerprint(credential.server_ca_pem) if credential.server_ca_pem is not None else None
    )
    given = {request.ca_fingerprint} if request.ca_fingerprint is not None else set()
    if request.ca_pem is not None:
        given.add(pem_fingerprint(request.ca_pem))
    other_ca = pinned is not None and bool(given - {pinned})
    if other_url or other_ca:
        what = f"the server at {url}" if other_url else "another server CA"
        raise UnfinishedJoinError(
            f"this computer holds an unfinished join with {credential.clinic_name} at "
            f"{credential.server_url}; {what} was not contacted. Finish that join (no new "
            "code is needed), or discard it first ('careline enroll --discard-unfinished', "
            "or Start over in Careline's set-up)"
        )


def _finish_unattended(
    ws: Workstation, request: JoinRequest, on_progress: Progress | None
) -> JoinResult:
    """The first sync of an unattended join enrolled earlier (:func:`first_sync_pending`),
    with the device credential it keeps; the folder is kept whatever happens."""
    ws.unlock_with_keyring()
    try:
        credential, records = _finish_first_sync(ws, request, WORKSTATION_ACTOR, on_progress, _KEPT)
        if not _has_staff(ws):
            raise FirstSyncUnfinishedError(
                "enrolled, but no staff account has arrived with the clinic's records, so "
                "nobody could sign in here; this workstation keeps its enrollment: once an "
                "administrator has added staff on the server, start Careline again"
            )
        (ws.data_dir / PENDING_MARKER).unlink(missing_ok=True)
    finally:
        ws.lock()
    return JoinResult(credential.device_id, credential.clinic_name, records, None, SILENT_JOIN)


def _join(
    ws: Workstation,
    request: JoinRequest,
    on_progress: Progress | None,
    new_replica: bool = False,
    attended: bool = True,
) -> JoinResult:
    """Enroll or pair, then the first sync; the result holds no recovery key (the caller's
    account check decides on one)."""
    db, actor = ws.database, request.username.strip().lower()
    joined_as = "paired with the workstation" if request.via_peer else "enrolled"
    try:
        if request.via_peer:
            joined = pair_and_sync_first(
                db,
                [request.peer] if request.peer else list(request.peers_seen),
                request.pair_code,
                actor,
                on_progress,
                request.on_peer_skipped,
            )
            return JoinResult(joined.identity.device_id, "", joined.records, None)
        server_pin = (
            request.ca_pem
            if request.ca_pem is not None
            else restored_server_pin(db, request.server_url)
        )
        credential = enroll(
            request.server_url,
            request.enroll_code,
            server_pin,
            request.device_name,
            op_trust.binding_for(db),
        )
        adopt_credential(db, credential, actor)
        if new_replica:
            (ws.data_dir / PENDING_MARKER).touch(mode=0o600)
    except (SyncError, TransportError) as exc:
        raise _first_sync_failed(joined_as, exc, _next_step(new_replica, False, attended)) from exc
    next_step = _next_step(new_replica, True, attended)
    joined_as = f"enrolled as device {credential.device_id}"
    records = _first_sync(ws, credential, actor, on_progress, joined_as, next_step)
    return JoinResult(credential.device_id, credential.clinic_name, records, None)


def _check_account_before_code(request: JoinRequest, server_pin: str | None) -> None:
    """Check the joining person's user name and password against the account the server
    holds before the code is spent, so that a typo costs nothing: no code used, no device
    left enrolled on the server, nothing downloaded. The password is checked here against
    the account's verifier; it is never sent. A server that predates the check answers
    None, and the account is checked once the records have arrived (:func:`_check_account`),
    as before."""
    assert request.password is not None
    name = request.username.strip().lower()
    account = account_before_enrollment(request.server_url, request.enroll_code, server_pin, name)
    if account is None:
        log.info("the server cannot check an account before enrollment; checked after")
        return
    try:
        matches = account.verifier is not None and verify_password(
            request.password, account.verifier
        )
    except ValueError:  # not an Argon2id verifier: refuse rather than guess
        raise EnrollmentError(
            "the server's answer about the account is malformed (not a password verifier); "
            "the code was not used"
        ) from None
    if not matches:
        raise AccountCheckedBeforeCodeError(name)
    if not account.active:
        raise AccountDeactivatedBeforeCodeError(name)


_REMOVED = "nothing was kept on this computer; ask for a new code and try again"
_NEXT_SYNC = "the next sync finishes receiving the clinic's records"
_KEPT = (
    "this workstation keeps its enrollment: start Careline again (or run 'careline enroll "
    "--machine' again) to finish receiving the clinic's records; no new code is needed"
)
_KEPT_ATTENDED = (
    "this computer keeps its enrollment: try again with the same user name and password "
    "(Try again, or start Careline again, or run 'careline enroll' again) to finish "
    "receiving the clinic's records; no new code is needed"
)


def _next_step(new_replica: bool, accepted: bool, attended: bool) -> str:
    """What a failed first sync leaves, in words: an existing replica's next sync finishes;
    a new one is removed before the server accepted the code, and kept for the next
    attempt after (attended: the joining person finishes it with their password; silent:
    the next silent attempt does)."""
    if not new_replica:
        return _NEXT_SYNC
    if not accepted:
        return _REMOVED
    return _KEPT_ATTENDED if attended else _KEPT


def _first_sync(
    ws: Workstation,
    credential: ServerCredential,
    actor: str,
    on_progress: Progress | None,
    joined_as: str,
    next_step: str,
) -> int:
    """The first sync with the clinic server; returns how many records this workstation
    holds once it has finished (its record states, each record once).

    That is the figure a person reading "the clinic's N records" expects, and it is true
    whichever way the records came. The session's own counts are not: a record stored by
    the snapshot (pages or an image) and changed after it arrives again as an op, so the
    snapshot's records plus the ops pulled counted it twice; and a first sync finished by a
    later attempt (the snapshot stored by the attempt that failed) pulls only what changed
    since, so it said 0. On a workstation that already held a clinic, its own records are
    counted too: the figure is what it holds, not what came over the network."""
    db = ws.database
    try:
        with contextlib.closing(credential.transport()) as server:
            sync(
                db,
                server,
                actor,
                # Devices the server revoked are refused on the LAN too.
                on_revoked=lambda serials: merge_revoked(db, serials, actor),
                on_progress=on_progress,
                clock_reference=True,
            )
    except (SyncError, TransportError) as exc:
        raise _first_sync_failed(joined_as, exc, next_step, credential.device_id) from exc
    return replication.records_held(db)


def _first_sync_failed(
    joined_as: str,
    exc: SyncError | TransportError,
    next_step: str,
    device_id: str | None = None,
) -> FirstSyncError:
    kind = FirstSyncUnfinishedError if next_step in (_KEPT, _KEPT_ATTENDED) else FirstSyncError
    message = f"{joined_as}, but the first sync failed: {exc.plain_words()}; {next_step}"
    return kind(message, device_id)


@dataclass(frozen=True)
class _Made:
    """Which of a replica's files existed before an attempt, so that only what the attempt
    made is removed after it failed."""

    folder_existed: bool
    existed: frozenset[Path]

    @staticmethod
    def paths(ws: Workstation) -> list[Path]:
        db = ws.db_path
        # The key file's lock file is made with it (core.keys.keychain).
        keyfile_lock = lock_path_for(ws.keyfile_path)
        # A refused sign-in in the attempt counts towards the account's sign-in delay.
        delays = ws.sign_in_delays.path
        return [ws.keyfile_path, keyfile_lock, db, delays, ws.data_dir / PENDING_MARKER] + [
            db.with_name(db.name + s) for s in _SIDE_FILES
        ]

    @classmethod
    def before(cls, ws: Workstation) -> _Made:
        existing = frozenset(p for p in cls.paths(ws) if p.exists())
        return cls(ws.data_dir.exists(), existing)

    def remove(self, ws: Workstation) -> None:
        ws.lock()
        if ws.keyfile_path not in self.existed and ws.keyfile_path.exists():
            self._forget_keyring_secret(ws.keyfile_path)
        for path in self.paths(ws):
            if path not in self.existed:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        if not self.folder_existed:
            with contextlib.suppress(OSError):  # not empty: something else lives there
                ws.data_dir.rmdir()

    @staticmethod
    def _forget_keyring_secret(keyfile: Path) -> None:
        # The keyring account is named by this attempt's random database id, so it is ours.
        try:
            chain = Keychain.load(keyfile)
            if any(slot.kind == "keyring" for slot in chain.slots):
                keyring_store.delete_secret(chain.keyring_account)
        except CarelineError as exc:
            log.warning("could not remove the OS-keyring secret of a failed join: %s", exc)
