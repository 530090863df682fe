"""What the signed-in person may do on the chart shown, for the screens: actions a role may
not do are disabled, with who may do them as the tooltip (core refuses them anyway:
core/records/authorize.py; this only spares a person a refusal)."""

from __future__ import annotations

from PySide6.QtWidgets import QAbstractButton

from core.records.permissions import ACTIONS

# Everything, for a screen not told otherwise (core still decides).
ANY = frozenset({"*"})


def allows(permitted: frozenset[str], action: str) -> bool:
    """Whether ``action`` (a permission matrix name) is among ``permitted``."""
    rule = ACTIONS.get(action)
    return rule is None or "*" in permitted or rule.permission in permitted


def restrict(button: QAbstractButton, permitted: frozenset[str], action: str) -> None:
    """Disable ``button`` when ``action`` is not permitted, saying who may (its tooltip);
    call after the button's own enabling."""
    rule = ACTIONS.get(action)
    if rule is None or allows(permitted, action):
        if button.property("refusal"):
            button.setToolTip("")
            button.setProperty("refusal", "")
        return
    button.setEnabled(False)
    button.setToolTip(rule.refusal())
    button.setProperty("refusal", rule.refusal())
