"""Settings → Paired workstations… (administrators): on the workstation that holds the
clinic's LAN CA (a clinic with no server), every workstation it let join, and Revoke for a
lost, stolen or retired one (``careline pair devices`` / ``pair revoke`` on the command
line)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QWidget,
)

from app.messages import describe_error
from app.operations import Operations
from app.patients.dialog import RecordsProvider
from app.review_list import OneWrite, ReviewTable
from app.widgets import ask_first, dialog_layout
from core.sync.enroll import load_credential
from core.sync.lan import identity as lan_id


@dataclass(frozen=True)
class Certified:
    """What the dialog shows: whether this workstation holds the CA, and what it issued;
    ``joined``: it has a LAN certificate or a server enrollment without holding the CA, so
    another workstation (or the server) let it in and holds the CA."""

    holds_ca: bool
    devices: list[lan_id.IssuedDevice]
    joined: bool = True


def read_certified(provider: RecordsProvider) -> Certified:
    """The workstations this one certified (on the worker; refused to non-administrators)."""
    records = provider()
    records.require("lan.devices.list", None)
    db = records.db
    joined = lan_id.load_identity(db) is not None or load_credential(db) is not None
    return Certified(lan_id.has_ca_key(db), lan_id.issued_devices(db), joined)


def _local(stamp: str) -> str:
    try:
        return datetime.fromisoformat(stamp).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return stamp


def _seen(device: lan_id.IssuedDevice) -> str:
    """Where and when this computer last saw the workstation (its pairing, else a sync)."""
    if device.this_device:
        return "This computer"
    seen = device.last_seen
    if seen is None:
        return "Not recorded"
    return f"{seen.address} at {_local(seen.at)}{' (pairing)' if seen.pairing else ''}"


def _state(device: lan_id.IssuedDevice) -> str:
    if device.revoked and device.revoked_at:
        return f"Revoked {_local(device.revoked_at)}"
    if device.revoked:
        return "Revoked"
    return "This workstation" if device.this_device else "Active"


class WorkstationsDialog(QDialog):
    """The certified workstations, and Revoke… for the one selected."""

    READ = "paired workstations"
    COLUMNS = ("Workstation (device id)", "State", "Joined", "Last seen", "Certificate serials")

    def __init__(
        self, operations: Operations, records: RecordsProvider, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._operations = operations
        self._records = records
        self._devices: ReviewTable[lan_id.IssuedDevice] = ReviewTable(
            self.COLUMNS, "workstationsTable"
        )
        self.setObjectName("workstationsDialog")
        self.setWindowTitle("Paired workstations")
        self.resize(900, 420)
        heading = QLabel("Workstations this computer let join the clinic")
        heading.setObjectName("dialogHeading")
        explain = QLabel(
            "Revoke a workstation that was lost, stolen or retired: the clinic's workstations "
            "refuse it from their next sync with this one (or with one that synced since), "
            "and refuse every change it makes from then on. Its records stay on the clinic's "
            "other workstations. A revoked workstation must be paired again as a new one."
        )
        explain.setWordWrap(True)
        seen = QLabel(
            "Last seen: the address this computer last saw the workstation at, and when, in "
            "a sync either way (to within 10 minutes) or, before any, where it paired from."
        )
        seen.setObjectName("hint")
        seen.setWordWrap(True)
        self.table = self._devices.table
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.status = QLabel()
        self.status.setObjectName("hint")
        self.status.setWordWrap(True)
        self._write = OneWrite(operations, self.status, self._update_buttons)
        self.revoke_button = QPushButton("Revoke…")
        self.revoke_button.setObjectName("danger")
        # Never the default button: the default's blue fill would hide the danger colour,
        # and Enter must not start a revocation.
        self.revoke_button.setAutoDefault(False)
        self.revoke_button.setDefault(False)
        self.revoke_button.setToolTip("Shut the selected workstation out of the clinic")
        self.revoke_button.clicked.connect(self.revoke)
        row = QWidget()
        bar = QHBoxLayout(row)
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addStretch(1)
        bar.addWidget(self.revoke_button)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        dialog_layout(self, heading, explain, seen, self.table, row, self.status, buttons)
        self.confirm_box: QMessageBox | None = None
        self.refresh()

    def refresh(self) -> None:
        """Read the list again (on the worker)."""
        records = self._records
        self._operations.read(
            self.READ, lambda: read_certified(records), self._arrived, self._failed
        )

    def _arrived(self, certified: Certified) -> None:
        self._devices.show(
            certified.devices,
            lambda d: (
                d.device_id,
                _state(d),
                _local(d.first_issued),
                _seen(d),
                ", ".join(str(s) for s in d.serials),
            ),
        )
        if not certified.holds_ca and not certified.joined:
            # The clinic's first workstation before its first pairing code: the CA is
            # made with that code, on this computer.
            self.status.setText(
                "No workstation has been paired yet. Settings → Pair a workstation… on this "
                "computer makes the first pairing code; the workstations that join with it "
                "are listed here."
            )
        elif not certified.holds_ca:
            self.status.setText(
                "This computer does not hold the clinic's LAN certificate authority, so it let "
                "no workstation join. Open this on the workstation that shows pairing codes, or "
                "revoke a device on the clinic server (careline-server admin device revoke)."
            )
        else:
            active = sum(1 for d in certified.devices if not d.revoked and not d.this_device)
            self.status.setText(
                f"{active} other workstation{'s' if active != 1 else ''} may sync with the clinic."
            )
        self._update_buttons()

    def _failed(self, exc: Exception) -> None:
        self.status.setText(describe_error(exc))

    def selected(self) -> lan_id.IssuedDevice | None:
        """The workstation whose row is selected."""
        return self._devices.selected()

    def _update_buttons(self) -> None:
        device = self.selected()
        self.revoke_button.setEnabled(
            device is not None
            and not device.revoked
            and not device.this_device
            and not self._write.busy
        )

    def revoke(self) -> None:
        """Ask, then revoke the selected workstation (Cancel is the default)."""
        device = self.selected()
        if device is None or device.revoked or device.this_device or self.confirm_box:
            return
        self.confirm_box = ask_first(
            self,
            "confirmRevokeWorkstation",
            "Revoke workstation",
            f"Revoke workstation {device.device_id}?",
            "It will no longer sync with the clinic, and changes it makes from now on are "
            "refused everywhere. This cannot be undone: to use that computer again, pair it "
            "as a new workstation.",
            "Revoke",
            lambda chosen: self._answered(chosen, device.device_id),
        )

    def _answered(self, chosen: bool, device_id: str) -> None:
        self.confirm_box = None
        if not chosen:
            return
        records = self._records

        def run() -> set[int]:
            r = records()
            return lan_id.revoke_device(r.db, device_id, r.actor)

        self._write.run(
            run,
            lambda _serials: self.refresh(),
            "revoke workstation",
            failed_prefix="Not revoked. ",
        )

    def done(self, result: int) -> None:
        """Close; a read in flight is dropped."""
        self._operations.cancel(self.READ)
        super().done(result)
