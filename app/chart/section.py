"""What a part of the chart (a tab such as Visits or Vitals, or a card on the Overview)
provides, so that each part lives in a module of its own and the page only lists it.

The page tells every section which patient is shown (after the audited opening of the
chart has succeeded) and when nothing is shown any more (leaving the chart, signing out).
A section reads its own records through :class:`app.operations.Operations` (``read`` with a
key of its own, so a newer read supersedes an older one) and refreshes itself from
``Operations.changed``, like every other screen.
"""

from __future__ import annotations

from typing import Protocol

from PySide6.QtWidgets import QWidget


class ChartSection(Protocol):
    """A part of the chart."""

    def widget(self) -> QWidget:
        """The widget to show (a tab's page or a card)."""
        ...

    def show_patient(self, patient_id: str) -> None:
        """Show this patient's records (the chart was opened and audited)."""
        ...

    def clear(self) -> None:
        """Forget every patient detail: cancel reads, close dialogs, empty widgets."""
        ...
