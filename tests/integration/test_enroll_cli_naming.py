"""``careline enroll`` as the wizard's join page: the server's CA pinned by its SHA-256
fingerprint (``--ca-fingerprint``), the workstation named (``--device-name``), both checked
before anything is sent. Real processes, a real server over TLS on 127.0.0.1."""

from __future__ import annotations

import subprocess
from pathlib import Path

from core.sync.ca_pin import colon_hex, pem_fingerprint
from tests.conftest import PASSWORD
from tests.integration.server_fixtures import add_clinic, live_server
from tests.integration.test_cli import careline


def _enroll(folder: Path, url: str, code: str, *more: str) -> subprocess.CompletedProcess[str]:
    return careline(
        folder, "--password-stdin", "--user", "admin", "enroll", "--server", url,
        "--code-stdin", *more, stdin=f"{PASSWORD}\n{code}\n",
    )  # fmt: skip


def test_enroll_pins_the_ca_by_fingerprint_and_names_the_workstation(tmp_path: Path) -> None:
    with live_server(tmp_path / "server") as live:
        clinic = add_clinic(live.server, "Bay")
        code, _ = live.server.registry.issue_enroll_code(clinic, 10)
        # Checked first: nothing is sent, and the code keeps its use.
        cut = _enroll(tmp_path / "a", live.url, code, "--ca-fingerprint", "3F:2A:9C...")
        assert cut.returncode == 2
        assert cut.stderr == (
            "careline: error: --ca-fingerprint: that is not a whole SHA-256 fingerprint: it "
            "ends in “...”, so it was cut short (6 hex digits of 64)\n"
        )
        long_name = _enroll(tmp_path / "a", live.url, code, "--device-name", "x" * 65)
        assert long_name.returncode == 2
        assert "--device-name: the workstation name is 65 characters long" in long_name.stderr
        wrong = _enroll(tmp_path / "a", live.url, code, "--ca-fingerprint", "AB" * 32)
        assert wrong.returncode == 1
        assert f"({colon_hex('ab' * 32)}; it presented " in wrong.stderr
        assert colon_hex(pem_fingerprint(live.ca_pem)) in wrong.stderr
        assert live.server.registry.code_clinic(code) == clinic

        fingerprint = colon_hex(pem_fingerprint(live.ca_pem))
        joined = _enroll(tmp_path / "a", live.url, code, "--ca-fingerprint", fingerprint,
                         "--device-name", "Front desk 2")  # fmt: skip
        assert joined.returncode == 0, joined.stderr
        (device,) = live.server.registry.devices(clinic)
        assert device.name == "Front desk 2"
        assert joined.stdout.startswith(f"Enrolled as device {device.id} of Bay;")
