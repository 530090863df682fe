"""The Windows MSI recipe (installers/windows), built here with msitools' wixl from a
stand-in for the frozen build (no Windows, no PyInstaller Windows build, no WiX toolset
here): the harvested file list installs every file, per machine, under Program Files,
with a Start-menu entry, the silent-install properties written to HKLM, and major
upgrades by a fixed upgrade code. The MSI's tables are read back with msiinfo and its
files extracted with msiextract."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core import __version__
from tests.integration.server_process import REPO

WINDOWS = REPO / "installers" / "windows"
WXS = WINDOWS / "careline.wxs"
HARVEST = WINDOWS / "harvest.py"
UPGRADE_CODE = "{8931422F-83A8-4A94-A67A-5B9CC4182E30}"
# Real WiX attributes wixl does not know (it warns and ignores them).
IGNORED_BY_WIXL = {"Secure", "Hidden"}

pytestmark = pytest.mark.skipif(
    (shutil.which("wixl") is None or shutil.which("msiinfo") is None)
    and not os.environ.get("CARELINE_REQUIRE_INSTALLER_TOOLS"),
    reason="msitools is not installed (Debian packages wixl and msitools; .ci/run installs them)",
)

STAND_IN = {
    # The programs installers/pyinstaller/careline.spec makes on Windows.
    "careline-app.exe": b"MZ desktop app, windowed",
    "careline.exe": b"MZ desktop app and CLI, console",
    "careline-server.exe": b"MZ clinic server",
    "_internal/python311.dll": b"MZ python",
    "_internal/PySide6/plugins/platforms/qwindows.dll": b"MZ qt platform",
    "_internal/core/reports/fonts/DejaVu Sans.ttf": b"font with a space in its name",
}


def _stand_in(root: Path) -> Path:
    """A folder shaped like dist/careline (PyInstaller one-folder) with small files."""
    for name, data in STAND_IN.items():
        path = root / "careline" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / "careline" / "_internal" / "empty").mkdir()  # nothing to install there
    return root / "careline"


def _harvest(tree: Path, out: Path) -> str:
    result = subprocess.run(
        [sys.executable, str(HARVEST), str(tree), "-o", str(out)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out.read_text()


def _table(msi: Path, name: str) -> list[dict[str, str]]:
    """One table of the MSI as rows (msiinfo export: header, types, key line, rows)."""
    text = subprocess.run(
        ["msiinfo", "export", str(msi), name], capture_output=True, text=True, check=True
    ).stdout
    lines = text.splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"), strict=False)) for line in lines[3:]]


@pytest.fixture(scope="module")
def msi(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Careline.msi built by wixl from the stand-in tree."""
    root = tmp_path_factory.mktemp("msi")
    tree = _stand_in(root)
    files = root / "careline-files.wxs"
    _harvest(tree, files)
    out = root / "Careline.msi"
    result = subprocess.run(
        [
            "wixl",
            "-a",
            "x64",
            "-D",
            "Wixl=1",
            "-D",
            f"Version={__version__}",
            "-D",
            f"SourceDir={tree.name}",
            "-o",
            str(out),
            str(WXS),
            str(files),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=root,
    )  # fmt: skip  (wixl wants a relative SourceDir)
    assert result.returncode == 0, result.stderr
    warned = set(re.findall(r"has no property named '(\w+)'", result.stderr))
    assert warned <= IGNORED_BY_WIXL, result.stderr
    assert "ERROR" not in result.stderr, result.stderr
    return out


def test_the_harvest_lists_each_file_once_with_stable_component_guids(tmp_path: Path) -> None:
    tree = _stand_in(tmp_path)
    first = _harvest(tree, tmp_path / "one.wxs")
    assert first == _harvest(tree, tmp_path / "two.wxs")  # the same tree, the same fragment
    guids = re.findall(r'Guid="([0-9A-F-]{36})"', first)
    assert len(guids) == len(set(guids)) == len(STAND_IN)
    for name in STAND_IN:
        assert f'Source="$(var.SourceDir)/{name}"' in first
    assert 'Name="empty"' not in first
    # A new file in the next release does not change the other files' components.
    (tree / "_internal" / "new.dll").write_bytes(b"MZ")
    later = _harvest(tree, tmp_path / "three.wxs")
    assert set(guids) < set(re.findall(r'Guid="([0-9A-F-]{36})"', later))


def test_the_harvest_refuses_a_missing_build_folder(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(HARVEST), str(tmp_path / "dist" / "careline"), "-o",
         str(tmp_path / "x.wxs")], capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "is not a folder (build the app first)" in result.stderr


def test_the_msi_installs_per_machine_and_upgrades_by_a_fixed_code(msi: Path) -> None:
    properties = {r["Property"]: r["Value"] for r in _table(msi, "Property")}
    assert properties["ALLUSERS"] == "1"
    assert properties["UpgradeCode"] == UPGRADE_CODE
    assert properties["ProductVersion"] == __version__
    assert properties["ProductName"] == "Careline"
    upgrades = {r["ActionProperty"]: r for r in _table(msi, "Upgrade")}
    assert set(upgrades) == {"WIX_UPGRADE_DETECTED", "WIX_DOWNGRADE_DETECTED"}
    assert all(r["UpgradeCode"] == UPGRADE_CODE for r in upgrades.values())
    summary = subprocess.run(
        ["msiinfo", "suminfo", str(msi)], capture_output=True, text=True, check=True
    ).stdout
    assert "Template: x64;1033" in summary
    directories = {r["Directory"]: r for r in _table(msi, "Directory")}
    assert directories["INSTALLDIR"]["Directory_Parent"] == "ProgramFiles64Folder"
    assert directories["INSTALLDIR"]["DefaultDir"] == "Careline"


def test_the_msi_holds_every_file_of_the_build(msi: Path, tmp_path: Path) -> None:
    files = {r["FileName"] for r in _table(msi, "File")}
    assert files == {Path(name).name for name in STAND_IN}
    subprocess.run(["msiextract", "-C", str(tmp_path), str(msi)], capture_output=True, check=True)
    for name, data in STAND_IN.items():
        assert (tmp_path / "Careline" / name).read_bytes() == data, name


def test_the_msi_has_a_start_menu_entry_for_the_app(msi: Path) -> None:
    [shortcut] = _table(msi, "Shortcut")
    assert shortcut["Directory_"] == "ProgramMenuFolder"
    assert shortcut["Name"] == "Careline"
    # The windowed app (no console window beside it), a file the MSI installs.
    assert shortcut["Target"] == "[INSTALLDIR]careline-app.exe"
    assert shortcut["WkDir"] == "INSTALLDIR"
    assert "careline-app.exe" in {r["FileName"] for r in _table(msi, "File")}


def test_silent_install_properties_become_hklm_values_the_app_reads(msi: Path) -> None:
    values = {r["Name"]: r for r in _table(msi, "Registry")}
    for prop, name in (("SERVER_URL", "server_url"),
                       ("SERVER_CA_FINGERPRINT", "server_ca_fingerprint"),
                       ("ENROLL_CODE", "enroll_code")):  # fmt: skip
        row = values[name]
        assert row["Root"] == "2", "HKEY_LOCAL_MACHINE"
        assert row["Key"] == "SOFTWARE\\Careline"
        assert row["Value"] == f"[{prop}]"  # REG_SZ: a formatted string, no # prefix
        component = {c["Component"]: c for c in _table(msi, "Component")}[row["Component_"]]
        assert int(component["Attributes"]) & 256, "the 64-bit registry view"


# Each remembered value: the public property IT sets on the command line, the property the
# registry search fills, the custom action copying one into the other.
REMEMBERED = (
    ("SERVER_URL", "REMEMBERED_SERVER_URL", "RestoreServerUrl"),
    ("SERVER_CA_FINGERPRINT", "REMEMBERED_SERVER_CA_FINGERPRINT", "RestoreServerCaFingerprint"),
)


def test_an_upgrade_keeps_the_server_values_unless_the_command_line_gives_new_ones(
    msi: Path,
) -> None:
    """`msiexec /i new.msi SERVER_CA_FINGERPRINT=<new>` writes the new fingerprint; with no
    value given, the one already in the registry is kept. AppSearch overwrites the property
    it searches into, so the search must not fill the public property itself: it fills a
    REMEMBERED_ one, copied over (Type 51) only when the public one is empty, after AppSearch
    and before the registry is written, in both sequences (/qn runs only the execute one).
    Read from the MSI's tables; Windows Installer itself did not run here."""
    searched = {r["Property"]: r["Signature_"] for r in _table(msi, "AppSearch")}
    assert set(searched) == {remembered for _public, remembered, _action in REMEMBERED}
    registry_searches = {r["Signature_"]: r for r in _table(msi, "RegLocator")}
    actions = {r["Action"]: r for r in _table(msi, "CustomAction")}
    for public, remembered, action in REMEMBERED:
        search = registry_searches[searched[remembered]]
        assert search["Key"] == "SOFTWARE\\Careline"
        assert search["Name"] == public.lower()
        assert int(search["Type"]) & 16, "the 64-bit registry view"
        row = actions[action]
        assert row["Type"] == "51", "sets a property, immediately"
        assert row["Source"] == public
        assert row["Target"] == f"[{remembered}]"
        for table in ("InstallUISequence", "InstallExecuteSequence"):
            sequence = {r["Action"]: r for r in _table(msi, table)}
            assert sequence[action]["Condition"] == f"NOT {public} AND {remembered}", table
            step = int(sequence[action]["Sequence"])
            assert int(sequence["AppSearch"]["Sequence"]) < step, table
            assert step < int(sequence["CostInitialize"]["Sequence"]), table


def test_the_real_build_writes_each_value_only_when_given() -> None:
    """wixl has no component conditions, so the test MSI above is built with -D Wixl=1;
    WiX proper (the Windows workflow) compiles the conditions in."""
    result = subprocess.run(
        ["wixl", "-E", "-D", f"Version={__version__}", str(WXS)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    conditions = re.findall(r"<Condition>(\w+)</Condition>", result.stdout)
    assert conditions == ["SERVER_URL", "SERVER_CA_FINGERPRINT", "ENROLL_CODE"]
