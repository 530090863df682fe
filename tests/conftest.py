"""Fixtures shared by every test package."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.backend
import keyring.backends.fail
import pytest

from core.crypto.kdf import FAST_PARAMS
from core.records.workstation import Workstation

PASSWORD = "correct horse battery"


@pytest.fixture
def no_keyring() -> Iterator[None]:
    """The real 'no keyring here' backend, as on a headless Linux workstation."""
    previous = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.fail.Keyring())
    try:
        yield
    finally:
        keyring.set_keyring(previous)


@pytest.fixture
def workstation(tmp_path: Path, no_keyring: None) -> Iterator[Workstation]:
    """A new clinic, signed in as its admin, with cheap Argon2id parameters."""
    ws = Workstation(tmp_path / "data", kdf_params=FAST_PARAMS)
    ws.init("Riverside Clinic", "admin", "Ada Admin", PASSWORD)
    ws.sign_in("admin", PASSWORD)
    try:
        yield ws
    finally:
        ws.lock()
