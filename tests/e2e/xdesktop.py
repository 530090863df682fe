"""The real desktop app on a virtual X screen, driven as a person drives it.

Xvfb gives the app a real X display (the xcb platform plugin, real keyboard focus and
events); xdotool types and presses keys through the X server's XTEST extension, exactly as
a keyboard would. Nothing here calls into the app: what a test knows of it comes from
the screen (window titles, screenshots) and, after the app has exited, from the database.

``.ci/run`` installs Debian's ``xvfb`` and ``xdotool`` when missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from tests.integration.server_process import REPO, child_env

T = TypeVar("T")

# What a grab of the screen needs: a Qt client of the same display (no ImageMagick here).
# One per screen, started at the first screenshot: it saves a PNG for each path it reads
# (starting Qt for every picture took a second each).
_GRAB = (
    "import sys\n"
    "from PySide6.QtGui import QGuiApplication\n"
    "app = QGuiApplication([sys.argv[0], '-platform', 'xcb'])\n"
    "for line in sys.stdin:\n"
    "    ok = QGuiApplication.primaryScreen().grabWindow(0).save(line.rstrip('\\n'))\n"
    "    print('ok' if ok else 'failed', flush=True)\n"
)


def shots_folder(tmp_path: Path, name: str) -> Path:
    """Where a test keeps its screenshots: ``CARELINE_E2E_SHOTS``/``name`` when that names
    a folder (to look at them after the run), else the test's own temporary folder."""
    chosen = os.environ.get("CARELINE_E2E_SHOTS")
    return Path(chosen) / name if chosen else tmp_path / "shots"


def missing_tools() -> list[str]:
    """Programs this module needs that the machine lacks."""
    return [tool for tool in ("Xvfb", "xdotool") if shutil.which(tool) is None]


class VirtualScreen:
    """An Xvfb server on a display number of its own choosing, for one test."""

    def __init__(self, width: int = 1280, height: int = 860) -> None:
        read_end, write_end = os.pipe()
        self.process = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_end), "-screen", "0", f"{width}x{height}x24",
             "-nolisten", "tcp"],
            pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            number = pipe.readline().strip()
        if not number:
            self.process.kill()
            raise RuntimeError("Xvfb did not start")
        self.display = f":{number}"
        self._grabber: subprocess.Popen[str] | None = None

    def env(self) -> dict[str, str]:
        """The environment of a program shown on this screen."""
        env = child_env()
        env["DISPLAY"] = self.display
        env["QT_QPA_PLATFORM"] = "xcb"
        return env

    def xdotool(self, *args: str) -> str:
        """Run xdotool against this screen; its output."""
        result = subprocess.run(
            ["xdotool", *args], env={**os.environ, "DISPLAY": self.display},
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"xdotool {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def screenshot(self, path: Path) -> Path:
        """The whole screen as a PNG."""
        path.parent.mkdir(parents=True, exist_ok=True)
        if self._grabber is None:
            self._grabber = subprocess.Popen(
                [sys.executable, "-c", _GRAB], env=self.env(), stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
        assert self._grabber.stdin is not None and self._grabber.stdout is not None
        self._grabber.stdin.write(f"{path}\n")
        self._grabber.stdin.flush()
        answer = self._grabber.stdout.readline().strip()
        if answer != "ok":
            raise RuntimeError(f"the screenshot {path} was not saved ({answer or 'no answer'})")
        return path

    def close(self) -> None:
        """Stop the screenshot grabber and the X server."""
        if self._grabber is not None:
            assert self._grabber.stdin is not None and self._grabber.stdout is not None
            self._grabber.stdin.close()  # its loop ends: it exits
            self._grabber.wait(timeout=10)
            self._grabber.stdout.close()
        self.process.terminate()
        self.process.wait(timeout=10)

    def __enter__(self) -> VirtualScreen:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class Desktop:
    """``careline`` (no command: the desktop app) on a virtual screen, and a keyboard."""

    def __init__(
        self,
        screen: VirtualScreen,
        data_dir: Path,
        shots: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """``env``: added to the screen's environment (a machine configuration, a keyring)."""
        self.screen, self.shots = screen, shots
        self.log = shots / "app.log"
        shots.mkdir(parents=True, exist_ok=True)
        # The app started again in the same folder numbers its pictures on from the last.
        self._shot = len(list(shots.glob("*.png")))
        with self.log.open("a") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app.entry", "--data-dir", str(data_dir)],
                stdout=err, stderr=err, cwd=REPO, env={**screen.env(), **(env or {})},
            )  # fmt: skip
        self.window = self.wait(lambda: self._main_window(), "the app's window")

    def _main_window(self) -> str | None:
        try:
            found = self.screen.xdotool("search", "--onlyvisible", "--name", "Careline")
        except RuntimeError:  # xdotool exits 1 while nothing matches
            return None
        ids = found.split()
        return ids[0] if ids else None

    def wait(self, probe: Callable[[], T | None], what: str, timeout: float = 30) -> T:
        """Poll ``probe`` until it gives something; fail naming ``what`` and the app's log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the app exited ({self.process.returncode}): {self.tail()}")
            value = probe()
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; app log: {self.tail()}")

    def tail(self) -> str:
        """The end of the app's output (for failure messages)."""
        return self.log.read_text()[-2000:]

    def title(self) -> str:
        """The active top-level window's title."""
        window = self._main_window() or self.window
        return self.screen.xdotool("getwindowname", window).strip()

    def wait_title(self, text: str, timeout: float = 30) -> str:
        """Wait until a visible window's title contains ``text``."""

        def probe() -> str | None:
            try:
                found = self.screen.xdotool("search", "--onlyvisible", "--name", text)
            except RuntimeError:
                return None
            return found.split()[0] if found.split() else None

        return self.wait(probe, f"a window titled {text!r}", timeout)

    def wait_gone(self, text: str, timeout: float = 30) -> None:
        """Wait until no visible window's title contains ``text`` (a dialog has closed)."""

        def probe() -> bool:
            try:
                found = self.screen.xdotool("search", "--onlyvisible", "--name", text)
            except RuntimeError:  # xdotool exits 1 when nothing matches
                return True
            return not found.split()

        self.wait(probe, f"no window titled {text!r}", timeout)

    def focus(self) -> None:
        """Give the app's visible top-level window the keyboard (there is no window manager)."""
        window = self._main_window()
        if window is not None:
            self.screen.xdotool("windowfocus", "--sync", window)

    def type(self, text: str) -> None:
        """Type text, key by key, as a person would."""
        self.screen.xdotool("type", "--delay", "25", text)

    def key(self, *keys: str) -> None:
        """Press keys one after another (xdotool names: Tab, Return, ctrl+f, Escape...)."""
        for key in keys:
            self.screen.xdotool("key", "--delay", "40", key)
            time.sleep(0.05)

    def pause(self, seconds: float = 0.6) -> None:
        """Let the app's worker finish and the screen repaint."""
        time.sleep(seconds)

    def shot(self, name: str) -> Path:
        """A numbered screenshot in this test's folder."""
        self._shot += 1
        return self.screen.screenshot(self.shots / f"{self._shot:02d}-{name}.png")

    def quit(self) -> int:
        """SIGTERM (the app locks and exits as on closing its window); the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)  # reaped: no process left to the next test
            raise AssertionError(f"the app did not exit on SIGTERM: {self.tail()}") from None
