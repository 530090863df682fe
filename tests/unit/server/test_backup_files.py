"""Which files of the embedded server's data folder go into the data backup as they are."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.keys.providers.local import KEY_FILE_NAME
from core.server.backup import ServerBackupError, _other_files, restore_server


def test_no_copy_of_the_master_key_reaches_the_data_backup(tmp_path: Path) -> None:
    # A key rotation or first start interrupted between writing its temporary file and
    # renaming it leaves the master key under another name: the data backup must hold
    # none of them, or it would carry its own key.
    for name in (KEY_FILE_NAME, ".master-keys-k2j4x", f".{KEY_FILE_NAME}-9f8e7d", "registry.db"):
        (tmp_path / name).write_bytes(b"secret")
    (tmp_path / "blobs").mkdir()
    (tmp_path / "blobs" / "ab12").write_bytes(b"sealed attachment")
    (tmp_path / "registry.key.json").write_text("{}")

    listed = sorted(name for name, _ in _other_files(tmp_path))

    assert listed == ["blobs/ab12", "registry.key.json"]


def test_a_server_restore_target_that_is_a_symbolic_link_is_refused_by_name(
    tmp_path: Path,
) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "data").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ServerBackupError, match="symbolic link"):
        restore_server(tmp_path / "none.clbackup", None, tmp_path / "data", "phrase")
