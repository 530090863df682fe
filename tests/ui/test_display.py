"""Without a screen, ``careline`` says so plainly instead of letting Qt abort the process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid

from app.display import display_problem


def _careline_without_a_display(**env: str) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    }
    return subprocess.run(
        [sys.executable, "-m", "app.entry"],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_no_display_at_all_is_explained() -> None:
    result = _careline_without_a_display()
    assert result.returncode == 1
    assert "needs a screen" in result.stderr
    assert "DISPLAY and WAYLAND_DISPLAY are unset" in result.stderr
    assert "careline --help" in result.stderr


def test_an_unreachable_display_is_named() -> None:
    result = _careline_without_a_display(DISPLAY=":97")
    assert result.returncode == 1
    assert "cannot reach the display ':97'" in result.stderr


def test_a_listening_x_server_socket_counts_as_a_display() -> None:
    # An abstract socket with an X server's name, as Xorg and Xvfb also open on Linux.
    number = 5000 + uuid.uuid4().int % 1000
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(f"\0/tmp/.X11-unix/X{number}")
        server.listen(1)
        assert display_problem({"DISPLAY": f":{number}"}) is None
    assert display_problem({"DISPLAY": f":{number}"}) is not None  # gone once it closes


def test_a_chosen_qt_platform_is_not_second_guessed() -> None:
    assert display_problem({"QT_QPA_PLATFORM": "offscreen"}) is None
