"""A private, unlocked freedesktop Secret Service (gnome-keyring) for tests.

``start_secret_service`` starts a D-Bus session bus of its own and a
``gnome-keyring-daemon`` on it whose "login" collection is created and unlocked with
``KEYRING_PASSWORD``. Every file they write lives under the directory it is given (HOME,
XDG_DATA_HOME, XDG_CONFIG_HOME, XDG_CACHE_HOME and XDG_RUNTIME_DIR point there), so the
real user's keyring and session bus are never touched. No display and no prompt is
needed: the bus has no service directories, so nothing is ever auto-started on it.

Debian packages needed: ``apt-get install -y --no-install-recommends dbus gnome-keyring``.

Typical use, in a test process::

    env = start_secret_service(tmp_path)
    try:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        keyring.set_keyring(keyring.backends.SecretService.Keyring())
        ...
    finally:
        stop_secret_service(env)

``secretstorage``/``jeepney`` read ``DBUS_SESSION_BUS_ADDRESS`` each time they connect,
so setting it after Python started is enough.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DBUS_DAEMON = "dbus-daemon"
DBUS_SEND = "dbus-send"
GNOME_KEYRING_DAEMON = "gnome-keyring-daemon"
APT_INSTALL = "apt-get install -y --no-install-recommends dbus gnome-keyring"

KEYRING_PASSWORD = "secret-service-test-password"
"""The password that creates and unlocks the private "login" collection."""

PIDS_VAR = "SECRET_SERVICE_TEST_PIDS"
"""Variable of the returned environment that lists the started PIDs (space-separated)."""

OWN_DIR_VAR = "SECRET_SERVICE_TEST_OWN_DIR"
"""Variable naming a short runtime directory outside tmp_dir that stop removes."""

START_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0

# AF_UNIX paths hold at most 107 bytes; gnome-keyring puts "keyring/control" in
# XDG_RUNTIME_DIR, the bus socket goes beside it.
_MAX_SOCKET_PATH = 100
_SOCKET_NAMES = ("keyring/control", "bus")

# Variables of the caller's environment that could point the daemons at a real session.
_STRIPPED_VARS = frozenset(
    {
        "DBUS_SESSION_BUS_ADDRESS",
        "DBUS_STARTER_ADDRESS",
        "DBUS_STARTER_BUS_TYPE",
        "GNOME_KEYRING_CONTROL",
        "GNOME_KEYRING_PID",
        "SSH_AUTH_SOCK",
        "DISPLAY",
        "WAYLAND_DISPLAY",
    }
)

_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""

_SECRETS_NAME = "org.freedesktop.secrets"
_SECRETS_PATH = "/org/freedesktop/secrets"
_COLLECTION_PREFIX = "/org/freedesktop/secrets/collection/"

# Processes started by this interpreter, by PID, so that stop can reap them.
_children: dict[int, subprocess.Popen[bytes]] = {}


def secret_service_available() -> str | None:
    """Return None if a private Secret Service can be started here, else why not.

    Meant for ``pytest.skip``: the reason names the missing programs and the apt
    command that installs them.
    """
    if not sys.platform.startswith("linux"):
        return f"a private Secret Service needs Linux, not {sys.platform}"
    missing = [
        name
        for name in (DBUS_DAEMON, DBUS_SEND, GNOME_KEYRING_DAEMON)
        if shutil.which(name) is None
    ]
    if missing:
        return f"{', '.join(missing)} not found; install with: {APT_INSTALL}"
    return None


def start_secret_service(tmp_dir: Path) -> dict[str, str]:
    """Start a private session bus and an unlocked gnome-keyring-daemon under tmp_dir.

    Returns the variables a process needs to use it: DBUS_SESSION_BUS_ADDRESS, plus
    PIDS_VAR (and OWN_DIR_VAR when a short runtime directory had to be made outside
    tmp_dir) for ``stop_secret_service``; setting all of them in a process is harmless.
    Raises RuntimeError, after stopping whatever it had started, when the programs are
    missing or either daemon fails or is not ready within START_TIMEOUT seconds.
    """
    reason = secret_service_available()
    if reason is not None:
        raise RuntimeError(f"cannot start a Secret Service: {reason}")
    deadline = time.monotonic() + START_TIMEOUT
    tmp_dir = tmp_dir.absolute()
    tmp_dir.mkdir(parents=True, exist_ok=True)
    runtime_dir, own_dir = _make_runtime_dir(tmp_dir)
    daemon_env = {k: v for k, v in os.environ.items() if k not in _STRIPPED_VARS}
    for name, sub in (
        ("HOME", "home"),
        ("XDG_DATA_HOME", "data"),
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_CACHE_HOME", "cache"),
    ):
        path = tmp_dir / sub
        path.mkdir(mode=0o700, exist_ok=True)
        daemon_env[name] = str(path)
    daemon_env["XDG_RUNTIME_DIR"] = str(runtime_dir)
    config = tmp_dir / "session-bus.conf"
    config.write_text(_BUS_CONFIG.format(socket=runtime_dir / "bus"), encoding="utf-8")

    started: list[subprocess.Popen[bytes]] = []
    try:
        bus_log = tmp_dir / "dbus-daemon.log"
        bus, address = _start_bus(config, daemon_env, bus_log, deadline, started)
        daemon_env["DBUS_SESSION_BUS_ADDRESS"] = address
        keyring_log = tmp_dir / "gnome-keyring-daemon.log"
        daemon = _start_keyring(daemon_env, keyring_log, started)
        _wait_until_unlocked(daemon_env, bus, bus_log, daemon, keyring_log, deadline)
    except BaseException:
        with contextlib.suppress(RuntimeError):  # keep the start-up error, not this one
            _stop_processes(started)
        if own_dir:
            shutil.rmtree(runtime_dir, ignore_errors=True)
        raise

    env = {
        "DBUS_SESSION_BUS_ADDRESS": address,
        PIDS_VAR: " ".join(str(proc.pid) for proc in started),
    }
    if own_dir:
        env[OWN_DIR_VAR] = str(runtime_dir)
    return env


def stop_secret_service(env: dict[str, str]) -> None:
    """Stop the daemons that ``start_secret_service`` started and returned in env.

    Safe to call twice, or after the daemons died. Raises RuntimeError if one of them
    survives SIGTERM and SIGKILL.
    """
    pids = [int(pid) for pid in env.get(PIDS_VAR, "").split()]
    errors: list[str] = []
    for pid in reversed(pids):  # the keyring daemon first, then its bus
        proc = _children.get(pid)
        try:
            if proc is not None:
                _stop_processes([proc])
            else:
                _signal_foreign(pid)
        except RuntimeError as exc:
            errors.append(str(exc))
    own_dir = env.get(OWN_DIR_VAR)
    if own_dir:
        shutil.rmtree(own_dir, ignore_errors=True)
    if errors:
        raise RuntimeError("; ".join(errors))


def _make_runtime_dir(tmp_dir: Path) -> tuple[Path, bool]:
    """Make a 0700 XDG_RUNTIME_DIR; outside tmp_dir (own=True) if its sockets won't fit."""
    runtime_dir = tmp_dir / "run"
    longest = max(len(os.fsencode(runtime_dir / name)) for name in _SOCKET_NAMES)
    if longest <= _MAX_SOCKET_PATH:
        runtime_dir.mkdir(mode=0o700, exist_ok=True)
        runtime_dir.chmod(0o700)
        return runtime_dir, False
    base = "/tmp" if Path("/tmp").is_dir() else None
    return Path(tempfile.mkdtemp(prefix="secret-service-", dir=base)), True


def _start_bus(
    config: Path,
    env: dict[str, str],
    log: Path,
    deadline: float,
    started: list[subprocess.Popen[bytes]],
) -> tuple[subprocess.Popen[bytes], str]:
    """Start dbus-daemon with config; return it and its address once it listens."""
    with log.open("wb") as log_file:
        bus = subprocess.Popen(
            [
                DBUS_DAEMON,
                f"--config-file={config}",
                "--nofork",
                "--nopidfile",
                "--print-address=1",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log_file,
            env=env,
        )
    _children[bus.pid] = bus
    started.append(bus)
    assert bus.stdout is not None
    try:
        line = _read_line(bus.stdout.fileno(), deadline)
    finally:
        bus.stdout.close()
    address = line.strip()
    if not address.startswith("unix:"):
        bus.poll()
        raise RuntimeError(
            f"{DBUS_DAEMON} printed no address within {START_TIMEOUT:.0f} s "
            f"(exit status {bus.returncode}){_log_tail(log)}"
        )
    return bus, address


def _read_line(fd: int, deadline: float) -> str:
    """Read from fd up to the first newline, EOF or the deadline; return what came."""
    data = b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while b"\n" not in data:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                break
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            data += chunk
    return data.decode("utf-8", "replace").partition("\n")[0]


def _start_keyring(
    env: dict[str, str], log: Path, started: list[subprocess.Popen[bytes]]
) -> subprocess.Popen[bytes]:
    """Start gnome-keyring-daemon on the bus, giving it the login password on stdin."""
    with log.open("wb") as log_file:
        daemon = subprocess.Popen(
            [GNOME_KEYRING_DAEMON, "--foreground", "--unlock", "--components=secrets"],
            stdin=subprocess.PIPE,
            stdout=log_file,
            stderr=log_file,
            env=env,
        )
    _children[daemon.pid] = daemon
    started.append(daemon)
    assert daemon.stdin is not None
    try:
        daemon.stdin.write(KEYRING_PASSWORD.encode())
        daemon.stdin.close()
    except OSError as exc:
        raise RuntimeError(
            f"{GNOME_KEYRING_DAEMON} did not take its password: {exc}{_log_tail(log)}"
        ) from exc
    return daemon


def _wait_until_unlocked(
    env: dict[str, str],
    bus: subprocess.Popen[bytes],
    bus_log: Path,
    daemon: subprocess.Popen[bytes],
    daemon_log: Path,
    deadline: float,
) -> None:
    """Wait until the bus has a default collection and it is unlocked."""
    last = "no answer yet"
    while True:
        for proc, name, log in (
            (daemon, GNOME_KEYRING_DAEMON, daemon_log),
            (bus, DBUS_DAEMON, bus_log),
        ):
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with status {proc.returncode} during start-up{_log_tail(log)}"
                )
        ok, out = _dbus_send(
            env,
            deadline,
            _SECRETS_PATH,
            "org.freedesktop.Secret.Service.ReadAlias",
            "string:default",
        )
        collection = out.strip()
        if ok and collection.startswith(_COLLECTION_PREFIX):
            ok, out = _dbus_send(
                env,
                deadline,
                collection,
                "org.freedesktop.DBus.Properties.Get",
                "string:org.freedesktop.Secret.Collection",
                "string:Locked",
            )
            if ok and out.split()[-1:] == ["false"]:
                return
            last = f"{collection} Locked: {out.strip()}"
        else:
            last = f"default alias: {out.strip()}"
        if time.monotonic() >= deadline:
            raise RuntimeError(
                f"the Secret Service was not unlocked within {START_TIMEOUT:.0f} s "
                f"({last}){_log_tail(daemon_log)}"
            )
        time.sleep(0.05)


def _dbus_send(
    env: dict[str, str], deadline: float, path: str, method: str, *args: str
) -> tuple[bool, str]:
    """Call method on the Secret Service at path; return (success, printed reply or error)."""
    remaining = max(deadline - time.monotonic(), 0.1)
    try:
        result = subprocess.run(
            [
                DBUS_SEND,
                "--session",
                "--print-reply=literal",
                f"--reply-timeout={int(min(remaining, 5.0) * 1000)}",
                f"--dest={_SECRETS_NAME}",
                path,
                method,
                *args,
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env=env,
            timeout=remaining + 1.0,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False, f"{DBUS_SEND} timed out"
    if result.returncode != 0:
        return False, result.stderr.decode("utf-8", "replace")
    return True, result.stdout.decode("utf-8", "replace")


def _stop_processes(procs: list[subprocess.Popen[bytes]]) -> None:
    """Terminate procs (last started first), killing any that outlive STOP_TIMEOUT."""
    stuck: list[str] = []
    for proc in reversed(procs):
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                try:
                    proc.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    stuck.append(str(proc.pid))
                    continue
        _children.pop(proc.pid, None)
    if stuck:
        raise RuntimeError(f"processes {', '.join(stuck)} survived SIGKILL")


def _signal_foreign(pid: int) -> None:
    """SIGTERM a daemon started by another process, if that PID still runs one of ours."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except OSError:
        return
    if os.path.basename(os.fsdecode(cmdline)) not in (DBUS_DAEMON, GNOME_KEYRING_DAEMON):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)


def _log_tail(log: Path) -> str:
    """The end of a daemon's log, formatted to close an error message."""
    try:
        text = log.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""
    return f"; {log.name}: {text[-800:]}" if text else ""


@atexit.register
def _stop_leftovers() -> None:
    """Stop daemons that a test run forgot to stop, so none outlive the interpreter."""
    with contextlib.suppress(RuntimeError):
        _stop_processes(list(_children.values()))
