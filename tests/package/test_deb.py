"""The Debian packages as IT uses them: built, checked by Debian's own tools, installed
with dpkg on this machine, the installed app and CLI run, upgraded over v0.1.0 with its
data, removed leaving the clinic's data. Runs as root (CI); ``make package-test``."""

from __future__ import annotations

import grp
import hashlib
import json
import os
import pwd
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.xdesktop import VirtualScreen, missing_tools
from tests.package.debs import Debs, current_debs, release_debs
from tests.releases import PREVIOUS, REPO
from tests.secret_service import (
    secret_service_available,
    start_secret_service,
    stop_secret_service,
)

PASSWORD = "package-test-Passw0rd!"
PACKAGES = ("careline-server", "careline")  # removal order
SERVER_UNIT_SOURCE = REPO / "installers" / "systemd" / "careline-server.service"
ENV_TEMPLATE = REPO / "installers" / "systemd" / "careline-server.env"
GUIDE = REPO / "installers" / "README.md"
SETTINGS = Path("/etc/careline/server.env")
SETTINGS_EXAMPLE = Path("/usr/share/careline-server/server.env.example")
UNIT = Path("/lib/systemd/system/careline-server.service")
APP_ID = "org.careline.Careline"
# What Qt prints when a platform plugin or the library it needs cannot load.
QT_FAILURES = ("could not load the qt platform plugin", "cannot load library", "traceback")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="installs packages with dpkg: run as root"),
    pytest.mark.skipif(shutil.which("dpkg") is None, reason="needs Debian's dpkg"),
]


def run(
    *args: str | Path,
    stdin: str | None = None,
    check: bool = True,
    env: dict[str, str] | None = None,
) -> str:
    """Run a command; its stdout. A failure shows the command and its stderr."""
    done = subprocess.run(
        [str(a) for a in args], input=stdin, capture_output=True, text=True, timeout=600,
        check=False, env=env,
    )  # fmt: skip
    if check and done.returncode != 0:
        raise AssertionError(f"{args}: exit {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done.stdout


def installed(package: str) -> str | None:
    """The installed version of ``package``, or None."""
    done = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status} ${Version}", package], capture_output=True, text=True
    )
    status = done.stdout.split()
    return (
        status[-1]
        if done.returncode == 0 and status[:3] == ["install", "ok", "installed"]
        else None
    )


def dpkg_install(*debs: Path) -> None:
    """``dpkg -i``; missing dependencies then come from apt (``apt-get -f install``)."""
    done = subprocess.run(["dpkg", "-i", *map(str, debs)], capture_output=True, text=True)
    if done.returncode != 0:
        run("apt-get", "-f", "install", "-y", "-q", "--no-install-recommends",
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})  # fmt: skip
    for deb in debs:
        name = deb.name.split("_", 1)[0]
        assert installed(name), f"{deb.name} is not installed: {done.stderr}"


def purge_all() -> None:
    """Remove both packages, settings and all (the server's state too)."""
    for package in PACKAGES:
        if (
            installed(package)
            or subprocess.run(["dpkg", "-s", package], capture_output=True).returncode == 0
        ):
            run("dpkg", "--purge", package)


def careline(data: Path, *args: str, check: bool = True, env: dict[str, str] | None = None) -> str:
    """The INSTALLED ``careline`` (/usr/bin), as admin with the password on stdin."""
    return run(
        "/usr/bin/careline", "--data-dir", data, "--json", "--user", "admin", "--password-stdin",
        *args, stdin=PASSWORD + "\n", check=check, env=env or plain_env(data.parent),
    )  # fmt: skip


def plain_env(home: Path, **extra: str) -> dict[str, str]:
    """A user's environment, without this test run's venv or Qt settings."""
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8", **extra}


def new_clinic(data: Path, env: dict[str, str] | None = None) -> str:
    """``careline init`` and one patient; the patient's id."""
    careline(data, "init", "--clinic", "Riverside", "--user", "admin", env=env)
    added = json.loads(careline(
        data, "patient", "add", "--family", "Marchetti", "--given", "Lucia",
        "--birth-date", "1972-04-18", env=env,
    ))  # fmt: skip
    return str(added.get("id") or added.get("patient", {}).get("id"))


def digest(folder: Path) -> dict[str, str]:
    """Each file's SHA-256 (the clinic's data, to show it untouched)."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.is_file()
    }


@pytest.fixture(scope="module")
def debs() -> Debs:
    return current_debs()


@pytest.fixture(scope="module", autouse=True)
def leave_machine_as_found() -> Iterator[None]:
    """Refuse to run over a real install; purge what the tests installed, and the system
    user the server package made (the package itself keeps it, as documented)."""
    before = [p for p in PACKAGES if installed(p)]
    if before:
        pytest.fail(f"{', '.join(before)} already installed here: not touching a real install")
    had_user = _user_exists("careline")
    yield
    purge_all()
    if not had_user and _user_exists("careline"):
        run("deluser", "--system", "--quiet", "careline")
        with_group = subprocess.run(["getent", "group", "careline"], capture_output=True)
        if with_group.returncode == 0:
            run("delgroup", "--system", "--quiet", "careline")


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def test_lintian_reports_no_errors(debs: Debs) -> None:
    report = run("lintian", "--tag-display-limit", "0", debs.desktop, debs.server, check=False)
    errors = [line for line in report.splitlines() if line.startswith("E:")]
    assert errors == [], "\n".join(errors)


def test_installed_app_opens_and_cli_works(debs: Debs, tmp_path: Path) -> None:
    purge_all()
    dpkg_install(debs.desktop)
    # The package's version is the program's.
    assert installed("careline") is not None
    assert installed("careline").startswith(f"{debs.version}-")  # type: ignore[union-attr]
    assert run("/usr/bin/careline", "--version").strip() == f"careline {debs.version}"
    assert run("/usr/bin/careline-server", "--version").strip() == (
        f"careline-server {debs.version}"
    )
    # Desktop integration, as shipped, passes the freedesktop checkers.
    desktop = Path(f"/usr/share/applications/{APP_ID}.desktop")
    metainfo = Path(f"/usr/share/metainfo/{APP_ID}.metainfo.xml")
    assert run("desktop-file-validate", desktop).strip() == ""
    run("appstreamcli", "validate", "--no-net", metainfo)
    for size in (16, 24, 32, 48, 64, 128, 256, 512):
        assert Path(f"/usr/share/icons/hicolor/{size}x{size}/apps/{APP_ID}.png").is_file()
    assert Path(f"/usr/share/icons/hicolor/scalable/apps/{APP_ID}.svg").is_file()
    # The IT guide the programs' messages and man page name.
    assert Path("/usr/share/doc/careline/README.md").read_bytes() == GUIDE.read_bytes()

    # The installed app starts offscreen (first run: the wizard) and stays up.
    empty = tmp_path / "first-run"
    app = subprocess.Popen(
        ["/usr/bin/careline", "--data-dir", str(empty)],
        env=plain_env(tmp_path, QT_QPA_PLATFORM="offscreen"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(8)
    alive = app.poll() is None
    app.terminate()
    _out, err = app.communicate(timeout=30)
    assert alive, f"the installed app exited ({app.returncode}): {err}"
    assert not any(f in err.lower() for f in QT_FAILURES), err

    # On a real X display (Xvfb, Qt's xcb plugin and the xcb libraries it depends on).
    if missing_tools():
        pytest.skip(f"no {', '.join(missing_tools())} for the X display check")
    with VirtualScreen() as screen:
        log = tmp_path / "app-x11.log"
        with log.open("w") as out:
            x_app = subprocess.Popen(
                ["/usr/bin/careline", "--data-dir", str(empty)],
                env=plain_env(tmp_path, DISPLAY=screen.display), stdout=out, stderr=out,
            )  # fmt: skip
        try:
            window = _wait_window(screen, x_app, log)
            shot = screen.screenshot(tmp_path / "first-run.png")
            assert shot.stat().st_size > 5000  # a drawn window, not an empty screen
            if os.environ.get("CARELINE_E2E_SHOTS"):
                keep = Path(os.environ["CARELINE_E2E_SHOTS"])
                keep.mkdir(parents=True, exist_ok=True)
                shutil.copy(shot, keep / "installed-first-run.png")
            assert window
        finally:
            x_app.terminate()
            x_app.wait(timeout=30)
    assert not any(f in log.read_text().lower() for f in QT_FAILURES), log.read_text()

    # The installed command line: a new clinic, a patient, found again.
    data = tmp_path / "clinic"
    new_clinic(data)
    found = careline(data, "patient", "search", "marchetti")
    assert "Lucia" in found


def _wait_window(screen: VirtualScreen, app: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if app.poll() is not None:
            raise AssertionError(f"the installed app exited ({app.returncode}): {log.read_text()}")
        try:
            ids = screen.xdotool("search", "--onlyvisible", "--name", "Careline").split()
        except RuntimeError:  # nothing matches yet
            ids = []
        if ids:
            return ids[0]
        time.sleep(0.5)
    raise AssertionError(f"no Careline window on the X display: {log.read_text()}")


def test_installed_cli_unlocks_with_the_os_keyring(debs: Debs, tmp_path: Path) -> None:
    # The keyring back-ends are found through package metadata at run time: a frozen build
    # that lost it would fall back to asking for a password. No back-end is named here.
    reason = secret_service_available()
    if reason is not None:
        if os.environ.get("CARELINE_REQUIRE_SECRET_SERVICE") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    purge_all()
    dpkg_install(debs.desktop)
    service = start_secret_service(tmp_path / "secret-service")
    try:
        env = plain_env(tmp_path, DBUS_SESSION_BUS_ADDRESS=service["DBUS_SESSION_BUS_ADDRESS"])
        data = tmp_path / "clinic"
        new_clinic(data, env)
        no_password = run(
            "/usr/bin/careline", "--data-dir", data, "--json", "patient", "search", "marchetti",
            env=env,
        )  # fmt: skip
        assert "Lucia" in no_password
    finally:
        stop_secret_service(service)


def test_upgrade_from_previous_release_keeps_the_data(debs: Debs, tmp_path: Path) -> None:
    old = release_debs(PREVIOUS, "0.1.0")
    purge_all()
    dpkg_install(old.desktop)
    assert installed("careline").startswith("0.1.0-")  # type: ignore[union-attr]
    # The release's own code was frozen (0.1.0 had no --version), not this checkout's.
    assert debs.version not in run("/usr/bin/careline", "--version", check=False)
    data = tmp_path / "clinic"
    patient = new_clinic(data)  # by the 0.1.0 command line
    assert "Lucia" in careline(data, "patient", "search", "marchetti")

    dpkg_install(debs.desktop)  # the upgrade: 0.2.0 over 0.1.0
    assert installed("careline").startswith(f"{debs.version}-")  # type: ignore[union-attr]
    assert run("/usr/bin/careline", "--version").strip() == f"careline {debs.version}"
    found = careline(data, "patient", "search", "marchetti")
    assert "Lucia" in found and patient in found
    # The schema was migrated and the database is consistent.
    check = json.loads(careline(data, "db", "check"))
    assert check.get("ok", True) is True, check
    # And it keeps working: a new patient on the migrated clinic.
    careline(data, "patient", "add", "--family", "Osei", "--given", "Kwame",
             "--birth-date", "1999-12-31")  # fmt: skip
    assert "Kwame" in careline(data, "patient", "search", "osei")


def test_remove_and_purge_leave_the_clinic_data(debs: Debs, tmp_path: Path) -> None:
    purge_all()
    dpkg_install(debs.desktop)
    data = tmp_path / "clinic"
    new_clinic(data)
    before = digest(data)
    run("dpkg", "-r", "careline")
    assert not Path("/usr/bin/careline").exists() and not Path("/usr/lib/careline").exists()
    assert digest(data) == before
    # Purge too: desktop data lives in each user's home folder, never the package's.
    run("dpkg", "--purge", "careline")
    assert digest(data) == before


def test_server_package_installs_the_service(debs: Debs) -> None:
    purge_all()
    dpkg_install(debs.desktop, debs.server)
    assert run("/usr/bin/careline-server", "--version").strip() == (
        f"careline-server {debs.version}"
    )
    user = pwd.getpwnam("careline")
    assert user.pw_shell in ("/usr/sbin/nologin", "/bin/false") and user.pw_uid < 1000
    state = Path("/var/lib/careline-server")
    assert state.is_dir() and state.stat().st_uid == user.pw_uid
    assert grp.getgrgid(state.stat().st_gid).gr_name == "careline"
    assert state.stat().st_mode & 0o077 == 0  # the clinic's server data: the service's alone
    if SERVER_UNIT_SOURCE.is_file():
        assert UNIT.is_file()
        enabled = Path("/etc/systemd/system/multi-user.target.wants/careline-server.service")
        assert enabled.is_symlink(), "the unit is not enabled"
        _assert_settings_made_from_the_template()
        # The guide's admin recipe (sudo -u careline, reading the settings) works as written.
        [as_careline, _as_root] = _admin_recipes()
        _first_start()
        assert "No clinics" in _run_recipe(as_careline)
        if _systemd_analyze_works():
            run("systemd-analyze", "verify", UNIT)
    else:
        # Before the service unit exists in the tree, the package ships none.
        assert not UNIT.exists()
    # Remove keeps the server's state; purge deletes it (documented in installers/README.md).
    (state / "marker").write_text("clinic data")
    run("dpkg", "-r", "careline-server")
    assert (state / "marker").is_file()
    run("dpkg", "--purge", "careline-server")
    assert not state.exists()
    assert not SETTINGS.exists()


def _assert_settings_made_from_the_template() -> None:
    """/etc/careline/server.env as postinst makes it: the template, root:careline 0640."""
    made = SETTINGS.stat()
    assert (made.st_uid, grp.getgrgid(made.st_gid).gr_name) == (0, "careline")
    assert made.st_mode & 0o777 == 0o640
    assert SETTINGS.read_bytes() == SETTINGS_EXAMPLE.read_bytes() == ENV_TEMPLATE.read_bytes()


def _admin_recipes() -> list[str]:
    """The guide's two one-line recipes that run an admin command with the service's
    settings (``admin clinic list``: as careline, and as root for a root-only file); its
    other commands (backup, enrollment) span lines and act on a real clinic."""
    return [
        line for line in GUIDE.read_text().splitlines()
        if line.startswith("sudo ") and ". /etc/careline/server.env" in line
        and line.endswith("admin clinic list'")
    ]  # fmt: skip


def _first_start() -> None:
    """What the service's first start makes (no systemd runs it here): the server in its
    data folder, as careline; admin commands refuse a folder holding none."""
    _run_recipe(
        "sudo sh -c 'set -a; . /etc/careline/server.env; exec runuser -u careline -- "
        "careline-server --data-dir /var/lib/careline-server admin init'"
    )


def _run_recipe(line: str) -> str:
    """One recipe as IT types it (sudo, or runuser where sudo is not installed)."""
    if shutil.which("sudo") is None:
        line = line.replace("sudo -u careline ", "runuser -u careline -- ")
        line = line.removeprefix("sudo ")
    return run("sh", "-c", line, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"})


def _next_release_of(deb: Path, folder: Path) -> Path:
    """``deb`` as a later release whose settings template gained a setting."""
    tree = folder / "tree"
    run("dpkg-deb", "-R", deb, tree)
    changed = []
    for path in tree.rglob("*"):
        if path.is_file() and path.read_bytes() == ENV_TEMPLATE.read_bytes():
            path.write_bytes(path.read_bytes() + b"# New in the next release:\n#NEW_SETTING=1\n")
            changed.append(path.relative_to(tree).as_posix())
    assert changed, "no settings template in the package"
    sums = (tree / "DEBIAN" / "md5sums").read_text().splitlines()
    (tree / "DEBIAN" / "md5sums").write_text("".join(
        f"{hashlib.md5((tree / name).read_bytes()).hexdigest()}  {name}\n"  # noqa: S324 -- dpkg's format
        for name in (line.split("  ", 1)[1] for line in sums)
    ))  # fmt: skip
    control = tree / "DEBIAN" / "control"
    control.write_text(re.sub(r"^(Version: .*)$", r"\1+next1", control.read_text(), flags=re.M))
    out = folder / "careline-server_next.deb"
    run("dpkg-deb", "--root-owner-group", "-b", tree, out)
    return out


def test_server_upgrade_keeps_its_settings_and_asks_nothing(debs: Debs, tmp_path: Path) -> None:
    """IT always edits server.env. An upgrade whose template changed, run with no terminal
    (Ansible, ssh), must install without dpkg's conffile question and keep IT's file byte
    for byte, owner and mode too (here made root-only); new settings appear in the
    template. A deleted file is made again by dpkg-reconfigure (documented)."""
    purge_all()
    dpkg_install(debs.desktop, debs.server)
    assert "/etc/careline/server.env" not in run(
        "dpkg-query", "-W", "-f=${Conffiles}", "careline-server"
    )
    edited = SETTINGS.read_bytes() + b"# Ours (IT)\nLOG_LEVEL=warning\n"
    SETTINGS.write_bytes(edited)
    os.chown(SETTINGS, 0, 0)
    SETTINGS.chmod(0o600)

    upgrade = subprocess.run(
        ["dpkg", "-i", str(_next_release_of(debs.server, tmp_path))],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    assert installed("careline-server").endswith("+next1")  # type: ignore[union-attr]
    assert SETTINGS.read_bytes() == edited
    kept = SETTINGS.stat()
    assert (kept.st_uid, kept.st_gid, kept.st_mode & 0o777) == (0, 0, 0o600)
    assert b"#NEW_SETTING=1" in SETTINGS_EXAMPLE.read_bytes()
    # A root-only file: the guide's second recipe reads it as root, runs as careline.
    [_as_careline, as_root] = _admin_recipes()
    _first_start()
    assert "No clinics" in _run_recipe(as_root)

    SETTINGS.unlink()
    run("dpkg-reconfigure", "careline-server",
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})  # fmt: skip
    made = SETTINGS.stat()
    assert (made.st_uid, grp.getgrgid(made.st_gid).gr_name) == (0, "careline")
    assert made.st_mode & 0o777 == 0o640
    assert SETTINGS.read_bytes() == SETTINGS_EXAMPLE.read_bytes()
    run("dpkg", "--purge", "careline-server")
    assert not SETTINGS.exists()


def _systemd_analyze_works() -> bool:
    # In a container without systemd as PID 1, verify may still work on a unit file; a
    # machine where it cannot run at all (no systemd-analyze) skips this one check.
    if shutil.which("systemd-analyze") is None:
        return False
    probe = subprocess.run(["systemd-analyze", "--version"], capture_output=True)
    return probe.returncode == 0 and re.search(rb"systemd \d+", probe.stdout) is not None
