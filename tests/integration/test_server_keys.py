"""Re-encrypting clinic replicas under fresh data keys (resumable), and retiring key
versions only when nothing depends on them."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.records.clinic import ClinicRecords
from core.server.service import REPLICA, REPLICA_NEXT, ServerError
from core.store.database import DB_FILE_NAME, Database
from core.store.errors import DamagedDatabaseError, WrongKeyError
from tests.integration.server_fixtures import add_clinic, make_server


def _patient_count(server_dir: Path, clinic: str) -> int:
    server = make_server(server_dir)
    try:
        return ClinicRecords(server.replica(clinic), "t").count_patients()
    finally:
        server.close()


def test_reencrypt_changes_the_file_key_and_keeps_the_data(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    clinic = add_clinic(server, "Rekeyed")
    records = ClinicRecords(server.replica(clinic), "server-admin")
    records.add_patient("Kept", "Safe", "1970-01-01")
    old_key = server._data_key(clinic, REPLICA)
    old_wrapped = server.registry.data_key(clinic, REPLICA)
    result = server.reencrypt_replicas()
    assert result == {"reencrypted": [clinic]}
    assert server.registry.data_key(clinic, REPLICA) != old_wrapped
    assert server.registry.data_key(clinic, REPLICA_NEXT) is None
    server.close()
    path = tmp_path / "clinics" / clinic / DB_FILE_NAME
    with pytest.raises((WrongKeyError, DamagedDatabaseError)):
        Database.open(path, old_key)
    assert _patient_count(tmp_path, clinic) == 1


def test_interrupted_reencryption_is_finished_on_next_open(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    clinic = add_clinic(server, "Interrupted")
    ClinicRecords(server.replica(clinic), "server-admin").add_patient("Still", "Here", "1970-01-01")
    # Stage the next key and rekey, then "crash" before promoting it.
    new = server.provider.generate_data_key(clinic, REPLICA)
    server.registry.store_data_key(clinic, REPLICA_NEXT, new.wrapped, new.version)
    server.replica(clinic).rekey(new.key)
    server.close()
    assert _patient_count(tmp_path, clinic) == 1
    reopened = make_server(tmp_path)
    try:
        assert reopened.registry.data_key(clinic, REPLICA_NEXT) is None
        assert reopened.registry.data_key(clinic, REPLICA) == (new.wrapped, new.version)
    finally:
        reopened.close()


def test_retire_only_when_no_key_depends_on_the_version(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    clinic = add_clinic(server, "Retiring")
    ClinicRecords(server.replica(clinic), "server-admin").add_patient("Old", "Key", "1970-01-01")
    first = server.provider.current_version()
    with pytest.raises(ServerError, match=f"key version {first} still wraps"):
        server.retire_key_version(first)
    server.rotate_keys()
    assert server.retire_key_version(first) == {"retired": first}
    server.close()
    assert _patient_count(tmp_path, clinic) == 1
