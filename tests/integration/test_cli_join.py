"""``careline pair join`` when the first sync fails: no half-joined replica is left, the
message names the problem, and a retry with a new code works. Real processes, a real peer
(TLS listeners on 127.0.0.1) and real SQLCipher."""

from __future__ import annotations

import json
from pathlib import Path

from core.records.workstation import Workstation
from core.sync.lan import identity as lan_id
from core.sync.lan.server import PeerServer
from tests.conftest import PASSWORD
from tests.integration.test_cli import as_admin, careline
from tests.services import free_port_pair


def pair_join(data: Path, port: int, code: str) -> tuple[int, str, str]:
    result = careline(
        data, "--json", "--password-stdin", "--user", "admin",
        "pair", "join", "--peer", f"127.0.0.1:{port}", "--code", code, stdin=PASSWORD + "\n",
    )  # fmt: skip
    return result.returncode, result.stdout, result.stderr


def test_a_failed_first_sync_leaves_nothing_half_joined_and_a_retry_works(
    workstation: Workstation, tmp_path: Path
) -> None:
    workstation.records.add_patient("Lovelace", "Ada", "1915-12-10")
    identity = lan_id.ensure_identity(workstation.database, "admin")
    joiner = tmp_path / "joiner"
    joiner.mkdir()
    (joiner / "careline.toml").write_text("auto_lock_minutes = 5\n")  # was there before
    port = free_port_pair()

    # Pairing answers on PORT+1, but nothing answers on the sync port itself.
    code = lan_id.new_pair_code(workstation.database, "admin")
    with PeerServer(workstation.database, identity, "127.0.0.1", 0, pairing_port=port + 1):
        code_, out, err = pair_join(joiner, port, code)
    assert code_ == 1 and out == ""
    assert "paired with the workstation, but the first sync failed" in err
    assert f"cannot reach the peer 127.0.0.1:{port}" in err
    assert "nothing was kept on this computer; ask for a new code and try again" in err
    assert "Traceback" not in err
    # No half-joined replica; the settings file that was there before is untouched.
    assert sorted(p.name for p in joiner.iterdir()) == ["careline.toml"]
    assert (joiner / "careline.toml").read_text() == "auto_lock_minutes = 5\n"

    code = lan_id.new_pair_code(workstation.database, "admin")
    with PeerServer(workstation.database, identity, "127.0.0.1", port):
        code_, out, err = pair_join(joiner, port, code)
    assert code_ == 0, err
    joined = json.loads(out)
    assert joined["records"] > 0 and joined["recovery_key"]
    assert [p["family"] for p in as_admin(joiner, "patient", "search", "Lovelace")] == ["Lovelace"]


def test_a_refused_code_into_a_new_folder_leaves_no_folder(
    workstation: Workstation, tmp_path: Path
) -> None:
    identity = lan_id.ensure_identity(workstation.database, "admin")
    joiner = tmp_path / "new" / "joiner"
    with PeerServer(workstation.database, identity, "127.0.0.1", free_port_pair()) as server:
        code_, out, err = pair_join(joiner, server.port, "AAAAA-BBBBB")
    assert code_ == 1 and out == ""
    assert "the peer refused pairing" in err
    assert not joiner.exists()


def test_pair_join_takes_the_code_from_stdin(workstation: Workstation, tmp_path: Path) -> None:
    """``--code-stdin``: the code on the line after the password, out of the process list."""
    workstation.records.add_patient("Lovelace", "Ada", "1915-12-10")
    identity = lan_id.ensure_identity(workstation.database, "admin")
    code = lan_id.new_pair_code(workstation.database, "admin")
    joiner = tmp_path / "joiner"
    with PeerServer(workstation.database, identity, "127.0.0.1", free_port_pair()) as server:
        result = careline(
            joiner, "--json", "--password-stdin", "--user", "admin", "pair", "join",
            "--peer", f"127.0.0.1:{server.port}", "--code-stdin", stdin=f"{PASSWORD}\n{code}\n",
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["records"] > 0
    assert [p["family"] for p in as_admin(joiner, "patient", "search", "Lovelace")] == ["Lovelace"]
