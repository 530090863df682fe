"""What the Debian packages lay out, staged by installers/linux/build_deb.py without the
frozen build (seconds; ``make package-test``, tests/package, installs the real packages
with dpkg): the server's settings are a template postinst copies, not a conffile, and the
IT guide the programs point to is in both packages."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from core import __version__
from tests.integration.server_process import REPO, child_env

LINUX = REPO / "installers" / "linux"
TEMPLATE = REPO / "installers" / "systemd" / "careline-server.env"


def _build_deb() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_deb", LINUX / "build_deb.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_server_settings_are_a_template_the_package_never_overwrites(tmp_path: Path) -> None:
    """IT always edits /etc/careline/server.env. As a conffile, every release that changed
    the template would stop `dpkg -i`/`apt upgrade` at dpkg's question, fatal with no
    terminal (Ansible, ssh). So the package ships the template elsewhere and owns no file
    in /etc; postinst makes the settings file from it, only when there is none."""
    root = tmp_path / "careline-server"
    _build_deb().stage_server(root, __version__)
    assert not (root / "DEBIAN" / "conffiles").exists()
    assert not (root / "etc").exists()
    example = root / "usr" / "share" / "careline-server" / "server.env.example"
    assert example.read_bytes() == TEMPLATE.read_bytes()
    postinst = (root / "DEBIAN" / "postinst").read_text()
    assert "install -o root -g careline -m 0640 /usr/share/careline-server/server.env.example" in (
        postinst.replace("\\\n", "").replace("\t", "")
    )
    assert "[ ! -e /etc/careline/server.env ] && [ ! -L /etc/careline/server.env ]" in postinst


def test_the_guide_the_enroll_error_names_is_in_the_desktop_package(tmp_path: Path) -> None:
    """`careline enroll --machine` with no machine-wide configuration names the IT guide by
    a path the workstation package installs (not only the server package), and `man
    careline` tells of `enroll --machine`."""
    machine = tmp_path / "careline.toml"
    machine.write_text("")
    env = {**child_env(), "CARELINE_MACHINE_CONFIG": str(machine)}
    refused = subprocess.run(
        [sys.executable, "-m", "app.entry", "--data-dir", str(tmp_path / "d"), "enroll",
         "--machine"],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert refused.returncode == 2, refused.stderr
    named = re.findall(r"/usr/share/doc/\S+?\.md", refused.stderr)
    assert named, refused.stderr
    root = tmp_path / "careline"
    _build_deb().stage_doc(root, "careline", __version__)
    for path in named:
        shipped = root / path.lstrip("/")
        assert shipped.read_bytes() == (REPO / "installers" / "README.md").read_bytes(), path
        assert "## Silent install and mass enrollment" in shipped.read_text()
    page = (LINUX / "man" / "careline.1").read_text()
    assert "enroll \\-\\-machine" in page and named[0] in page
