"""The real desktop app in a process of its own, driven without a person, for tests that
must kill it (``python -m tests.e2e.app_driver --data-dir DIR``, password on stdin).

It builds the app as ``careline`` does (application set-up and stylesheet, SIGTERM/SIGINT
quit, the MainWindow with its database worker and background sync thread), offscreen, types
the user name and password into the sign-in screen, and lets the sync thread do the rest.
One line per event goes to stdout, flushed, so a test can act on what the app is doing:

    signed-in
    state <state>                           each new sync state (e.g. syncing, synced)
    progress <records|changes> <done> <total|?>   each step of the status bar's download bar
    sign-in-failed <message>

``--quit-when-synced`` quits (locking, as on a normal exit) after the first session that
ends synced. LAN peer sync is off: an enrolled workstation would otherwise serve on the
machine's network and announce itself over mDNS, which a test has no business doing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from app.main import quit_on_termination, set_up_application
from app.main_window import MainWindow
from app.session.sign_in import Session
from app.sync.controller import SYNCED, SyncStatus
from app.sync.lan_peer import LanOptions
from core.records.workstation import Workstation


def say(line: str) -> None:
    """One event line, flushed at once (the reader may kill this process any moment)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Reporter:
    """Prints what the window's sync does; quits once synced if asked to."""

    def __init__(self, app: QApplication, window: MainWindow, quit_when_synced: bool) -> None:
        self._app = app
        self._window = window
        self._quit_when_synced = quit_when_synced
        self._state = ""
        self._progress: tuple[str, int, int | None] | None = None
        self._watch = QTimer(window)
        window.sign_in_page.signed_in.connect(self._signed_in)
        window.sync.status_changed.connect(self._status)

    def _signed_in(self, session: Session) -> None:
        say("signed-in")

    def _status(self, status: SyncStatus) -> None:
        if status.state != self._state:
            self._state = status.state
            say(f"state {status.state}")
        progress = status.progress
        if progress is not None:
            step = (progress.kind, progress.done, progress.total)
            if step != self._progress:
                self._progress = step
                total = "?" if progress.total is None else str(progress.total)
                say(f"progress {progress.kind} {progress.done} {total}")
        if status.state == SYNCED and self._quit_when_synced:
            self._app.quit()

    def sign_in(self, username: str, password: str) -> None:
        """Type the credentials and press Sign in."""
        page = self._window.sign_in_page
        page.username.setText(username)
        page.password.setText(password)
        page.button.click()
        # The page has no "refused" signal: look for its error line until signed in.
        self._watch.timeout.connect(self._check_refused)
        self._watch.start(200)

    def _check_refused(self) -> None:
        page = self._window.sign_in_page
        if self._window.session is not None:
            self._watch.stop()
        elif not page.busy and page.error.isVisibleTo(page):
            say(f"sign-in-failed {page.error.text()}")
            self._app.exit(3)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the app until it quits (or is killed)."""
    parser = argparse.ArgumentParser(prog="app_driver")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--user", default="admin")
    parser.add_argument("--quit-when-synced", action="store_true")
    args = parser.parse_args(argv)
    password = sys.stdin.readline().rstrip("\n")

    app = QApplication(sys.argv[:1])
    set_up_application(app)
    quit_on_termination(app)
    # Default key derivation, as the app: existing key slots carry their own parameters.
    window = MainWindow(
        Workstation(args.data_dir),
        initial_user=args.user,
        sync_options={"lan": LanOptions(enabled=False)},
    )
    reporter = Reporter(app, window, args.quit_when_synced)
    window.show()
    window.start()
    QTimer.singleShot(0, lambda: reporter.sign_in(args.user, password))
    try:
        return app.exec()
    finally:
        window.shutdown()


if __name__ == "__main__":
    sys.exit(main())
