"""The Windows and macOS build workflows and the macOS script: they never ran here (no
Windows or macOS runner), so this checks what can be checked on Linux. The workflows are
valid YAML with the keys GitHub Actions requires, they run the recipes this repository
holds, every secret they read is named in installers/README.md, and the macOS script is
valid bash that signs with the hardened runtime and notarizes."""

from __future__ import annotations

import io
import plistlib
import re
import subprocess
import sys
import tarfile
import types
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.server_process import REPO

WORKFLOWS = REPO / ".github" / "workflows"
MACOS = REPO / "installers" / "macos"
SCRIPT = MACOS / "build_dmg.sh"
# The one PyInstaller recipe, for every platform (installers/linux/build_deb.py uses it).
SPEC = REPO / "installers" / "pyinstaller" / "careline.spec"


def _workflow(name: str) -> dict[Any, Any]:
    document: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    return document


def _steps(workflow: dict[Any, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


@pytest.mark.parametrize(
    ("name", "runner"), [("windows-msi.yml", "windows-"), ("macos-dmg.yml", "macos-")]
)
def test_the_workflow_has_what_github_actions_requires(name: str, runner: str) -> None:
    workflow = _workflow(name)
    assert workflow["name"]
    # YAML 1.1 reads the key `on` as True.
    triggers: dict[str, Any] = workflow["on"] if "on" in workflow else workflow[True]
    assert "workflow_dispatch" in triggers
    assert triggers["push"]["tags"] == ["v*"]
    assert workflow["permissions"] == {"contents": "read"}
    for job in workflow["jobs"].values():
        assert job["runs-on"].startswith(runner)
        assert job["timeout-minutes"] <= 120
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step), step
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", step["uses"]), step["uses"]


def test_the_windows_workflow_builds_from_the_recipe_and_installs_silently() -> None:
    steps = _steps(_workflow("windows-msi.yml"))
    runs = "\n".join(step.get("run", "") for step in steps)
    assert "installers/windows/harvest.py dist/careline -o build/careline-files.wxs" in runs
    assert r"installers\windows\careline.wxs build\careline-files.wxs" in runs
    assert "-dSourceDir=dist/careline" in runs
    for prop in ("SERVER_URL=", "SERVER_CA_FINGERPRINT=", "ENROLL_CODE="):
        assert prop in runs
    assert '"/qn"' in runs and '"/x"' in runs


def test_the_macos_workflow_runs_the_script_with_its_secrets() -> None:
    steps = _steps(_workflow("macos-dmg.yml"))
    [build] = [s for s in steps if s.get("run") == "installers/macos/build_dmg.sh"]
    read = set(re.findall(r"\$\{?([A-Z][A-Z0-9_]+)", SCRIPT.read_text()))
    given = set(build["env"])
    # Everything the script reads from outside is given by the workflow (the rest the
    # script sets itself).
    own = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", SCRIPT.read_text(), flags=re.MULTILINE))
    assert read - own - {"RUNNER_TEMP"} <= given, sorted(read - own - given)


def test_every_secret_the_workflows_read_is_documented() -> None:
    readme = (REPO / "installers" / "README.md").read_text()
    text = "".join((WORKFLOWS / n).read_text() for n in ("windows-msi.yml", "macos-dmg.yml"))
    named = set(re.findall(r"secrets\.([A-Z][A-Z0-9_]+)", text))
    assert {"WINDOWS_CERT_PFX_BASE64", "MACOS_SIGN_IDENTITY", "APPLE_ID"} <= named
    for secret in named:
        assert f"`{secret}`" in readme, secret


def test_the_macos_script_is_valid_bash_and_signs_notarizes_and_staples() -> None:
    checked = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    text = SCRIPT.read_text()
    assert "--options runtime" in text and "--entitlements" in text
    assert "xcrun notarytool submit" in text and "--wait" in text
    assert "xcrun stapler staple" in text
    assert "hdiutil create" in text
    assert SCRIPT.stat().st_mode & 0o111, "executable"


def test_the_macos_script_refuses_to_run_off_macos() -> None:
    result = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "runs on macOS only" in result.stderr


def test_the_entitlements_allow_only_what_python_needs() -> None:
    entitlements = plistlib.loads((MACOS / "entitlements.plist").read_bytes())
    assert entitlements == {"com.apple.security.cs.allow-unsigned-executable-memory": True}


def test_the_workflows_and_script_freeze_with_the_spec_make_package_uses() -> None:
    text = {name: (WORKFLOWS / name).read_text() for name in ("windows-msi.yml", "macos-dmg.yml")}
    text["build_dmg.sh"] = SCRIPT.read_text()
    build_deb = (REPO / "installers" / "linux" / "build_deb.py").read_text()
    assert '"installers" / "pyinstaller" / "careline.spec"' in build_deb
    for name, source in text.items():
        named = re.findall(r"PYINSTALLER_SPEC:?-?\s*([\w./-]+\.spec)", source)
        assert named, f"{name} names no spec"
        for path in named:
            assert (REPO / path).resolve() == SPEC, f"{name}: {path}"
    # The extra that pins PyInstaller, as `make package` installs it.
    for name in ("windows-msi.yml", "build_dmg.sh"):
        assert ".[gui,server,package]" in text[name], name


class _Built:
    """What a PyInstaller build step was called with."""

    def __init__(self, kind: str, *args: Any, **kwargs: Any) -> None:
        self.kind, self.args, self.kwargs = kind, args, kwargs
        self.pure: list[Any] = []
        self.scripts: list[Any] = [args[0] if args else []]
        # A library of the system's and a Qt plugin the Linux build leaves out, and one it keeps.
        self.binaries: list[Any] = [
            ("libxcb.so.1", "/usr/lib/x86_64-linux-gnu/libxcb.so.1", "BINARY"),
            ("PySide6/Qt/plugins/generic/libqtuiotouchplugin.so", "/venv/x.so", "BINARY"),
            ("PySide6/Qt/lib/libQt6Core.so.6", "/venv/libQt6Core.so.6", "BINARY"),
        ]
        self.datas: list[Any] = []


def _spec_steps(monkeypatch: pytest.MonkeyPatch, platform: str) -> list[_Built]:
    """Run careline.spec as PyInstaller would on ``platform``, with its build steps
    (Analysis, EXE, COLLECT, BUNDLE) recorded instead of run."""
    steps: list[_Built] = []

    def step(kind: str) -> Any:
        def record(*args: Any, **kwargs: Any) -> _Built:
            built = _Built(kind, *args, **kwargs)
            steps.append(built)
            return built

        return record

    hooks = types.ModuleType("PyInstaller.utils.hooks")
    hooks.collect_data_files = lambda package: []  # type: ignore[attr-defined]
    hooks.collect_submodules = lambda package: []  # type: ignore[attr-defined]
    for name in ("PyInstaller", "PyInstaller.utils"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "PyInstaller.utils.hooks", hooks)
    monkeypatch.setattr(sys, "platform", platform)
    names = {kind: step(kind) for kind in ("Analysis", "PYZ", "EXE", "COLLECT", "BUNDLE")}
    # The spec is Python that PyInstaller execs with these names defined; so does the test.
    code = compile(SPEC.read_text(), str(SPEC), "exec")
    exec(code, {"SPECPATH": str(SPEC.parent), **names})  # noqa: S102
    return steps


def _programs(steps: list[_Built]) -> dict[str, dict[str, Any]]:
    return {s.kwargs["name"]: s.kwargs for s in steps if s.kind == "EXE"}


def test_the_spec_makes_the_linux_folder_with_two_console_programs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    steps = _spec_steps(monkeypatch, "linux")
    programs = _programs(steps)
    assert list(programs) == ["careline", "careline-server"]
    assert all(p["console"] and p["strip"] and p["icon"] is None for p in programs.values())
    [folder] = [s for s in steps if s.kind == "COLLECT"]
    assert folder.kwargs["name"] == "careline"  # dist/careline, as build_deb.py reads it
    assert not [s for s in steps if s.kind == "BUNDLE"]
    # The .deb depends on the system's libraries instead of carrying them.
    shipped = {name for s in steps if s.kind == "Analysis" for name, _src, _kind in s.binaries}
    assert shipped == {"PySide6/Qt/lib/libQt6Core.so.6"}


def test_on_windows_the_spec_adds_a_windowed_app_with_the_icon(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    steps = _spec_steps(monkeypatch, "win32")
    programs = _programs(steps)
    # The Start-menu target (careline.wxs), the CLI the workflow runs, the server.
    assert set(programs) == {"careline-app", "careline", "careline-server"}
    assert programs["careline-app"]["console"] is False
    assert programs["careline"]["console"] and programs["careline-server"]["console"]
    for program in programs.values():
        assert Path(program["icon"]) == REPO / "resources" / "icons" / "careline.ico"
        assert Path(program["icon"]).is_file()
    wxs = (REPO / "installers" / "windows" / "careline.wxs").read_text()
    assert 'Target="[INSTALLDIR]careline-app.exe"' in wxs
    [folder] = [s for s in steps if s.kind == "COLLECT"]
    assert folder.kwargs["name"] == "careline"  # dist/careline, as the workflow harvests it
    # The Linux-only filtering leaves Windows' files alone.
    assert all(len(s.binaries) == 3 for s in steps if s.kind == "Analysis")
    runs = (WORKFLOWS / "windows-msi.yml").read_text()
    assert "harvest.py dist/careline " in runs and r"dist\careline\careline-app.exe" in runs


def test_on_macos_the_spec_bundles_careline_app_with_the_app_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.main import DESKTOP_APP_ID
    from core import __version__

    steps = _spec_steps(monkeypatch, "darwin")
    [bundle] = [s for s in steps if s.kind == "BUNDLE"]
    [folder] = [s for s in steps if s.kind == "COLLECT"]
    assert bundle.args == (folder,)
    # build_dmg.sh and the workflow look for dist/Careline.app.
    assert bundle.kwargs["name"] == "Careline.app"
    assert "APP_NAME=Careline\n" in SCRIPT.read_text()
    assert bundle.kwargs["bundle_identifier"] == DESKTOP_APP_ID == "org.careline.Careline"
    icon = Path(bundle.kwargs["icon"])
    assert icon == REPO / "resources" / "icons" / "careline.icns" and icon.is_file()
    plist = bundle.kwargs["info_plist"]
    assert plist["CFBundleShortVersionString"] == bundle.kwargs["version"] == __version__
    assert plist["NSHighResolutionCapable"] is True
    assert plist["LSMinimumSystemVersion"] == "12.0"
    assert plist["LSBackgroundOnly"] is False  # a Dock app, not a background one
    # The bundle's executable (its first) is the windowed app; the CLI is beside it.
    first = folder.args[0]
    assert first.kind == "EXE" and first.kwargs["name"] == "careline-app"
    assert first.kwargs["console"] is False
    assert "careline" in _programs(steps)
    workflow = (WORKFLOWS / "macos-dmg.yml").read_text()
    assert "= org.careline.Careline" in workflow and "= careline-app" in workflow


def test_the_spec_freezes_release_0_1_0_which_kept_its_version_in_pyproject(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The package test's upgrade freezes the v0.1.0 source with this spec: that release's
    # core/__init__.py had no __version__ line.
    from tests.releases import commit_of

    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", commit_of("v0.1.0")],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tmp_path, filter="data")
    monkeypatch.setenv("CARELINE_SOURCE", str(tmp_path))
    steps = _spec_steps(monkeypatch, "darwin")
    [bundle] = [s for s in steps if s.kind == "BUNDLE"]
    assert bundle.kwargs["version"] == "0.1.0"


def test_the_spec_ships_qt_pdf_and_none_of_the_other_addons(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PDF attachments open inside the app through PySide6-Addons' Qt PDF module; every
    other module that package installs (QtWebEngine, Qt3D, QtMultimedia, ...) stays out."""
    from importlib import metadata

    files = metadata.files("PySide6-Addons") or []
    addons = {
        f"PySide6.{Path(str(f)).name.split('.')[0]}"
        for f in files
        if Path(str(f)).parent.name == "PySide6" and Path(str(f)).suffix in (".so", ".pyd")
    }
    wanted = {"PySide6.QtPdf", "PySide6.QtPdfWidgets"}
    assert wanted < addons and len(addons) > 20  # the installed Addons, read from its RECORD
    for platform in ("linux", "win32", "darwin"):
        [analysis, *_] = [s for s in _spec_steps(monkeypatch, platform) if s.kind == "Analysis"]
        excluded = set(analysis.kwargs["excludes"])
        assert wanted <= set(analysis.kwargs["hiddenimports"]) and not wanted & excluded
        assert addons - wanted <= excluded, sorted(addons - wanted - excluded)
