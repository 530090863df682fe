"""Is there a screen to open the desktop app on? Checked before Qt starts, because Qt's
platform plugins abort the process (SIGABRT, no message a person can act on) when the
display is missing or unreachable. No Qt import here."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping
from pathlib import Path

_TIMEOUT_S = 2.0


def display_problem(environ: Mapping[str, str] | None = None) -> str | None:
    """Why the desktop app cannot open a window here, or None if it can (or we cannot
    tell: other systems, or a Qt platform chosen explicitly with QT_QPA_PLATFORM)."""
    env = os.environ if environ is None else environ
    if not sys.platform.startswith("linux") or env.get("QT_QPA_PLATFORM"):
        return None
    wayland, x11 = env.get("WAYLAND_DISPLAY"), env.get("DISPLAY")
    if wayland and _wayland_socket(wayland, env).exists():
        return None
    if x11:
        return _x11_problem(x11)
    if wayland:
        return f"the Wayland display {wayland!r} (WAYLAND_DISPLAY) has no socket"
    return "no display found (DISPLAY and WAYLAND_DISPLAY are unset)"


def _wayland_socket(name: str, env: Mapping[str, str]) -> Path:
    path = Path(name)
    return path if path.is_absolute() else Path(env.get("XDG_RUNTIME_DIR", "/run/user")) / name


def _x11_problem(display: str) -> str | None:
    host, _, rest = display.rpartition(":")
    number = rest.split(".", 1)[0]
    if not number.isdigit():
        return f"the display {display!r} (DISPLAY) is not of the form [host]:number"
    try:
        if host in ("", "unix"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(_TIMEOUT_S)
                _connect_local(s, number)
        else:
            socket.create_connection((host, 6000 + int(number)), timeout=_TIMEOUT_S).close()
    except OSError as exc:
        return f"cannot reach the display {display!r} (DISPLAY): {exc.strerror or exc}"
    return None


def _connect_local(s: socket.socket, number: str) -> None:
    path = f"/tmp/.X11-unix/X{number}"  # noqa: S108 -- X11's fixed socket folder
    try:
        s.connect(path)
    except OSError:
        # X servers on Linux also listen on an abstract socket of the same name.
        s.connect("\0" + path)
