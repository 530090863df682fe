"""Where an unattended command reads its secret from a file: messages name where the file
was given (the workstation's CARELINE_PASSWORD_FILE, the server's --passphrase-file)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.cli.passwords import read_password
from core.config.settings import ConfigError


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes (Windows: the file's ACLs)")
def test_a_passphrase_file_others_may_read_is_warned_of_by_its_own_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "passphrase"
    secret.write_text("correct horse battery\n", encoding="utf-8")
    secret.chmod(0o644)
    assert read_password(False, secret, "--passphrase-file") == "correct horse battery"
    err = capsys.readouterr().err
    assert err.startswith("careline: warning: --passphrase-file: other users of this computer")
    assert "CARELINE_PASSWORD_FILE" not in err
    secret.chmod(0o600)
    assert read_password(False, secret, "--passphrase-file") == "correct horse battery"
    assert capsys.readouterr().err == ""


def test_an_empty_passphrase_file_is_refused_by_its_own_option(tmp_path: Path) -> None:
    empty = tmp_path / "passphrase"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^--passphrase-file: .* is empty$"):
        read_password(False, empty, "--passphrase-file")
