"""The workstation's side of chart attachments, without a server: the encrypted cache,
its size budget (never dropping a file waiting for upload), the chart list's order and
what it says about each file, and refusals that name the problem."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.records.errors import ValidationError
from core.records.workstation import Workstation
from core.sync.attachment_files import FileRefused
from core.sync.attachments import (
    HERE,
    PENDING,
    REMOTE,
    AttachmentProblem,
    Attachments,
    current_key,
)
from tests.attachment_content import as_named

MiB = 1024 * 1024


def _file(folder: Path, name: str, size: int) -> Path:
    path = folder / name
    path.write_bytes(as_named(name, os.urandom(size)))
    return path


def test_the_cache_budget_drops_uploaded_files_oldest_first_never_pending_ones(
    workstation: Workstation, tmp_path: Path
) -> None:
    patient = workstation.records.add_patient("Cache", "Carl", "1955-05-05").id
    files = Attachments(workstation.records, workstation.data_dir, cache_mb=2)
    first = files.add(patient, _file(tmp_path, "a.png", MiB), title="First", date="2026-01-02")
    second = files.add(patient, _file(tmp_path, "b.png", MiB), title="Second", date="2026-03-04")
    # Over the 2 MiB budget (ciphertext is a little larger), but both wait for upload: both kept.
    assert [a.availability for a in files.for_patient(patient)] == [PENDING, PENDING]
    for blob_id in files.pending():  # as if uploaded
        (files.folder / "pending" / blob_id).unlink()
    assert first.blob_id and second.blob_id
    os.utime(files.cache.path_for(first.blob_id), (1, 1))  # the least recently used
    assert files.evict() == 1
    listed = files.for_patient(patient)
    assert [(a.title, a.availability) for a in listed] == [("Second", HERE), ("First", REMOTE)]
    with pytest.raises(AttachmentProblem, match="First: available when connected"):
        files.open_to(first.id, tmp_path / "out.png")
    assert not (tmp_path / "out.png").exists()


def test_the_clinic_key_is_made_once_and_bad_input_is_refused(
    workstation: Workstation, tmp_path: Path
) -> None:
    patient = workstation.records.add_patient("Key", "Kim", "1980-01-01").id
    files = Attachments(workstation.records, workstation.data_dir)
    assert current_key(workstation.records) == current_key(workstation.records)
    with pytest.raises(FileRefused, match="no file"):
        files.add(patient, tmp_path / "missing.pdf", title="Missing")
    with pytest.raises(ValidationError):
        files.add(patient, _file(tmp_path, "c.pdf", 10), title="Later", date="2999-01-01")
    assert files.for_patient(patient) == []
    # Refused before anything is encrypted: no blob left waiting for an upload that no
    # record refers to (the budget never drops a pending one).
    assert files.pending() == []
    assert not [p for p in files.folder.rglob("*") if p.is_file()]
