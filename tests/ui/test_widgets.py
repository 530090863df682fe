"""Shared form rules: the mouse wheel scrolls a form, it never changes a value in it."""

from __future__ import annotations

from PySide6.QtWidgets import QScrollArea, QSpinBox, QVBoxLayout, QWidget
from pytestqt.qtbot import QtBot

from app.widgets import ignore_wheel
from tests.ui.conftest import wheel


def test_the_wheel_scrolls_past_a_spin_box_instead_of_changing_it(qtbot: QtBot) -> None:
    area = QScrollArea()
    qtbot.addWidget(area)
    content = QWidget()
    layout = QVBoxLayout(content)
    guarded, plain = QSpinBox(), QSpinBox()
    for spin in (guarded, plain):
        spin.setValue(50)
        layout.addWidget(spin)
    layout.addSpacing(2_000)  # taller than the view: there is something to scroll
    area.setWidget(content)
    area.resize(200, 150)
    area.show()
    qtbot.waitExposed(area)
    ignore_wheel(guarded)

    wheel(plain)
    assert plain.value() == 49  # an unguarded spin box takes the wheel
    assert area.verticalScrollBar().value() == 0

    wheel(guarded, notches=-2)
    assert guarded.value() == 50
    assert area.verticalScrollBar().value() > 0  # the wheel scrolled the form instead
