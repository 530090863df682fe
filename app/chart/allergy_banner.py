"""The allergy banner in the chart's header: always visible while a chart is open.

Red with each substance and its severity when allergies are recorded; neutral "No known
allergies" when that was recorded; amber "Allergies not recorded yet" when nobody has
asked (``core.records.allergy_status``). It never scrolls away with the Overview's cards.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QWidget

from core.records.allergy_status import AllergyState, allergy_state, most_severe_first
from core.records.models import Allergy, Patient
from core.records.types import choice_label

# Background, border, text: red for allergies, neutral grey, amber for "not asked".
STYLES = {
    AllergyState.ALLERGIES: ("#fbeaea", "#d9534f", "#8a1c1c"),
    AllergyState.NONE_KNOWN: ("#f1f3f5", "#c9cfd6", "#3d4650"),
    AllergyState.NOT_RECORDED: ("#fdf3dc", "#e0a63a", "#6b4a0f"),
}


def describe(allergies: Sequence[Allergy]) -> str:
    """``Penicillin (Severe) · Latex (Mild) · Peanuts``: substances, most severe first, each
    severity worded as the allergy table and the printed chart word it (one label table)."""
    return " · ".join(
        a.substance
        + (f" ({choice_label(a.severity)})" if a.severity and a.severity != "unknown" else "")
        for a in most_severe_first(allergies)
    )


class AllergyBanner(QFrame):
    """One line under the patient's name saying what is known about allergies."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("allergyBanner")
        self.caption = QLabel()
        self.caption.setObjectName("allergyBannerCaption")
        self.text = QLabel()
        self.text.setObjectName("allergyBannerText")
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 7, 12, 7)
        layout.setSpacing(10)
        layout.addWidget(self.caption)
        layout.addWidget(self.text, 1)
        self.state: AllergyState | None = None
        self.hide()

    def show_allergies(self, patient: Patient, allergies: Sequence[Allergy]) -> None:
        """Show the state for this patient's recorded allergies and allergy status."""
        self.state = allergy_state(patient, tuple(allergies))
        if self.state is AllergyState.ALLERGIES:
            self.caption.setText("⚠ Allergies:")
            self.text.setText(describe(allergies))
        elif self.state is AllergyState.NONE_KNOWN:
            self.caption.setText("No known allergies")
            self.text.setText("")
        else:
            self.caption.setText("⚠ Allergies not recorded yet")
            self.text.setText("Ask the patient and record them, or record no known allergies.")
        background, border, colour = STYLES[self.state]
        self.setStyleSheet(
            f"#allergyBanner {{ background: {background}; border: 1px solid {border};"
            f" border-radius: 6px; }} #allergyBanner QLabel {{ color: {colour}; }}"
            " #allergyBannerCaption { font-weight: bold; }"
        )
        self.setAccessibleName(f"{self.caption.text()} {self.text.text()}".strip())
        self.show()

    def clear(self) -> None:
        """No chart open: show nothing."""
        self.state = None
        self.caption.clear()
        self.text.clear()
        self.hide()
