"""How the main window reaches the schedule: one call from ``Workspace.__init__``.

Adds the "Schedule" toolbar button (Ctrl+D) before Conflicts and the schedule page to the
workspace's page stack, and returns the page; once Start visit has started the visit from
the appointment, the patient's chart opens on its Visits tab showing it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QToolButton, QWidget

from app.chart.visits import VisitsSection
from app.schedule.page import SchedulePage
from app.session.drafts import Draft

if TYPE_CHECKING:  # the main window imports this module
    from app.main_window import Workspace


def add_schedule(workspace: Workspace) -> SchedulePage:
    """Give ``workspace`` a Schedule button and page; return the page."""
    page = SchedulePage(workspace._operations, workspace._records)
    workspace.pages.addWidget(page)
    action = QAction("Schedule", workspace)
    action.setShortcut(QKeySequence("Ctrl+D"))
    action.setToolTip("Today's schedule and the waiting room (Ctrl+D)")
    workspace.toolbar.insertAction(workspace.conflicts_action, action)
    button = workspace.toolbar.widgetForAction(action)
    before = workspace.toolbar.widgetForAction(workspace.new_patient_action)
    after = workspace.toolbar.widgetForAction(workspace.conflicts_action)
    if isinstance(button, QToolButton):
        button.setObjectName("toolbarButton")
        button.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        # Tab reaches it where it sits (it was made after the other buttons).
        QWidget.setTabOrder(before, button)
        QWidget.setTabOrder(button, after)

    action.triggered.connect(lambda: show_schedule(workspace, page))
    page.open_chart_requested.connect(workspace.open_chart)
    page.start_visit_requested.connect(
        lambda appointment_id, patient_id: start_visit(workspace, appointment_id, patient_id)
    )
    page.action = action  # for tests and the keyboard help
    return page


def start_visit(workspace: Workspace, appointment_id: str, patient_id: str) -> None:
    """An arrived patient has gone in (the schedule page started the visit from the
    appointment): open their chart on its Visits tab, showing that visit."""

    def then() -> None:
        chart = workspace.chart
        for section in chart.sections:
            if isinstance(section, VisitsSection):
                chart.tabs.setCurrentWidget(section.widget())
                section.show_from_appointment(appointment_id)

    workspace._in_chart(patient_id, then)


def show_schedule(workspace: Workspace, page: SchedulePage) -> None:
    """Today's schedule in the workspace."""
    workspace.chart.clear()
    workspace.pages.setCurrentWidget(page)
    page.day_table.setFocus()
    page.go_today()
    page.activate()


def reopen_booking(workspace: Workspace, draft: Draft) -> None:
    """A booking kept across a sign-out (app/session/drafts.py): the schedule, then the
    booking dialog filled as it was."""
    show_schedule(workspace, workspace.schedule)
    workspace.schedule.reopen_booking(draft.values)
