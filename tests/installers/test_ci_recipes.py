"""The Windows and macOS build workflows and the macOS script: they never ran here (no
Windows or macOS runner), so this checks what can be checked on Linux. The workflows are
valid YAML with the keys GitHub Actions requires, they run the recipes this repository
holds, every secret they read is named in installers/README.md, and the macOS script is
valid bash that signs with the hardened runtime and notarizes."""

from __future__ import annotations

import plistlib
import re
import subprocess
from typing import Any

import pytest
import yaml

from tests.integration.server_process import REPO

WORKFLOWS = REPO / ".github" / "workflows"
MACOS = REPO / "installers" / "macos"
SCRIPT = MACOS / "build_dmg.sh"


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
