"""Start the desktop app: settings, QApplication set-up, stylesheet, the main window."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any

from PySide6.QtCore import QDir, QTimer
from PySide6.QtGui import QFont, QGuiApplication, QIcon
from PySide6.QtWidgets import QApplication, QMessageBox

from app.background_errors import on_gui_thread, report_off_gui_thread
from app.garbage import GuiThreadCollector
from app.main_window import APP_NAME, MainWindow
from app.messages import describe_error
from app.session.auto_lock import hours_to_ms, minutes_to_ms
from app.sync.lan_peer import LanOptions
from app.sync.transfers import AttachmentSettings
from core.config import desktop
from core.config.machine import load_machine_config
from core.config.settings import ConfigError
from core.crypto.kdf import DEFAULT_PARAMS, Argon2Params
from core.records.workstation import Workstation
from core.sync.silent_join import MachineEnrollment

log = logging.getLogger(__name__)

STYLESHEET_NAME = "careline.qss"
# The reverse-DNS id naming the .desktop entry, icon and metainfo (resources/linux).
DESKTOP_APP_ID = "org.careline.Careline"
ICON_NAME = "careline.svg"
EXIT_USAGE = 2  # as the CLI: bad configuration
PREFERRED_FONTS = ["Inter", "Segoe UI", "Noto Sans", "Cantarell", "DejaVu Sans"]
MIN_POINT_SIZE = 10.5


def load_desktop_settings(data_dir: Path | None) -> dict[str, Any]:
    """Settings as the CLI resolves them (core.config.desktop): CLI > environment >
    data-dir config > machine-wide config > default, locked machine settings first."""
    return desktop.load_desktop_settings(desktop.resolve_data_dir(data_dir))


def resources_dir() -> Path | None:
    """Where the stylesheet and its images are: the source tree when running from one (so
    edits show at once), else the installed copy (wheel data files, ``<prefix>/share/careline``)."""
    candidates = [
        Path(__file__).resolve().parent.parent / "resources",
        Path(sys.prefix) / "share" / "careline",
        Path(str(resources.files("app").joinpath("resources"))),
    ]
    for candidate in candidates:
        if (candidate / STYLESHEET_NAME).is_file():
            return candidate
    return None


def stylesheet() -> str:
    """The Qt stylesheet text (empty, with a warning, if it cannot be found)."""
    folder = resources_dir()
    if folder is None:
        log.warning("stylesheet %s not found; using the platform look", STYLESHEET_NAME)
        return ""
    return (folder / STYLESHEET_NAME).read_text(encoding="utf-8")


def set_up_application(app: QApplication) -> None:
    """Name, a readable font, and the calm stylesheet."""
    app.setApplicationName(APP_NAME)
    app.setApplicationDisplayName(APP_NAME)
    app.setOrganizationName(APP_NAME)
    app.setDesktopFileName(DESKTOP_APP_ID)
    app.setFont(readable_font(QGuiApplication.font()))
    app.setStyle("Fusion")  # the same look on every platform; the stylesheet builds on it
    folder = resources_dir()
    if folder is not None:
        # The stylesheet names its images as careline:NAME, wherever it is installed.
        QDir.addSearchPath("careline", str(folder))
    app.setWindowIcon(window_icon(folder))
    app.setStyleSheet(stylesheet())


def readable_font(system: QFont) -> QFont:
    """The app's font: the first of PREFERRED_FONTS installed, at least MIN_POINT_SIZE."""
    font = QFont(system)
    font.setFamilies(PREFERRED_FONTS)
    if font.pointSizeF() < MIN_POINT_SIZE:
        font.setPointSizeF(MIN_POINT_SIZE)
    return font


def window_icon(folder: Path | None) -> QIcon:
    """The app icon: the installed icon theme's (the .deb puts it in hicolor), else the SVG
    beside the stylesheet (a source tree, a wheel, a frozen build on another system)."""
    fallback = QIcon(str(folder / "icons" / ICON_NAME)) if folder is not None else QIcon()
    return QIcon.fromTheme(DESKTOP_APP_ID, fallback)


def create_main_window(
    args: argparse.Namespace,
    workstation: Workstation | None = None,
    kdf_params: Argon2Params = DEFAULT_PARAMS,
    auto_lock_ms: int | None = None,
) -> MainWindow:
    """Resolve settings and build the (not yet shown) main window.

    ``workstation``, ``kdf_params`` and ``auto_lock_ms`` exist so tests can use a clinic in
    a temporary folder, cheap key derivation and a short idle timeout. Raises ConfigError.
    """
    settings = load_desktop_settings(getattr(args, "data_dir", None))
    ignored = desktop.ignored_own_settings(settings["data_dir"])
    if workstation is None:
        data_dir = settings["data_dir"]
        workstation = Workstation(data_dir, kdf_params=kdf_params)
    timeout = auto_lock_ms or minutes_to_ms(int(settings["auto_lock_minutes"]))
    window = MainWindow(
        workstation,
        auto_lock_ms=timeout,
        close_after_ms=hours_to_ms(int(settings["close_after_idle_hours"])),
        initial_user=getattr(args, "user", None) or "",
        sync_options={
            "lan": LanOptions(),
            "attachments": AttachmentSettings(
                int(settings["attachment_cache_mb"]), int(settings["attachment_prefetch_percent"])
            ),
        },
        demo=bool(getattr(args, "demo", False)),
        silent_enrollment=MachineEnrollment.from_settings(settings, _enrollment_source()),
        ignored_settings=ignored,
    )
    window.backups.schedule.configure(
        settings["backup_dir"], int(settings["backup_keep"]), int(settings["backup_every_hours"])
    )
    return window


def _enrollment_source() -> str:
    """Where the enrollment settings come from (the file or registry key), for IT at the desk."""
    found = load_machine_config().sources.get("enroll_code")
    return found or "the machine-wide configuration"


def _report_unexpected(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    if not on_gui_thread():
        # A slot of the sync or database thread: no message box can be made there.
        report_off_gui_thread(exc_type, exc, tb)
        return
    # A bug in a slot must not take the app down with patient data on screen; say so.
    log.error("unexpected error", exc_info=(exc_type, exc, tb))
    if QApplication.instance() is not None and isinstance(exc, Exception):
        QMessageBox.warning(None, APP_NAME, describe_error(exc))


def quit_on_termination(app: QApplication) -> None:
    """SIGTERM/SIGINT (log-out, shutdown, Ctrl+C) quit the event loop, so the app locks.

    Without this the process would die with the database open and keys in memory.
    ``exit``, not ``quit``: Qt 6's quit first asks every window to close, and a form
    holding typed text declines (it asks "Discard what you typed?"), which would leave the
    app running, unlocked, through a log-out or shutdown. ``run_app`` locks after the loop.
    """
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda _signum, _frame: app.exit(0))
    # Python runs signal handlers only when the interpreter gets control; Qt's event loop
    # is C++, so a short idle timer lets Python in a few times a second.
    ticker = QTimer(app)
    ticker.timeout.connect(lambda: None)
    ticker.start(250)


def run_app(args: argparse.Namespace) -> int:
    """Open the desktop app (``careline`` with no command); returns the exit code."""
    app = QApplication.instance()
    if not isinstance(app, QApplication):
        app = QApplication(sys.argv[:1])
    set_up_application(app)
    try:
        window = create_main_window(args)
    except ConfigError as exc:
        QMessageBox.critical(None, f"{APP_NAME} cannot start", f"Configuration problem: {exc}")
        return EXIT_USAGE
    sys.excepthook = _report_unexpected
    quit_on_termination(app)
    collector = GuiThreadCollector(app)
    window.show()
    window.start()
    try:
        return app.exec()
    finally:
        window.shutdown()
        collector.stop()
