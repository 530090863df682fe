"""A log-out or shutdown (SIGTERM) ends the app even while a form holds typed text: the
form asks "Discard what you typed?" when a person closes it, and Qt 6's quit() takes that
as a refusal to close, which left the app running (seen on Xvfb: it ignored SIGTERM)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from tests.integration.server_process import REPO

_APP = textwrap.dedent(
    """
    import os, signal, sys
    from PySide6.QtCore import QTimer
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication, QLineEdit, QVBoxLayout
    from app.main import quit_on_termination
    from app.widgets import TypedForm

    app = QApplication(sys.argv[:1])
    quit_on_termination(app)
    form = TypedForm()
    field = QLineEdit(form)
    QVBoxLayout(form).addWidget(field)
    form.show()
    QTest.keyClicks(field, "Penicillin")  # typed: closing the form would ask first
    assert form.has_changes()
    QTimer.singleShot(300, lambda: os.kill(os.getpid(), signal.SIGTERM))
    QTimer.singleShot(5000, lambda: (print("still running"), app.exit(3)))
    print("exec returned", app.exec(), flush=True)
    """
)


def test_sigterm_ends_the_app_while_a_form_holds_typed_text() -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", _APP], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "exec returned 0" in done.stdout and "still running" not in done.stdout
