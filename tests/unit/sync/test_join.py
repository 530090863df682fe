"""core.sync.join.join_clinic: the one join workflow of the CLI and the first-run wizard.
Real TLS listeners on 127.0.0.1 and real SQLCipher databases."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import secretstorage

from core.crypto.kdf import FAST_PARAMS
from core.keys import keyring_store
from core.records.workstation import Workstation
from core.sync.join import FirstSyncError, JoinRequest, NoAccountError, join_clinic
from core.sync.lan import identity as lan_id
from core.sync.lan.pairing import PairingError
from core.sync.lan.server import PeerServer
from tests.conftest import PASSWORD
from tests.services import free_port_pair


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_joins_a_new_replica_through_a_peer_and_checks_the_account(
    workstation: Workstation, tmp_path: Path
) -> None:
    workstation.records.add_patient("Lovelace", "Ada", "1915-12-10")
    identity = lan_id.ensure_identity(workstation.database, "admin")
    code = lan_id.new_pair_code(workstation.database, "admin")
    joiner = Workstation(tmp_path / "joiner", kdf_params=FAST_PARAMS)
    seen: list[int] = []
    with PeerServer(workstation.database, identity, "127.0.0.1", free_port_pair()) as server:
        result = join_clinic(
            joiner,
            JoinRequest("Admin", PASSWORD, pair_code=code, peer=f"127.0.0.1:{server.port}"),
            lambda report: seen.append(report.snapshot_records + report.pulled),
        )
    assert result.recovery_key and result.records > 0 and seen
    assert not joiner.is_unlocked  # left locked, for the person to sign in
    joiner.sign_in("admin", PASSWORD)
    try:
        assert [p.family for p in joiner.records.search_patients("Lovelace")] == ["Lovelace"]
    finally:
        joiner.lock()


def test_a_failed_first_sync_removes_only_what_the_attempt_made(
    workstation: Workstation, tmp_path: Path
) -> None:
    identity = lan_id.ensure_identity(workstation.database, "admin")
    folder = tmp_path / "joiner"
    folder.mkdir()
    (folder / "careline.toml").write_text("auto_lock_minutes = 5\n")
    (folder / "notes.txt").write_text("the clinic's wifi password is on the fridge\n")
    before = files(folder)
    joiner = Workstation(folder, kdf_params=FAST_PARAMS)
    port = free_port_pair()
    code = lan_id.new_pair_code(workstation.database, "admin")
    # Pairing answers on PORT+1; nothing answers on the sync port.
    with (
        PeerServer(workstation.database, identity, "127.0.0.1", 0, pairing_port=port + 1),
        pytest.raises(FirstSyncError, match="nothing was kept on this computer") as failed,
    ):
        join_clinic(
            joiner, JoinRequest("admin", PASSWORD, pair_code=code, peer=f"127.0.0.1:{port}")
        )
    assert "cannot reach the peer" in str(failed.value)
    assert files(folder) == before
    assert not joiner.is_initialized() and not joiner.is_unlocked


def test_a_clinic_without_the_account_leaves_nothing(
    workstation: Workstation, tmp_path: Path
) -> None:
    identity = lan_id.ensure_identity(workstation.database, "admin")
    code = lan_id.new_pair_code(workstation.database, "admin")
    folder = tmp_path / "joiner"
    joiner = Workstation(folder, kdf_params=FAST_PARAMS)
    with (
        PeerServer(workstation.database, identity, "127.0.0.1", free_port_pair()) as server,
        pytest.raises(NoAccountError) as refused,
    ):
        join_clinic(
            joiner,
            JoinRequest("ghost", PASSWORD, pair_code=code, peer=f"127.0.0.1:{server.port}"),
        )
    assert refused.value.plain_words().startswith("the clinic has no account ghost")
    assert not folder.exists()  # the attempt made the folder, so it went too


def test_an_existing_clinic_keeps_everything_when_joining_fails(
    workstation: Workstation, tmp_path: Path
) -> None:
    # A second clinic, unlocked, tries to pair with a peer whose sync port is unreachable.
    other = Workstation(tmp_path / "other", kdf_params=FAST_PARAMS)
    other.init("Harbour Clinic", "admin", "Ada Admin", PASSWORD)
    other.sign_in("admin", PASSWORD)
    other.records.add_patient("Seacole", "Mary", "1905-11-23")
    identity = lan_id.ensure_identity(workstation.database, "admin")
    port = free_port_pair()
    try:
        with (
            PeerServer(workstation.database, identity, "127.0.0.1", 0, pairing_port=port + 1),
            pytest.raises(PairingError),
        ):
            join_clinic(
                other, JoinRequest("admin", pair_code="AAAAA-BBBBB", peer=f"127.0.0.1:{port}")
            )
        code = lan_id.new_pair_code(workstation.database, "admin")
        with (
            PeerServer(workstation.database, identity, "127.0.0.1", 0, pairing_port=port + 1),
            pytest.raises(FirstSyncError, match="the next sync finishes"),
        ):
            join_clinic(other, JoinRequest("admin", pair_code=code, peer=f"127.0.0.1:{port}"))
        assert other.is_unlocked  # still the caller's to lock
        assert [p.family for p in other.records.search_patients("Seacole")] == ["Seacole"]
    finally:
        other.lock()
    assert other.db_path.exists() and other.keyfile_path.exists()


def careline_secrets() -> int:
    """How many Careline secrets the OS keyring holds."""
    with contextlib.closing(secretstorage.dbus_init()) as bus:
        collection = secretstorage.get_default_collection(bus)
        return len(list(collection.search_items({"service": keyring_store.SERVICE})))


def test_a_failed_join_removes_its_keyring_secret_and_no_other(
    secret_service: dict[str, str], tmp_path: Path
) -> None:
    clinic = Workstation(tmp_path / "clinic", kdf_params=FAST_PARAMS)
    clinic.init("Riverside Clinic", "admin", "Ada Admin", PASSWORD)
    assert clinic.keyring_note is None and careline_secrets() == 1
    clinic.sign_in("admin", PASSWORD)
    try:
        identity = lan_id.ensure_identity(clinic.database, "admin")
        code = lan_id.new_pair_code(clinic.database, "admin")
        port = free_port_pair()
        joiner = Workstation(tmp_path / "joiner", kdf_params=FAST_PARAMS)
        with (
            PeerServer(clinic.database, identity, "127.0.0.1", 0, pairing_port=port + 1),
            pytest.raises(FirstSyncError),
        ):
            join_clinic(
                joiner, JoinRequest("admin", PASSWORD, pair_code=code, peer=f"127.0.0.1:{port}")
            )
    finally:
        clinic.lock()
    assert careline_secrets() == 1  # the attempt's secret is gone; the clinic's is kept
    clinic.unlock_with_keyring()
    clinic.lock()
