"""The Windows registry reader against a real registry (the Windows MSI workflow runs it).

Skipped off Windows: there is no registry to read here, and a stand-in ``winreg`` would only
test itself. `.github/workflows/windows-msi.yml` runs this file on a Windows runner (as an
administrator, who may write HKLM) after the silent install.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from core.config import windows_registry

pytestmark = pytest.mark.skipif(sys.platform != "win32", reason="reads the Windows registry")

TEST_KEYS = (r"SOFTWARE\Policies\CarelineTest", r"SOFTWARE\CarelineTest")


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Values under two throwaway HKLM keys, read in the reader's own order, then deleted."""
    monkeypatch.setattr(windows_registry, "KEYS", TEST_KEYS)
    _write_test_values()
    try:
        yield
    finally:
        _delete_test_keys()


def _write_test_values() -> None:
    if sys.platform == "win32":  # the module mark skips elsewhere; the check also tells mypy
        import winreg

        policy, msi = TEST_KEYS
        with winreg.CreateKey(winreg.HKEY_LOCAL_MACHINE, msi) as key:
            winreg.SetValueEx(key, "server_url", 0, winreg.REG_SZ, "https://msi.example:8443")
            winreg.SetValueEx(key, "enroll_code", 0, winreg.REG_SZ, "MSI-CODE")
        with winreg.CreateKey(winreg.HKEY_LOCAL_MACHINE, policy) as key:
            winreg.SetValueEx(key, "server_url", 0, winreg.REG_SZ, "https://policy.example:8443")
            locked = ["server_url", "auto_lock_minutes"]
            winreg.SetValueEx(key, "locked", 0, winreg.REG_MULTI_SZ, locked)
            winreg.SetValueEx(key, "auto_lock_minutes", 0, winreg.REG_EXPAND_SZ, "5")


def _delete_test_keys() -> None:
    if sys.platform == "win32":
        import winreg

        for path in TEST_KEYS:
            winreg.DeleteKey(winreg.HKEY_LOCAL_MACHINE, path)


@pytest.mark.usefixtures("registry")
def test_group_policy_wins_over_the_msi_values_and_lists_are_joined() -> None:
    found = windows_registry.read_values(
        ["server_url", "enroll_code", "locked", "auto_lock_minutes", "device_name"]
    )
    policy, msi = TEST_KEYS
    assert found["server_url"] == ("https://policy.example:8443", "HKLM\\" + policy)
    assert found["enroll_code"] == ("MSI-CODE", "HKLM\\" + msi)
    assert found["locked"] == ("server_url,auto_lock_minutes", "HKLM\\" + policy)
    assert found["auto_lock_minutes"] == ("5", "HKLM\\" + policy)
    assert "device_name" not in found  # set nowhere: absent, not empty


def test_the_values_the_msi_wrote_are_read() -> None:
    """After the workflow's silent install (SERVER_URL, ENROLL_CODE on msiexec's command line)."""
    found = windows_registry.read_values(["server_url", "enroll_code"])
    if not found:
        pytest.skip("Careline's MSI is not installed on this machine")
    assert found["server_url"][0] == "https://careline.test:8443"
    assert found["enroll_code"] == ("TEST-CODE", "HKLM\\SOFTWARE\\Careline")
