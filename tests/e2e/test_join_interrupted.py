"""A new workstation joins the clinic through the first-run wizard, and the clinic server
goes away just after it accepted the enrollment code: the real app on a virtual X screen,
typed at through the X server (xdotool), as the person setting it up meets it.

A real ``careline-server run`` holds Harbour Clinic, its administrator and a patient another
workstation registered. The person chooses "Join an existing clinic", types the server's
address, the one-time code, the CA file to pin, their user name and password, and presses
Return. The server is stopped the moment the code is spent (the workstation has written its
"first sync pending" marker), before the first download: the wizard keeps the attempt and
offers Try again, with the user name filled in and only the password to type, and Discard
this attempt.

Then either the person quits, the server comes back and the app, started again, opens at
Try again: a wrong password is refused (nothing is sent), the right one finishes the
download with no new code, the recovery key is shown, and the person signs in and finds the
clinic's patient. Or the person discards the attempt (asked first): the wizard is a fresh
join page again and the data folder holds no replica once the app has exited.

Screenshots of every step are kept in the test's folder (``CARELINE_E2E_SHOTS`` names a
folder to keep them in instead).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.records.workstation import JOIN_PENDING_MARKER, Workstation
from core.server.service import ClinicServer
from tests.conftest import PASSWORD
from tests.e2e.test_data_in_out import files
from tests.e2e.test_desktop_turns import screen
from tests.e2e.xdesktop import Desktop, VirtualScreen, shots_folder
from tests.integration.server_fixtures import enroll_desk, server_process_with_admin, sync_at
from tests.integration.server_process import Relay, ServerProcess

__all__ = ["files", "screen"]  # the fixtures, shared with the other desktop tests

pytestmark = pytest.mark.slow

CLINIC = "Harbour Clinic"
WRONG = "not my password at all"


@dataclass
class HaltedJoin:
    """The wizard's join, left unfinished by a server that went away once the code was
    spent: the app (still showing the wizard), the new workstation's data folder, and the
    server (stopped) with the address the workstation was given."""

    app: Desktop
    folder: Path
    server: ServerProcess
    port: int

    def server_again(self) -> ServerProcess:
        """The same server (its data) listening again at the workstation's address."""
        again = ServerProcess(self.server.data, self.port)
        again.start()
        self.server = again
        return again


def clinic_with_a_patient(
    admin: ClinicServer, running: ServerProcess, clinic: str, folder: Path
) -> None:
    """Another workstation of the clinic registers Ama Mensah and syncs her to the server."""
    code, _ = admin.registry.issue_enroll_code(clinic, 10)
    desk, credential = enroll_desk(running.url, running.ca_pem, code, folder)
    desk.records.add_patient("Mensah", "Ama", "1979-05-05")
    sync_at(desk, credential)
    desk.lock()


def join_through_the_wizard(app: Desktop, url: str, code: str, ca: Path) -> None:
    """From the first page: Join an existing clinic, the server's fields, the account,
    Return (Join clinic)."""
    app.pause(1)
    app.focus()
    app.shot("first-run")
    # The clinic name field has the keyboard; its radio button is just before it, and
    # the arrow key moves the choice down to "Join an existing clinic".
    app.key("shift+Tab", "Down", "Return")
    app.pause(0.8)
    # "Through the clinic server" has the keyboard; then the fields in reading order
    # (the CA file's "Choose…" button between the CA field and the workstation's name,
    # whose host name Tab selects, so that typing replaces it).
    app.key("Tab")
    app.type(url)
    app.key("Tab")
    app.type(code)
    app.key("Tab")
    app.type(str(ca))
    app.key("Tab", "Tab")
    app.type("Front desk")
    app.key("Tab")
    app.type("admin")
    app.key("Tab")
    app.type(PASSWORD)
    app.shot("join-typed")
    app.key("Return")


HaltJoin = Callable[[str], HaltedJoin]


@pytest.fixture
def halted_join(
    screen: VirtualScreen, tmp_path: Path, files: Path, no_keyring: None
) -> Iterator[HaltJoin]:
    """Call with a name for the screenshots' folder: the app on an empty folder, its join
    stopped by the server going away once the enrollment code was accepted; the wizard
    showing the failure."""
    folder = tmp_path / "new"
    marker = folder / JOIN_PENDING_MARKER
    with contextlib.ExitStack() as cleanup:
        running, admin, clinic = cleanup.enter_context(
            server_process_with_admin(tmp_path / "server", CLINIC)
        )

        def halt(name: str) -> HaltedJoin:
            clinic_with_a_patient(admin, running, clinic, tmp_path / "other-desk")
            code, _ = admin.registry.issue_enroll_code(clinic, 10)  # one use
            ca = files / "ca.pem"
            ca.write_text(running.ca_pem)
            # Between its two connections (the code, then the first sync) the workstation
            # writes its marker: the server is stopped before the second goes anywhere.
            relay = cleanup.enter_context(
                Relay(running.port, cut_when=marker.exists, on_cut=running.stop)
            )
            app = Desktop(screen, folder, shots_folder(tmp_path, name))
            halted = HaltedJoin(app, folder, running, relay.port)
            cleanup.callback(lambda: halted.server.stop())
            cleanup.callback(lambda: halted.app.quit())
            join_through_the_wizard(app, relay.url, code, ca)
            app.wait(relay.cut.is_set, "the server to be stopped mid-join")
            relay.close()  # nothing listens at the workstation's address now
            # Enrolled under the name typed (the server's list is how IT finds it).
            assert "Front desk" in [d.name for d in admin.registry.devices(clinic)]
            # The first sync fails at once (nothing answers); the attempt is kept, closed
            # (its database's write-ahead log folded in), and the wizard says so.
            wal = folder / "clinic.db-wal"
            app.wait(lambda: not wal.exists(), "the failed attempt to be closed")
            app.pause(1)
            return halted

        yield halt


def shows_kept_attempt(folder: Path) -> None:
    """The data folder holds the kept attempt: replica, key file, marker."""
    held = {p.name for p in folder.iterdir()}
    assert {"clinic.db", "keyslots.json", JOIN_PENDING_MARKER} <= held, held


def test_a_join_cut_off_by_the_server_is_finished_after_a_restart_with_the_password(
    halted_join: HaltJoin,
) -> None:
    halted = halted_join("join-resumed")
    app, folder = halted.app, halted.folder
    app.shot("join-failed-try-again")
    shows_kept_attempt(folder)
    assert app.quit() == 0, app.tail()

    # The server is back; the app is started again: the wizard opens at Try again, the
    # user name filled in, the keyboard in the password field.
    server = halted.server_again()
    app = halted.app = Desktop(app.screen, folder, app.shots)
    app.pause(1.5)
    app.focus()
    app.shot("restarted-try-again")

    # A wrong password opens nothing and sends nothing: the attempt is kept as it was.
    app.type(WRONG)
    app.key("Return")
    app.pause(3)
    app.shot("wrong-password-refused")
    shows_kept_attempt(folder)
    assert "/v1/sync" not in server.log.read_text()

    # The right one (typed over the refused one, selected) finishes the download with no
    # code (it was spent), and the recovery key is shown.
    app.type(PASSWORD)
    app.key("Return")
    app.wait(lambda: not (folder / JOIN_PENDING_MARKER).exists(), "the download to finish")
    sent = server.log.read_text()
    assert "/v1/sync" in sent and "/v1/enroll" not in sent
    app.pause(1.5)
    app.shot("recovery-key")
    # The keyboard is on Print…; past Copy, the box saying the key is stored; Return is
    # "Continue to sign in".
    app.key("Tab", "Tab", "space")
    app.shot("recovery-key-stored")
    app.key("Return")
    app.pause(1)
    app.shot("sign-in")
    # The sign-in screen has the user name filled in and the keyboard in the password.
    app.type(PASSWORD)
    app.key("Return")
    app.wait_title(f"{CLINIC} — Careline")
    app.shot("signed-in")
    app.key("ctrl+f")
    app.type("mensah")
    app.pause(1)
    app.key("Down", "Return")
    app.wait_title(f"MENSAH, Ama — {CLINIC} — Careline")
    app.shot("patient-chart")
    assert app.quit() == 0, app.tail()

    ws = Workstation(folder)
    ws.sign_in("admin", PASSWORD)
    assert [(p.family, p.given) for p in ws.records.list_patients()] == [("Mensah", "Ama")]
    ws.lock()
    assert not (folder / JOIN_PENDING_MARKER).exists()


def test_a_join_cut_off_by_the_server_is_discarded_leaving_no_replica(
    halted_join: HaltJoin,
) -> None:
    halted = halted_join("join-discarded")
    app, folder = halted.app, halted.folder
    shows_kept_attempt(folder)
    app.key("Tab", "space")  # from the password: Discard this attempt
    box = app.wait_title("Discard this attempt")
    app.screen.xdotool("windowfocus", "--sync", box)
    app.pause(0.4)
    app.shot("discard-asked")
    app.key("Return")  # Discard (the box's default button)
    app.wait_gone("Discard this attempt")
    app.wait(lambda: not (folder / "keyslots.json").exists(), "the attempt to be removed")
    app.pause(1)
    app.focus()
    app.shot("fresh-join-page")
    assert app.quit() == 0, app.tail()
    assert sorted(p.name for p in folder.iterdir()) == []
