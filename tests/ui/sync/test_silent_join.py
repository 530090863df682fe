"""The app's first start on a workstation IT set up for silent enrollment: no wizard, the
workstation joins the clinic by itself (a real TLS server, a real OS keyring), then the
staff sign-in; a failure is shown in plain words with a way on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from app.main_window import MainWindow
from core.crypto.kdf import FAST_PARAMS
from core.records.workstation import Workstation
from core.sync.ca_pin import pem_fingerprint
from core.sync.join import FirstSyncUnfinishedError
from core.sync.silent_join import MachineEnrollment, join_silently
from tests.integration.server_fixtures import Live, add_clinic, live_server
from tests.services import free_port
from tests.ui.conftest import ADMIN, PASSWORD


@pytest.fixture
def windows(qtbot: QtBot) -> Iterator[list[MainWindow]]:
    made: list[MainWindow] = []
    yield made
    for window in made:
        window.shutdown()


def start(
    qtbot: QtBot, windows: list[MainWindow], folder: Path, enrollment: MachineEnrollment
) -> MainWindow:
    window = MainWindow(Workstation(folder, kdf_params=FAST_PARAMS), silent_enrollment=enrollment)
    qtbot.addWidget(window)
    windows.append(window)
    window.show()
    window.start()
    return window


def enrollment(live: Live, code: str, fingerprint: str | None = None) -> MachineEnrollment:
    return MachineEnrollment(
        live.url, code, None, fingerprint or pem_fingerprint(live.ca_pem), "Front desk",
        "/etc/careline/careline.toml",
    )  # fmt: skip


def test_first_start_joins_and_shows_the_sign_in(
    qtbot: QtBot,
    live: Live,
    tmp_path: Path,
    secret_service: dict[str, str],
    windows: list[MainWindow],
) -> None:
    clinic = add_clinic(live.server, "Silent Clinic")
    code, _ = live.server.registry.issue_enroll_code(clinic, 10, uses=2)
    window = start(qtbot, windows, tmp_path / "desk", enrollment(live, code))
    assert window.first_run is None  # no wizard
    qtbot.waitUntil(lambda: window.stack.currentWidget() is window.sign_in_page, timeout=30_000)
    assert "has joined Silent Clinic" in window.sign_in_page.notice.text()
    assert window.windowTitle() == "Silent Clinic — Careline"
    # Any staff member signs in (the keyring opens the clinic; the synced verifier checks
    # the password), and their first sign-in adds their own password slot.
    sign_in_empty(qtbot, window)
    assert window.session is not None and window.session.user.username == ADMIN
    assert window.workstation.password_users() == [ADMIN]


def sign_in_empty(qtbot: QtBot, window: MainWindow) -> None:
    """The joined clinic has no patients: wait for the session, not for list rows."""
    page = window.sign_in_page
    page.username.setText(ADMIN)
    page.password.setText(PASSWORD)
    page.button.click()
    qtbot.waitUntil(lambda: window.session is not None, timeout=10_000)


def test_a_used_up_code_is_shown_with_a_way_on(
    qtbot: QtBot,
    live: Live,
    tmp_path: Path,
    secret_service: dict[str, str],
    windows: list[MainWindow],
) -> None:
    clinic = add_clinic(live.server, "Used Up")
    code, _ = live.server.registry.issue_enroll_code(clinic, 10)
    live.server.registry.redeem(code, "earlier desk", "", "dev-earlier")
    window = start(qtbot, windows, tmp_path / "desk", enrollment(live, code))
    page = window.silent_join_page
    assert page is not None
    qtbot.waitUntil(lambda: page.retry.isVisible(), timeout=30_000)
    assert "has already been used; ask IT for a new one" in page.status.text()
    assert page.title.text() == window.windowTitle().split(" — ")[0] == "Could not join the clinic"
    assert not window.workstation.is_initialized()  # nothing kept from the attempt
    page.manual.click()  # "Set up by hand": the first-run wizard
    assert window.first_run is not None and window.silent_join_page is None
    assert window.windowTitle() == "Careline"


def test_wrong_fingerprint_is_refused_before_the_code_is_sent(
    qtbot: QtBot,
    live: Live,
    tmp_path: Path,
    secret_service: dict[str, str],
    windows: list[MainWindow],
) -> None:
    clinic = add_clinic(live.server, "Pinned")
    code, _ = live.server.registry.issue_enroll_code(clinic, 10)
    window = start(qtbot, windows, tmp_path / "desk", enrollment(live, code, "0" * 64))
    page = window.silent_join_page
    assert page is not None
    qtbot.waitUntil(lambda: page.retry.isVisible(), timeout=30_000)
    assert "server_ca_fingerprint" in page.status.text()
    assert not window.workstation.is_initialized()
    # The code kept its one use: a workstation with the right pin joins with it.
    other = start(qtbot, windows, tmp_path / "other", enrollment(live, code))
    qtbot.waitUntil(lambda: other.stack.currentWidget() is other.sign_in_page, timeout=30_000)


def test_a_start_after_an_unfinished_join_finishes_it_without_the_code(
    qtbot: QtBot, tmp_path: Path, secret_service: dict[str, str], windows: list[MainWindow]
) -> None:
    """The first sync of the silent join failed after the server had accepted the one-use
    code (the server went away): the next start of the app finishes it, then the sign-in."""
    data, port, desk = tmp_path / "server", free_port(), tmp_path / "desk"
    with live_server(data, port=port) as first:
        clinic = add_clinic(first.server, "Resumed Clinic")
        code, _ = first.server.registry.issue_enroll_code(clinic, 10)
        with pytest.raises(FirstSyncUnfinishedError):
            join_silently(
                Workstation(desk, kdf_params=FAST_PARAMS),
                enrollment(first, code),
                on_progress=lambda _report: first.halt(),
            )
    with live_server(data, port=port) as again:
        window = start(qtbot, windows, desk, enrollment(again, code))
        assert window.first_run is None  # not the wizard, nor a sign-in to an empty clinic
        qtbot.waitUntil(lambda: window.stack.currentWidget() is window.sign_in_page, timeout=30_000)
        assert "has joined Resumed Clinic" in window.sign_in_page.notice.text()
        sign_in_empty(qtbot, window)
        assert window.session is not None and window.session.user.username == ADMIN
