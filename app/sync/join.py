"""Joining an existing clinic from the first-run wizard: core's one join workflow
(:func:`core.sync.join.join_clinic`, shared with ``careline enroll`` and ``careline pair
join``), for a computer that holds no clinic yet. Runs on the worker.
"""

from __future__ import annotations

from collections.abc import Callable

from core.records.workstation import Workstation
from core.store.errors import StoreError
from core.sync import join
from core.sync.join import JoinRequest
from core.sync.session import SyncReport

__all__ = ["JoinRequest", "join_clinic"]


def join_clinic(
    ws: Workstation,
    request: JoinRequest,
    on_progress: Callable[[SyncReport], object] | None = None,
) -> str:
    """Create this workstation's replica of an existing clinic; returns its recovery key.

    ``on_progress`` is called on the worker after every page or batch of the first
    download. Leaves the workstation locked; on failure nothing of the attempt is left.
    """
    if ws.is_initialized():
        # The first run only ever makes a new replica; never join into existing data.
        raise StoreError(f"a clinic already exists in {ws.data_dir}; refusing to overwrite")
    recovery = join.join_clinic(ws, request, on_progress).recovery_key
    assert recovery is not None  # a new replica always has one
    return recovery
