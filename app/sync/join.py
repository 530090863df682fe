"""Joining an existing clinic from the first-run wizard: core's one join workflow
(:func:`core.sync.join.join_clinic`, shared with ``careline enroll`` and ``careline pair
join``), for a computer that holds no clinic yet. Runs on the worker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from core.errors import CarelineError
from core.records.workstation import Workstation
from core.store.errors import StoreError
from core.sync import join
from core.sync.join import (
    DISCARDED,
    FirstSyncError,
    JoinRequest,
    JoinResult,
    PendingJoin,
    discard_unfinished_join,
    discarded_words,
    pending_join,
)
from core.sync.session import SyncReport

__all__ = [
    "DISCARDED",
    "FirstSyncError",
    "JoinRequest",
    "JoinResult",
    "PendingJoin",
    "discard_unfinished_join",
    "discarded_words",
    "join_clinic",
    "kept_join",
]

log = logging.getLogger(__name__)


def kept_join(ws: Workstation) -> PendingJoin | None:
    """A person's join kept here after its first sync failed (the wizard offers Try
    again), or None: none, a silent one, or a key file that cannot be read (the sign-in
    screen then says what is wrong with it)."""
    try:
        pending = pending_join(ws)
    except CarelineError as exc:
        log.warning("an unfinished join here cannot be read: %s", exc)
        return None
    return pending if pending is not None and pending.attended else None


def join_clinic(
    ws: Workstation,
    request: JoinRequest,
    on_progress: Callable[[SyncReport], object] | None = None,
) -> JoinResult:
    """Create this workstation's replica of an existing clinic; returns its device ID and
    recovery key, made only for an administrator, or why there is none
    (``JoinResult.recovery``, core/sync/join_recovery.py).

    ``on_progress`` is called on the worker after every page or batch of the first
    download. Leaves the workstation locked. On failure nothing of the attempt is left,
    unless the server had accepted the code: then the enrollment is kept
    (:func:`core.sync.join.pending_join`) and the next call with the same user name and
    password finishes it, or :func:`discard_unfinished_join` removes it.
    """
    if ws.is_initialized() and not join.first_sync_pending(ws):
        # The first run only ever makes a new replica; never join into existing data.
        raise StoreError(f"a clinic already exists in {ws.data_dir}; refusing to overwrite")
    return join.join_clinic(ws, request, on_progress)
