"""How the main window reaches the administrators' review screens: one call from
``Workspace.__init__`` adds Settings → "Audit log…", "Break-glass reviews…", "Import
patients…" and "FHIR export and import…" (shown to administrators only: core refuses them
to anyone else too)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtGui import QAction

from app.admin.audit_log import AuditLogDialog
from app.admin.break_glass_reviews import BreakGlassReviewsDialog
from app.admin.fhir import FhirDialog
from app.admin.import_patients import ImportPatientsDialog
from app.admin.workstations import WorkstationsDialog
from app.widgets import OneDialog

if TYPE_CHECKING:  # the main window imports this module
    from app.main_window import Workspace


class AdminTools(OneDialog):
    """The Settings menu's review actions and the dialog open from them (``dialog``)."""

    def __init__(self, workspace: Workspace) -> None:
        super().__init__()
        self._workspace = workspace
        menu = workspace.settings_menu
        self.audit_log_action = QAction("Audit log…", workspace)
        self.audit_log_action.setToolTip(
            "Who did what on this workstation, filtered and exported (administrators only)"
        )
        self.audit_log_action.triggered.connect(self.show_audit_log)
        self.reviews_action = QAction("Break-glass reviews…", workspace)
        self.reviews_action.setToolTip(
            "Emergency openings of charts waiting for review (administrators only)"
        )
        self.reviews_action.triggered.connect(self.show_reviews)
        self.import_action = QAction("Import patients…", workspace)
        self.import_action.setToolTip(
            "Move a clinic in: a patient list from a spreadsheet (administrators only)"
        )
        self.import_action.triggered.connect(self.show_import)
        self.fhir_action = QAction("FHIR export and import…", workspace)
        self.fhir_action.setToolTip(
            "The clinic's charts out as a FHIR R4 bundle, or a bundle in (administrators only)"
        )
        self.fhir_action.triggered.connect(self.show_fhir)
        self.workstations_action = QAction("Paired workstations…", workspace)
        self.workstations_action.setToolTip(
            "Workstations this computer let join; revoke a lost one (administrators only)"
        )
        self.workstations_action.triggered.connect(self.show_workstations)
        before = workspace.new_recovery_key_action
        menu.insertAction(before, self.audit_log_action)
        menu.insertAction(before, self.reviews_action)
        menu.insertAction(before, self.import_action)
        menu.insertAction(before, self.fhir_action)
        menu.insertAction(before, self.workstations_action)

    def set_admin(self, is_admin: bool) -> None:
        """Show the actions to administrators only."""
        self.audit_log_action.setVisible(is_admin)
        self.reviews_action.setVisible(is_admin)
        self.import_action.setVisible(is_admin)
        self.fhir_action.setVisible(is_admin)
        self.workstations_action.setVisible(is_admin)

    def show_audit_log(self) -> None:
        """Settings → Audit log…"""
        ws = self._workspace
        self.open(AuditLogDialog(ws._operations, ws._records, ws))

    def show_reviews(self) -> None:
        """Settings → Break-glass reviews…"""
        ws = self._workspace
        self.open(BreakGlassReviewsDialog(ws._operations, ws._records, ws))

    def show_import(self) -> None:
        """Settings → Import patients…"""
        ws = self._workspace
        self.open(ImportPatientsDialog(ws._operations, ws._records, ws))

    def show_workstations(self) -> None:
        """Settings → Paired workstations…"""
        ws = self._workspace
        self.open(WorkstationsDialog(ws._operations, ws._records, ws))

    def show_fhir(self) -> None:
        """Settings → FHIR export and import…"""
        ws = self._workspace
        self.open(FhirDialog(ws._operations, ws._records, ws))
