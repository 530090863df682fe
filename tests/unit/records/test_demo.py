"""The demo clinic's folder and marks: apart from the real clinic, and never syncing."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from core.crypto.kdf import FAST_PARAMS
from core.records import demo
from core.records.workstation import Workstation
from core.sync.enroll import ServerCredential, save_credential
from core.sync.join import JoinRequest, join_clinic
from core.sync.lan import identity as lan_id

PASSWORD = "correct horse battery"


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def made(tmp_path: Path, no_keyring: None) -> tuple[Path, demo.DemoClinic]:
    real = tmp_path / "careline"
    ws = Workstation(real, FAST_PARAMS)
    ws.init("Riverside Clinic", "admin", "Ada Admin", PASSWORD)
    ws.records.add_patient("Real", "Person", "1970-01-01")
    ws.lock()
    before = _snapshot(real)
    made = demo.create_demo(real, patients=12, kdf_params=FAST_PARAMS)
    assert _snapshot(real) == before  # the real clinic's folder is untouched
    return real, made


def test_the_demo_has_its_own_folder_beside_the_clinic(
    made: tuple[Path, demo.DemoClinic],
) -> None:
    real, clinic = made
    assert clinic.folder == real.parent / "careline-demo"
    assert not clinic.folder.is_relative_to(real)
    assert demo.is_demo_folder(clinic.folder) and not demo.is_demo_folder(real)
    assert "not real patients" in (clinic.folder / demo.MARKER_FILE).read_text(encoding="utf-8")
    ws = Workstation(clinic.folder, FAST_PARAMS)
    ws.sign_in(clinic.username, clinic.password)  # the published sign-in works
    try:
        assert ws.records.clinic_name() == demo.DEMO_CLINIC_NAME
        assert ws.records.count_patients() == 12
        assert demo.is_demo_database(ws.database)
        assert ws.keychain().password_users() == ["demo"]  # no OS-keyring slot
    finally:
        ws.lock()
    assert demo.open_demo(real) == demo.DemoClinic(clinic.folder, "demo", demo.DEMO_PASSWORD, None)
    # A second demo is not written over the first.
    with pytest.raises(demo.DemoClinicError, match="already holds a clinic"):
        demo.create_demo(real, patients=3, kdf_params=FAST_PARAMS)


def test_a_demo_never_enrolls_or_pairs(made: tuple[Path, demo.DemoClinic]) -> None:
    _, clinic = made
    ws = Workstation(clinic.folder, FAST_PARAMS)
    # Refused before any code is redeemed: the server address is never contacted.
    request = JoinRequest("demo", server_url="https://127.0.0.1:9", enroll_code="ABCD")
    with pytest.raises(demo.DemoClinicError, match=r"demo clinic .* cannot join a clinic"):
        join_clinic(ws, request)
    peer = JoinRequest("demo", pair_code="ABCD", peer="127.0.0.1:9")
    with pytest.raises(demo.DemoClinicError, match="cannot join a clinic"):
        join_clinic(ws, peer)
    ws.sign_in(clinic.username, clinic.password)
    try:
        db = ws.database
        with pytest.raises(demo.DemoClinicError, match="cannot pair with a LAN workstation"):
            lan_id.ensure_identity(db, "demo")
        with pytest.raises(demo.DemoClinicError, match="cannot pair"):
            lan_id.new_pair_code(db, "demo")
        credential = ServerCredential("https://x", "d1", "c1", "Clinic", "t", "", "", "", None)
        with pytest.raises(demo.DemoClinicError, match="cannot enroll with a clinic server"):
            save_credential(db, credential)
        assert (
            db.query("SELECT key FROM meta WHERE key LIKE '%credential%' OR key LIKE 'lan%'") == []
        )
    finally:
        ws.lock()


def test_a_copied_demo_database_is_still_a_demo(
    tmp_path: Path, made: tuple[Path, demo.DemoClinic]
) -> None:
    # Without the marker file, the flag inside the database still refuses to sync.
    _, clinic = made
    copy = tmp_path / "copied"
    shutil.copytree(clinic.folder, copy)
    (copy / demo.MARKER_FILE).unlink()
    ws = Workstation(copy, FAST_PARAMS)
    ws.sign_in(clinic.username, clinic.password)
    try:
        request = JoinRequest("demo", server_url="https://127.0.0.1:9", enroll_code="ABCD")
        with pytest.raises(demo.DemoClinicError):
            join_clinic(ws, request)
    finally:
        ws.lock()
