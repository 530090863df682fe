"""Joining an existing clinic from the first-run wizard, with core's own building blocks.

Through the server, as ``careline enroll``: ``Workstation.prepare_join``, ``enroll``, store
the credential, first sync. Through a LAN peer, as ``careline pair join``: ``prepare_join``,
then core's ``pair_and_sync`` (redeem the pairing code at the peer's pairing listener on
``PORT+1``, keep the identity, first sync over mutual TLS). Either way the person's account
must arrive with the records: the password is checked against it before the wizard goes
on. If anything fails, the new (empty or partial) local replica is removed, so the first
run can start over.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from app.messages import describe_error, sentence
from core.records.errors import AuthenticationError
from core.records.workstation import Workstation
from core.sync.enroll import EnrollmentError, enroll, save_credential
from core.sync.lan import identity as lan_id
from core.sync.lan.pairing import PairingError, pair_and_sync, split_address
from core.sync.session import SyncError, SyncReport, sync
from core.sync.transport import TransportError

log = logging.getLogger(__name__)


class NoAccountError(Exception):
    """The clinic's records arrived, but hold no account with this name and password."""


@dataclass(frozen=True)
class JoinRequest:
    """What the join page collected: either the server fields or the LAN peer fields."""

    username: str
    password: str
    server_url: str = ""
    enroll_code: str = ""
    ca_pem: str | None = None
    device_name: str = "workstation"
    pair_code: str = ""
    peer: str = ""  # HOST:PORT of the peer's sync listener

    @property
    def via_peer(self) -> bool:
        """True for a LAN peer, False for the server."""
        return bool(self.peer)


def _remove_new_replica(ws: Workstation) -> None:
    ws.lock()
    for path in (ws.keyfile_path, ws.db_path):
        for leftover in path.parent.glob(path.name + "*"):
            with contextlib.suppress(OSError):
                leftover.unlink()


def join_clinic(
    ws: Workstation,
    request: JoinRequest,
    on_progress: Callable[[SyncReport], object] | None = None,
) -> str:
    """Create this workstation's replica of an existing clinic; returns its recovery key.

    Runs on the worker (``on_progress`` is called there, after every page or batch of the
    first download). Leaves the workstation locked.
    """
    recovery = ws.prepare_join(request.username, request.password)
    user = request.username.strip().lower()
    try:
        db = ws.database
        if request.via_peer:
            host, port = split_address(request.peer)
            pair_and_sync(db, host, port, request.pair_code, user, on_progress)
        else:
            credential = enroll(
                request.server_url, request.enroll_code, request.ca_pem, request.device_name
            )
            save_credential(db, credential)
            server = credential.transport()
            try:
                sync(
                    db,
                    server,
                    user,
                    on_revoked=lambda serials: lan_id.merge_revoked(db, serials, user),
                    on_progress=on_progress,
                )
            finally:
                server.close()
        ws.lock()
        try:
            ws.sign_in(request.username, request.password)
        except AuthenticationError:
            raise NoAccountError(user) from None
        ws.lock()
    except BaseException:
        _remove_new_replica(ws)
        raise
    return recovery


def describe_join_error(exc: BaseException) -> str:
    """A plain sentence for the join page."""
    if isinstance(exc, NoAccountError):
        return (
            f"The clinic has no account {exc} with this password. Ask your administrator to "
            "create your account first (the enrollment or pairing code was used; ask for a "
            "new one)."
        )
    if isinstance(exc, EnrollmentError | PairingError):
        return sentence(str(exc))
    if isinstance(exc, TransportError):
        return sentence(f"The clinic cannot be reached: {exc}")
    if isinstance(exc, SyncError):
        return sentence(f"Receiving the clinic's records failed: {exc}")
    return describe_error(exc)
