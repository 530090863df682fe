"""Where a person sees that a setting of their own is not used because IT locked it in the
machine-wide configuration (core.config.machine): a line in the status bar, instead of a
log warning nobody at the desk reads."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtWidgets import QLabel, QWidget

from core.config.settings import IgnoredValue


def locked_settings_text(ignored: Sequence[IgnoredValue]) -> str:
    """One sentence per ignored setting, e.g. ``auto_lock_minutes is set by your IT
    department; your own value 30 is not used.`` (the tooltip names the files)"""
    seen: dict[str, IgnoredValue] = {}
    for item in ignored:
        seen.setdefault(item.name, item)  # the same setting from the file and the environment
    return " ".join(
        f"{item.name} is set by your IT department; your own value {item.value} is not used."
        for item in seen.values()
    )


def locked_settings_details(ignored: Sequence[IgnoredValue]) -> str:
    """Where each ignored value was given and where IT's value comes from (the tooltip)."""
    return "\n".join(
        f"{item.name} = {item.value} in {item.given_in} is not used: the machine "
        f"configuration {item.locked_by} locks it."
        for item in ignored
    )


class LockedSettingsNotice(QLabel):
    """The status bar's note about the person's own settings that IT's configuration
    overrides; hidden when there are none."""

    def __init__(self, ignored: Sequence[IgnoredValue], parent: QWidget | None = None) -> None:
        super().__init__(locked_settings_text(ignored), parent)
        self.setObjectName("lockedSettingsNotice")
        self.setToolTip(locked_settings_details(ignored))
        if not ignored:
            self.hide()  # explicitly: the status bar then leaves it hidden
