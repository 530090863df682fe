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


def restrict(
    button: QAbstractButton, permitted: frozenset[str], action: str, *, enabled: bool
) -> None:
    """Enable ``button`` when the screen would (``enabled``: a row selected, a chart shown)
    and ``action`` is permitted to the person signed in; else disable it, saying who may (its
    tooltip) when the permission is what is missing.

    The one place a gated button's enabled state is set, recomputed every time: a button
    disabled for one person (the front desk) must work again for the next (a clinician)."""
    rule = ACTIONS.get(action)
    allowed = rule is None or allows(permitted, action)
    button.setEnabled(enabled and allowed)
    refused = button.property("refusal")
    if allowed or rule is None:
        if refused:  # the button's own tooltip again, in place of the refusal
            button.setToolTip(button.property("own_tooltip") or "")
            button.setProperty("refusal", "")
        return
    if not refused:
        button.setProperty("own_tooltip", button.toolTip())
    button.setToolTip(rule.refusal())
    button.setProperty("refusal", rule.refusal())
