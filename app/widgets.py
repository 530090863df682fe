"""Small building blocks every screen uses, so forms and messages look the same everywhere."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from PySide6.QtCore import (
    QEvent,
    QMetaObject,
    QModelIndex,
    QObject,
    QSize,
    Qt,
    SignalInstance,
    Slot,
)
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QFontMetricsF,
    QKeyEvent,
    QKeySequence,
    QPainter,
    QPaintEvent,
    QResizeEvent,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLayout,
    QLineEdit,
    QListView,
    QListWidget,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from app.keyboard_place import KEYBOARD, keyboard_place, put_keyboard_back
from app.messages import validation_text
from core.records.errors import ValidationError


class FieldError(QLabel):
    """A field's validation message (see ``error_label``): shown in a dialog, the dialog
    makes room for every line of it (``keep_room_for_contents``), its buttons staying
    where they are on the screen (``hold_buttons``)."""

    def setVisible(self, visible: bool) -> None:
        """Show or hide; shown in an open dialog, the dialog grows to hold all its lines
        (and gives the room back once it is hidden: ``give_back_room``), its buttons
        staying where the person aims (``hold_buttons``); a form whose keyboard went
        nowhere while its work ran puts it back on the field the message is about:
        :meth:`TypedForm.message_shown`."""
        window = self.window()
        changes = visible == self.isHidden()
        if changes:
            hold_buttons(window)
        # Showing it raises the dialog's minimum height at once: the height before that
        # is the one to go back to.
        height = window.height()
        super().setVisible(visible)
        if visible:
            _grow_from(window, height)
        if changes:
            put_buttons_back(window)
        if visible and isinstance(window, TypedForm):
            window.message_shown(self)

    def setText(self, text: str) -> None:
        """A new message: one that needs more lines than the last gets them at once (one
        that needs fewer gives them back), the dialog's buttons staying where they are."""
        window = self.window()
        shown = self.isVisible()
        if shown:
            hold_buttons(window)
        super().setText(text)
        if shown:
            grow_to_fit(window)
            put_buttons_back(window)


def _grow_from(window: QWidget, height: int) -> None:
    """Something was just shown in ``window`` (a dialog) that was ``height`` pixels high
    before: it grows to hold it, and remembers that height to give the room back to."""
    if isinstance(window, QDialog):
        keep_room_for_contents(window)
        grow_to_fit(window, height)


def error_label() -> QLabel:
    """A hidden, word-wrapped label for a field's validation message; shown, its dialog
    grows to hold every line of it rather than cut it or draw it over the next field."""
    label = FieldError()
    label.setObjectName("fieldError")
    label.setWordWrap(True)
    label.hide()
    return label


class _WheelGuard(QObject):
    """Swallows wheel events meant for the widget it watches (see ``ignore_wheel``)."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Keep the wheel from the widget; ignored, the event goes on to its parent."""
        if event.type() == QEvent.Type.Wheel:
            event.ignore()  # Qt then offers it to the parent: the form or page scrolls
            return True
        return False


def ignore_wheel(*widgets: QWidget) -> None:
    """The mouse wheel never changes these widgets' values (a choice, a number, a date).

    A form's rule: a value changes only when the person means to change it. Scrolling a
    form while the pointer passes over a combo box or spin box would otherwise pick
    another sex or severity unnoticed. The wheel scrolls what contains the widget instead,
    and no longer gives it focus; the keyboard and a click still work as usual (an open
    drop-down list scrolls as usual too: it is another widget).
    """
    for widget in widgets:
        if widget.property("ignoresWheel"):
            continue  # guarded already (a form guards its own choices too: TypedForm)
        widget.setProperty("ignoresWheel", True)
        if widget.focusPolicy() == Qt.FocusPolicy.WheelFocus:
            widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        widget.installEventFilter(_WheelGuard(widget))


# Keys a number starts with: typed on a closed choice box, they are a value meant for the
# next field (``_DeliberateChoice``).
_NUMBER_STARTS = ".,-"
# Fields a number typed one Tab short goes on to (as text; a button or a box takes none).
_TEXT_FIELDS = (QLineEdit, QAbstractSpinBox, QPlainTextEdit, QTextEdit)


def next_tab_stop(widget: QWidget) -> QWidget | None:
    """The control Tab goes to from ``widget``, as Qt finds it: the next one in the focus
    chain that takes focus by Tab, is shown, enabled, in the same window and no other's
    focus proxy (a spin box's own line edit). None when there is none but ``widget``."""
    window = widget.window()
    seen: set[QWidget] = set()
    after = widget.nextInFocusChain()
    while after is not None and after is not widget and after not in seen:
        seen.add(after)
        if (
            (after.focusPolicy() & Qt.FocusPolicy.TabFocus) == Qt.FocusPolicy.TabFocus
            and after.focusProxy() is None
            and after.window() is window
            and after.isVisibleTo(window)
            and after.isEnabled()
        ):
            return after
        after = after.nextInFocusChain()
    return None


def _takes_text(widget: QWidget | None) -> bool:
    """True for a field people type text or numbers into (not one only shown)."""
    if not isinstance(widget, _TEXT_FIELDS):
        return False
    return not (isinstance(widget, (QLineEdit, QPlainTextEdit, QTextEdit)) and widget.isReadOnly())


def numbers_never_choose(box: QComboBox) -> None:
    """A number typed on ``box`` closed always goes on to the next field (``guard_choices``),
    even where its items start with digits, as the Vitals form's Visit box's do ("09:30
    Follow-up"): nobody picks a visit there by its time, and a nurse one Tab short typing
    a blood pressure had its first digit open the list, which took the rest of the set."""
    box.setProperty("numbersNeverChoose", True)


class _DeliberateChoice(QObject):
    """Watches a combo box and its list for ``choose_deliberately``."""

    def __init__(self, box: QComboBox) -> None:
        super().__init__(box)
        self._box = box
        self._letters = 0  # printable keys typed since the list last opened

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Printable keys on the box or its open list; every other event goes on."""
        box = self._box
        if event.type() == QEvent.Type.Show and watched is box.view():
            self._letters = 0  # the list opened afresh (a click, F4, Alt+Down, Space)
            return False
        if event.type() != QEvent.Type.KeyPress or not isinstance(event, QKeyEvent):
            return False
        text = event.text()
        # Shift, and the keypad's digits: Qt's own search chose an item by a keypad digit.
        plain = event.modifiers() & ~(
            Qt.KeyboardModifier.ShiftModifier | Qt.KeyboardModifier.KeypadModifier
        )
        if not text or not text.isprintable() or plain:
            return False  # arrows, Return, Escape, Tab, F4 and shortcuts work as usual
        view = box.view()
        if not view.isVisible():
            if text.isspace():
                return False  # Space opens the list, as in any box
            if self._number_goes_on(event):
                return True
            box.showPopup()
            self._letters = 0
        self._letters += 1
        if self._letters == 1:
            # The first letter, on the closed box or in the list a click opened: the first
            # item starting with it, for Return or a click to take.
            first = text.casefold()
            for row in range(box.count()):
                if box.itemText(row).casefold().startswith(first):
                    view.setCurrentIndex(view.model().index(row, box.modelColumn()))
                    break
        elif self._letters == 2:
            # A word, not a choice: the list goes back to what was chosen, and Return
            # there changes nothing (with nothing chosen yet, Return chooses nothing).
            current = box.currentIndex()
            view.setCurrentIndex(
                view.model().index(current, box.modelColumn()) if current >= 0 else QModelIndex()
            )
        return True  # the list's own search walks it letter by letter: never

    def _number_goes_on(self, event: QKeyEvent) -> bool:
        """A number typed on the closed box, one Tab short, goes on to the next field as if
        Tab came first (True: it went there). Only where no item starts with it (in a box
        of "1 week", "30 minutes" a digit is a choice: the list opens there), and only to
        a field that takes text: a button or another box takes none, and the list opens
        as for a letter. The box's choice stays as it was."""
        box, text = self._box, event.text()
        if len(text) != 1 or not (text.isdecimal() or text in _NUMBER_STARTS):
            return False
        if not box.property("numbersNeverChoose") and any(
            box.itemText(row).startswith(text) for row in range(box.count())
        ):
            return False
        field = next_tab_stop(box)
        if field is None or not _takes_text(field):
            return False
        # Tab's own focus reason: a line edit or spin box selects what it holds, to be typed
        # over; a date edit its first part; a text box keeps its cursor.
        field.setFocus(Qt.FocusReason.TabFocusReason)
        typed = QKeyEvent(event.type(), event.key(), event.modifiers(), text)
        QApplication.sendEvent(field, typed)
        return True


def choose_deliberately(box: QComboBox) -> None:
    """``box`` (not editable) changes only when the person picks an item: with the arrow
    keys, Return or a click in its open list, or the arrow keys on the closed box.

    Qt's boxes choose as letters are typed: a password typed into a role box by mistake (a
    click that landed on nothing left the keyboard there) walked its list letter by letter
    and ended on Admin, which the Return after the password took. Here one letter opens
    the list (or, in a list already open, moves) to the first item starting with it, for
    Return or a click to take; more
    letters are a word typed in the wrong place: the list goes back to the item chosen
    before (none: nothing to take) and ignores them.

    A number typed on the closed box (a digit, or ``.``, ``,``, ``-``) that no item starts
    with is a value typed one Tab short: it goes on to the next field in the Tab order as if
    Tab came first, when that field takes text (its text selected and typed over, as Tab
    does); else the list opens, as for a letter. "14:30" typed on booking's Clinician box,
    or an MRN on Sex, opened the list, which swallowed the rest of it.
    """
    if box.isEditable() or box.property("choosesDeliberately"):
        return  # typing is what an editable box is for; a guarded one is guarded once
    box.setProperty("choosesDeliberately", True)
    guard = _DeliberateChoice(box)
    box.installEventFilter(guard)
    box.view().installEventFilter(guard)


def guard_choices(*widgets: QWidget) -> None:
    """The rules of every choice and number a form stores: the wheel never changes one
    (``ignore_wheel``), and a choice box (not editable) changes only when the person picks
    an item (``choose_deliberately``). Other widgets are left alone.

    Every form applies it to all its fields when first shown (:class:`TypedForm`), so a
    new form keeps the rules without remembering them: a letter typed on Allergy's closed
    Severity box chose Severe, and "mild rash" typed there by mistake then stored Mild. A
    number typed on a closed box goes on to the text field after it, as if Tab came first.
    """
    for widget in widgets:
        if isinstance(widget, QComboBox):
            choose_deliberately(widget)
        if isinstance(widget, (QComboBox, QAbstractSpinBox)):
            ignore_wheel(widget)


def tab_leaves(*views: QAbstractItemView) -> None:
    """Tab and Shift+Tab leave these lists and tables, on to the next control, as in any
    form; the arrow keys still move within them.

    Qt's tables walk their cells on Tab instead. That showed nothing (the whole row is
    chosen), and past a row's last cell it moved the chosen row, wrapping round to the
    first: a person who chose an appointment and tabbed towards its buttons acted on
    another patient's, and could never Tab out of the table at all.
    """
    for view in views:
        view.setTabKeyNavigation(False)


class _InDialogs(QObject):
    """Watches key presses for ``reach_dialogs``."""

    def __init__(self, action: QAction, owner: QWidget) -> None:
        super().__init__(owner)
        self._action, self._owner = action, owner

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """The action's key reaching the owner's window or one of its dialogs triggers it;
        other events go on untouched."""
        if event.type() != QEvent.Type.KeyPress or not isinstance(event, QKeyEvent):
            return False
        if not isinstance(watched, QWidget) or not self._owner.isVisible():
            return False
        if not self._action.isEnabled():
            return False
        dialog, window = watched.window(), self._owner.window()
        # In the window itself a key press only gets here when the action's own shortcut
        # did not fire: Qt fires a window's shortcuts only while it is the active window,
        # and the keys of a window X left unfocused (no window manager, the pointer over
        # it) still reach its focused field.
        if dialog is not window:
            if not isinstance(dialog, QDialog):
                return False
            parent = dialog.parentWidget()
            while parent is not None and parent is not window:
                parent = parent.parentWidget()
            if parent is None:
                return False  # not one of this window's dialogs
        pressed = QKeySequence(event.keyCombination())
        if not any(pressed.matches(key) == QKeySequence.SequenceMatch.ExactMatch
                   for key in self._action.shortcuts()):  # fmt: skip
            return False
        self._action.trigger()
        return True


def reach_dialogs(action: QAction, owner: QWidget) -> None:
    """``action``'s shortcut works in the dialogs ``owner``'s window opens, too, and in
    that window whether or not Qt counts it as the active one.

    A window's shortcut only fires while that window is active, so an open dialog (the
    note editor, a patient's details) swallowed it: Ctrl+L did not sign out. So did the
    window itself under Xvfb with no window manager after a sign-in: not active, yet the
    keys went on into the patient search. Watched application-wide while ``owner`` is
    shown; only key presses are looked at.
    """
    app = QApplication.instance()
    if app is not None:
        app.installEventFilter(_InDialogs(action, owner))


def _owner(edit: QLineEdit) -> QWidget | None:
    """The combo box or spin box a line edit is part of (None: a field of its own)."""
    parent = edit.parentWidget()
    return parent if isinstance(parent, (QComboBox, QAbstractSpinBox)) else None


def input_value(widget: QWidget) -> object:
    """What a field holds, to compare (None: ``widget`` is not a field people fill in)."""
    if isinstance(widget, QLineEdit):
        return None if _owner(widget) is not None else widget.text()  # read via its owner
    if isinstance(widget, QPlainTextEdit):
        return widget.toPlainText()
    if isinstance(widget, QTextEdit):
        return None if widget.isReadOnly() else widget.toPlainText()
    if isinstance(widget, QComboBox):
        return (widget.currentText(), widget.currentData())
    if isinstance(widget, QAbstractSpinBox):
        return widget.text()
    if isinstance(widget, QAbstractButton) and widget.isCheckable():
        return widget.isChecked()
    return None


def edit_signals(widget: QWidget) -> list[SignalInstance]:
    """The signals saying the person changed ``widget``'s value (typing, choosing,
    ticking), not the program filling it in; [] for a widget that is not a field."""
    if isinstance(widget, QLineEdit):
        return [widget.textEdited]
    if isinstance(widget, (QPlainTextEdit, QTextEdit)):
        return [widget.textChanged]
    if isinstance(widget, QComboBox):
        line = widget.lineEdit()  # an editable box: what is typed in it too
        return [widget.activated, *([line.textEdited] if line is not None else [])]
    if isinstance(widget, QAbstractSpinBox):
        steps: list[SignalInstance] = []
        line = widget.findChild(QLineEdit)
        if line is not None:
            steps.append(line.textEdited)
        changed = getattr(widget, "valueChanged", None) or getattr(widget, "dateChanged", None)
        return [*steps, *([changed] if changed is not None else [])]
    if isinstance(widget, QAbstractButton) and widget.isCheckable():
        return [widget.clicked]
    return []


def clear_when_edited(widget: QWidget, *messages: QLabel, keep_room: bool = False) -> None:
    """The ``messages`` about ``widget`` (its validation error, the form's) go away as soon
    as the person changes its value: a message about a value already put right misleads.
    They show again if a new check finds something wrong. ``keep_room``: the lines a
    message took stay, empty, until ``release_room`` (the form's next check), so nothing
    under it moves."""

    def hide(*_args: Any) -> None:
        for message in messages:
            if keep_room and message.isVisible():
                keep_room_when_hidden(message, True)
            message.hide()

    for signal in edit_signals(widget):
        signal.connect(hide)


def keep_room_when_hidden(widget: QWidget, keep: bool) -> None:
    """``keep``: ``widget``, once hidden, still takes its room in its layout (blank);
    False: its room goes with it, as usual. (A form row keeps it only through a
    :class:`MessageSlot`: QFormLayout ignores the size policy's flag.)"""
    policy = widget.sizePolicy()
    if policy.retainSizeWhenHidden() != keep:
        policy.setRetainSizeWhenHidden(keep)
        widget.setSizePolicy(policy)
    slot = widget.parentWidget()
    if isinstance(slot, MessageSlot):
        slot.follow()


def message_beside(message: QLabel, *buttons: QWidget) -> QHBoxLayout:
    """A row of ``buttons`` (buttons, or a dialog's button box) at the right with
    ``message`` (a hidden error line) on their left. Shown, the message takes the room
    beside them, not a new line above them, so the buttons stay where the person aims: a
    message shown above Resolve pushed it 23 pixels down and the next click missed it. The
    buttons keep to the row's top should the message take more lines than they are high
    (it wraps, whole)."""
    keep_room_when_hidden(message, True)  # hidden, its width still keeps the buttons right
    row = QHBoxLayout()
    row.addWidget(message, 1, Qt.AlignmentFlag.AlignTop)
    for button in buttons:
        row.addWidget(button, 0, Qt.AlignmentFlag.AlignTop)
    return row


class MessageSlot(QWidget):
    """A form row's holder for a field's message: shown while the message is, and while
    the message, hidden, keeps its room (``keep_room_when_hidden``); otherwise hidden, so
    the row takes no room at all."""

    def __init__(self, message: QLabel) -> None:
        super().__init__()
        self._message = message
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(message)
        if message.isHidden():
            self.hide()
        message.installEventFilter(self)

    def follow(self) -> None:
        """Shown or hidden as the message is (or keeps its room)."""
        message = self._message
        kept = message.isHidden() and message.sizePolicy().retainSizeWhenHidden()
        # A hidden message counts for no height in the layout: kept, the room is held by
        # the slot's minimum, or the dialog's giving back room squeezed it away.
        self.setMinimumHeight(self.height() if kept else 0)
        self.setVisible(not message.isHidden() or kept)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """The message shown or hidden: so is the slot. Every event goes on."""
        if watched is self._message and event.type() in (
            QEvent.Type.ShowToParent,
            QEvent.Type.HideToParent,
        ):
            self.follow()
        return False


def in_tab_order(window: QWidget, widgets: Iterable[QWidget]) -> list[QWidget]:
    """``widgets`` in the order Tab visits them in ``window`` (the form's order, as a
    person goes through it); any Tab never reaches last, in the order given."""
    given = list(widgets)
    wanted = set(given)
    rank: dict[QWidget, int] = {}
    seen: set[QWidget] = set()
    widget = window.nextInFocusChain()
    # Only up to the last widget asked about. A first-run wizard page is no window: walking
    # on from it through the whole main window's chain left the Settings menu's separator
    # deleted once the wizard went (test_first_run_end_to_end; the cause inside Qt or
    # PySide was not found).
    while widget is not None and widget is not window and widget not in seen and wanted:
        seen.add(widget)
        if widget in wanted:
            wanted.discard(widget)
            rank[widget] = len(seen)
        widget = widget.nextInFocusChain()
    return sorted(given, key=lambda w: (rank.get(w, len(seen) + 1), given.index(w)))


def show_problems(
    window: QWidget,
    problems: Mapping[QLabel, str],
    field_of: Mapping[QLabel, QWidget],
    select: bool = False,
) -> bool:
    """Show every message of ``problems`` (a message label -> its text) at once, and put
    the keyboard in the first of their fields (``field_of``: a message label -> the field
    it is about) in ``window``'s Tab order, its text selected if ``select``. False when
    there are none. :meth:`TypedForm.show_problems` for forms; a page of the first-run
    wizard, which is not one, calls this."""
    if not problems:
        return False
    for label, text in problems.items():
        label.setText(text)
        label.show()
    fields = [field_of[label] for label in problems if label in field_of]
    if fields:
        first = in_tab_order(window, fields)[0]
        first.setFocus()
        if select and isinstance(first, QLineEdit):
            first.selectAll()
    return True


def fields_of(window: QWidget) -> list[QWidget]:
    """The fields people fill in (line edits, text, choices, numbers, ticks) in
    ``window``, in the order they were made."""
    return [w for w in window.findChildren(QWidget) if input_value(w) is not None]


class ElidedLabel(QLabel):
    """One line of text (a heading, a name) that, given less room than it needs, ends in
    "…" with the whole text in its tooltip, rather than being cut mid-letter or pushing the
    buttons beside it off the screen. ``text()`` is always the whole text."""

    # Shown at the least: this many characters and the ellipsis.
    KEEP = 8

    def __init__(self, text: str = "", parent: QWidget | None = None, keep: int = KEEP) -> None:
        super().__init__(text, parent)
        self.keep = keep  # characters shown at the least
        # No automatic indent: the text starts where the contents do, so what fits is what
        # the contents rectangle holds (a stylesheet padding made Qt indent the text).
        self.setIndent(0)

    def minimumSizeHint(self) -> QSize:
        """Room for the first few characters and "…" (the whole text when shorter)."""
        hint = super().minimumSizeHint()
        margins = self.contentsMargins()
        short = self.text()[: self.keep] + "…"
        width = self.fontMetrics().horizontalAdvance(short) + margins.left() + margins.right()
        return QSize(min(hint.width(), width), hint.height())

    def elided(self) -> bool:
        """True when the text does not fit and ends in "…"."""
        return self.fontMetrics().horizontalAdvance(self.text()) > self.contentsRect().width()

    def resizeEvent(self, event: QResizeEvent) -> None:
        """The whole text in the tooltip while it is elided."""
        super().resizeEvent(event)
        self.setToolTip(self.text() if self.elided() else "")

    def paintEvent(self, event: QPaintEvent) -> None:
        """The text, elided at the right when it does not fit."""
        if not self.elided():
            super().paintEvent(event)
            return
        rect = self.contentsRect()
        painter = QPainter(self)
        text = self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight, rect.width())
        self.style().drawItemText(
            painter, rect, int(self.alignment()), self.palette(), self.isEnabled(), text,
            self.foregroundRole(),
        )  # fmt: skip


def show_whole_placeholder(edit: QLineEdit) -> None:
    """``edit`` is never narrower than its placeholder text: squeezed beside a button or a
    long label, the hint was cut mid-word ("Name, MRN or date of …")."""
    show_whole_text(edit, edit.placeholderText())


def show_whole_text(edit: QLineEdit, *texts: str) -> None:
    """``edit`` is never narrower than the widest of ``texts`` (what is typed in it at the
    longest), as :func:`show_whole_placeholder` does for its hint."""
    metrics = edit.fontMetrics()
    # What the style adds around the text: a line edit's hint is 17 "x" wide plus that.
    padding = edit.sizeHint().width() - 17 * metrics.horizontalAdvance("x")
    # The text's exact width, rounded up: the whole-pixel width is rounded to nearest, and
    # the line edit elides a hint wider than its line by a fraction of a pixel (the
    # tester's "Name, MRN or date of bi…" was 192.36 pixels on a 192-pixel line).
    exact = QFontMetricsF(edit.font())
    text = math.ceil(max((exact.horizontalAdvance(t) for t in texts), default=0))
    needed = text + padding
    edit.setMinimumWidth(max(edit.minimumWidth(), needed))


def show_items_whole(combo: QComboBox) -> None:
    """``combo``'s open list is as wide as its longest item needs, however narrow the box
    (the list's own width followed the box, and the Vitals visits were cut in the middle,
    "2026-07-1…re review": their date and reason, which tell them apart, were what went).
    Past the screen's width an item ends in "…", its start (a visit's date) kept."""
    view = combo.view()
    view.setTextElideMode(Qt.TextElideMode.ElideRight)
    model = combo.model()

    def fit() -> None:
        column = combo.modelColumn()
        items = (view.sizeHintForIndex(model.index(row, column)) for row in range(combo.count()))
        widest = max((size.width() for size in items), default=0)
        # The list's frame, and a scroll bar's room for a long list.
        around = 2 * view.frameWidth() + view.verticalScrollBar().sizeHint().width()
        view.setMinimumWidth(widest + around)

    for signal in (model.rowsInserted, model.rowsRemoved, model.modelReset, model.dataChanged):
        signal.connect(fit)
    fit()


def paragraph(text: str, name: str = "") -> QLabel:
    """A word-wrapped block of plain explanatory text (``name`` picks a style)."""
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.PlainText)
    if name:
        label.setObjectName(name)
    return label


class FormLayout(QFormLayout):
    """A form whose rows with no caption (``addRow("", message)``) still have a label
    item: a hidden, empty one.

    QFormLayout works out a lone field's height for a narrower width than it then gets:
    a word-wrapped message under a field was given a line more than its text, drawn
    centred in it, so an empty line showed above the message (and the form moved down by
    that line when it appeared). With a label item the height is the one for its width."""

    def addRow(self, *args: Any) -> None:
        """As QFormLayout's; an empty caption becomes a hidden label."""
        super().addRow(*_captioned(args))

    def insertRow(self, row: int, *args: Any) -> None:
        """As QFormLayout's; an empty caption becomes a hidden label."""
        super().insertRow(row, *_captioned(args))


def _captioned(args: tuple[Any, ...]) -> tuple[Any, ...]:
    if len(args) == 2 and args[0] == "":
        blank = QLabel()
        blank.hide()  # takes no room, and a row whose field is hidden takes none either
        return (blank, args[1])
    return args


def form_layout(row_spacing: int = 6) -> QFormLayout:
    """Labels on the left, centred on their field; fields take the remaining width."""
    form = FormLayout()
    form.setHorizontalSpacing(16)
    form.setVerticalSpacing(row_spacing)
    form.setLabelAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
    form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
    return form


def action_buttons(
    dialog: QDialog, on_accept: Callable[[], None], accept_text: str | None = None
) -> tuple[QDialogButtonBox, QPushButton]:
    """Save (or ``accept_text``) and Cancel; the first is the primary button.

    Accepting runs ``on_accept`` (which closes the dialog when the work succeeds);
    cancelling rejects the dialog.
    """
    ok = (
        QDialogButtonBox.StandardButton.Save
        if accept_text is None
        else (QDialogButtonBox.StandardButton.Ok)
    )
    buttons = QDialogButtonBox(ok | QDialogButtonBox.StandardButton.Cancel)
    primary = buttons.button(ok)
    if accept_text is not None:
        primary.setText(accept_text)
    primary.setObjectName("primary")
    buttons.accepted.connect(on_accept)
    # A form asks before Cancel throws away what was typed in it (TypedForm).
    buttons.rejected.connect(dialog.cancel if isinstance(dialog, TypedForm) else dialog.reject)
    return buttons, primary


def dialog_layout(
    dialog: QDialog, *parts: QWidget | QLayout, room_above_last: bool = False
) -> QVBoxLayout:
    """The dialogs' common column: generous margins, even spacing, parts top to bottom
    (a form, a widget, or a row such as ``message_beside``'s).

    The dialog keeps room for what it holds (``keep_room_for_contents``): a message, a
    panel or a chosen name shown once it is open lengthens it instead of being cut; for a
    message, at the top, so that the last part (the buttons) stays where the person aims
    (``hold_buttons``). ``room_above_last``: height the contents no longer need (a message
    gone, a shorter password hint than the dialog opened with) is left above the last part
    (the buttons), so nothing in the form moves: spread over the heading and the form's
    messages, it moved every field down a few pixels.
    """
    keep_room_for_contents(dialog)
    layout = QVBoxLayout(dialog)
    layout.setContentsMargins(24, 20, 24, 20)
    layout.setSpacing(12)
    for index, part in enumerate(parts):
        if room_above_last and index == len(parts) - 1:
            layout.addStretch(1)
        if isinstance(part, QLayout):
            layout.addLayout(part)
        else:
            layout.addWidget(part)
    return layout


class WarningPanel(QFrame):
    """A warning inside a form: a heading, what to do, a short list of what it is about,
    and the ways on (``buttons``: a button, or None for the stretch between groups).
    Hidden until ``show_items``."""

    def __init__(
        self,
        heading: str,
        list_name: str,
        buttons: tuple[QPushButton | None, ...],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("warningPanel")
        self.heading = QLabel(heading)
        self.heading.setObjectName("panelHeading")
        self.text = paragraph("")
        self.items = QListWidget()
        self.items.setAccessibleName(list_name)
        # A long row wraps, never scrolls sideways: the scroll bar took the height of the
        # one row it left, and the row was read as far as "KOWALCZYK, Małgorza".
        self.items.setWordWrap(True)
        self.items.setTextElideMode(Qt.TextElideMode.ElideNone)
        self.items.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.items.setResizeMode(QListView.ResizeMode.Adjust)
        self.items.viewport().installEventFilter(self)
        self._most = 0  # the rows the list shows at most (fit_items); the rest scroll
        row = QHBoxLayout()
        for button in buttons:
            if button is None:
                row.addStretch(1)
            else:
                row.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 10)
        layout.setSpacing(8)
        layout.addWidget(self.heading)
        layout.addWidget(self.text)
        layout.addWidget(self.items)
        layout.addLayout(row)
        self.hide()

    def setVisible(self, visible: bool) -> None:
        """Show or hide; shown, its dialog grows to hold it from the height it had before,
        and goes back to that height once the panel is hidden (as for a field's message:
        Qt raised the dialog to its new minimum first, and that raised height was taken
        for the one to go back to, leaving the room as blank bands)."""
        window = self.window()
        height = window.height()
        super().setVisible(visible)
        if visible and window is not self:
            _grow_from(window, height)

    def fit_items(self, most: int) -> None:
        """Size the list to its rows as wrapped, at most ``most`` of them (more scroll),
        and show the panel."""
        self._most = most
        self._fit()
        self.show()

    def _fit(self) -> None:
        items = self.items
        # Each row as Qt lays it out, wrapped to the list's present width (sizeHintForRow
        # is one line's height whatever the text).
        items.doItemsLayout()
        rows = range(min(items.count(), self._most))
        height = sum(items.visualItemRect(items.item(i)).height() for i in rows)
        items.setFixedHeight(height + 2 * items.frameWidth())

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """The list's width changed: its rows wrap anew, so its height follows."""
        if (
            watched is self.items.viewport()
            and self._most
            and isinstance(event, QResizeEvent)
            and event.size().width() != event.oldSize().width()
        ):
            self._fit()
        return super().eventFilter(watched, event)


class OneDialog:
    """The one dialog a menu's tools have open at a time (``dialog``; None when none is):
    opening another closes it first, a finished one is forgotten and deleted, and signing
    out closes it (:meth:`close`)."""

    def __init__(self) -> None:
        self.dialog: QDialog | None = None

    def open(self, dialog: QDialog) -> None:
        """Open ``dialog`` (window-modal) in place of the one open from here."""
        self.close()
        dialog.finished.connect(lambda _result: self._forget(dialog))
        self.dialog = dialog
        fit_to_screen(dialog)
        dialog.open()

    def _forget(self, dialog: QDialog) -> None:
        if self.dialog is dialog:
            self.dialog = None
        dialog.deleteLater()

    def close(self) -> None:
        """Close the dialog open from here, if any."""
        if self.dialog is not None:
            self.dialog.reject()


# Room left for the window's title bar and borders, which are not known before it is shown.
_FRAME_ALLOWANCE = QSize(16, 40)


def fit_to_screen(window: QWidget) -> None:
    """Shrink a window not yet shown to fit the screen it opens on (its parent's): a size
    chosen for a large screen was wider and taller than a 1024x740 laptop's, and the window
    system then squeezed the contents over each other. The window's layout decides how
    small it can go (its lists scroll)."""
    parent = window.parentWidget()
    screen = (parent or window).screen()
    if screen is None:
        return
    room = screen.availableGeometry().size() - _FRAME_ALLOWANCE
    # A window nobody sized yet would open at its size hint: start from that, not from the
    # default size a widget has before it is shown (resizing here stops Qt from using it).
    wanted = (
        window.size() if window.testAttribute(Qt.WidgetAttribute.WA_Resized) else window.sizeHint()
    )
    size = wanted.boundedTo(room).expandedTo(window.minimumSizeHint())
    layout = window.layout()
    if layout is not None and layout.hasHeightForWidth():
        # Wrapped text needs more lines at a narrower width than the hint allowed for.
        size.setHeight(
            max(size.height(), min(layout.totalHeightForWidth(size.width()), room.height()))
        )
    window.resize(size)


class _HeightFloor(QObject):
    """Keeps a window's minimum height at what its layout needs at its current width (see
    ``keep_min_height_for_width``)."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """On every resize, the minimum height for the new width; the event goes on."""
        if event.type() == QEvent.Type.Resize and isinstance(watched, QWidget):
            layout = watched.layout()
            if layout is not None and layout.hasHeightForWidth():
                needed = layout.minimumHeightForWidth(watched.width())
                if needed > 0 and needed != watched.minimumHeight():
                    watched.setMinimumHeight(needed)
        return False


def keep_min_height_for_width(window: QWidget) -> None:
    """A window holding word-wrapped text can never be made lower than its contents need.

    Qt gives a window the minimum height of its parts as if each wrapped label were one of
    a few lines, so a person (or the window system, on a small screen) could shrink the
    window until the lists ran over the buttons under them: the minimum now follows the
    width, as the lines of the wrapped text do.
    """
    window.installEventFilter(_HeightFloor(window))


def _needed_height(dialog: QWidget, layout: QLayout) -> int:
    """The height ``dialog``'s contents need at its width, at most its screen's."""
    # What was just shown or changed counts now, not at Qt's next layout pass: a nested
    # layout keeps the heights it worked out before until the window's layout is redone.
    layout.activate()
    needed = dialog.heightForWidth(dialog.width())
    if needed < 0:  # nothing in it wraps: its plain minimum
        needed = dialog.minimumSizeHint().height()
    screen = dialog.screen()
    if screen is not None:
        needed = min(needed, screen.availableGeometry().height() - _FRAME_ALLOWANCE.height())
    return needed


def grow_to_fit(dialog: QWidget, height: int | None = None) -> None:
    """Give an open window the height its contents now need (call after showing a line in
    it): Qt keeps an open window's size and squeezes its word-wrapped text instead, cutting
    sentences, fields and buttons off. It grows no taller than its screen (its lists
    scroll); it gives the room back once what needed it is hidden (``give_back_room``).
    ``height``: the window's height before what was shown raised its minimum."""
    layout = dialog.layout()
    if not dialog.isVisible() or layout is None:
        return
    height = dialog.height() if height is None else height
    needed = _needed_height(dialog, layout)
    grown = max(needed, dialog.height())  # Qt may have raised it to its new minimum
    if grown > height:
        if dialog.property("grownTo") != height:
            dialog.setProperty("heightBeforeGrowing", height)  # as opened, or the person's
        if needed > dialog.height():
            dialog.resize(dialog.width(), needed)
        dialog.setProperty("grownTo", grown)


def give_back_room(dialog: QWidget) -> None:
    """Once what ``grow_to_fit`` made room for is hidden again (a message put right), the
    window goes back towards the height it had before: the room stayed as a blank band
    between the form and its buttons. Never lower than its contents need or than it was
    before growing, and not at all once the person has resized it."""
    layout = dialog.layout()
    before, grown = dialog.property("heightBeforeGrowing"), dialog.property("grownTo")
    if not dialog.isVisible() or layout is None or before is None or grown != dialog.height():
        return
    wanted = max(_needed_height(dialog, layout), int(before))
    if wanted < dialog.height():
        dialog.resize(dialog.width(), wanted)
        dialog.setProperty("grownTo", wanted)


class _RoomForContents(QObject):
    """Grows the window it watches whenever its layout changes (see
    ``keep_room_for_contents``), its buttons held where they are while a message comes or
    goes (``hold_buttons``)."""

    def __init__(self, dialog: QDialog) -> None:
        super().__init__(dialog)
        # Where the window's last part (its buttons) started in it before a message came
        # or went, until the layout has settled (``hold_buttons``).
        self.held: int | None = None

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """On a layout request (something shown, hidden or worded anew), the height the
        contents now need, the buttons where they were; the event goes on."""
        if event.type() == QEvent.Type.LayoutRequest and isinstance(watched, QWidget):
            grow_to_fit(watched)
            give_back_room(watched)
            if self.held is not None:
                _buttons_back(watched, self.held)
                self.held = None
        return False

    def release_later(self) -> None:
        """Hold nothing once the layout's request, posted before this, is handled: a hold
        left over would move the window at a later request, after the person had resized
        it."""
        QMetaObject.invokeMethod(self, "release", Qt.ConnectionType.QueuedConnection)

    @Slot()
    def release(self) -> None:
        """The layout has settled: nothing is held."""
        self.held = None


def keep_room_for_contents(dialog: QDialog) -> None:
    """From now on, whatever ``dialog`` comes to show once open (a validation message, a
    warning panel, a line naming what was chosen) lengthens the dialog to hold all of it.

    Qt sizes an open window's minimum from its parts as if each word-wrapped label had a
    line or two, and keeps the window's size otherwise: a longer message was cut after its
    second line, and a squeezed one was drawn over the field above it. Once hidden again,
    the room it took is given back (``give_back_room``).
    """
    if dialog.property("keepsRoom"):
        return
    dialog.setProperty("keepsRoom", True)
    dialog.installEventFilter(_RoomForContents(dialog))


def _last_part_top(window: QWidget) -> int | None:
    """Where the last part of ``window``'s column (its buttons: ``dialog_layout``) starts,
    in the window; None when it has none."""
    layout = window.layout()
    if layout is None:
        return None
    for index in reversed(range(layout.count())):
        item = layout.itemAt(index)
        if item is not None and item.spacerItem() is None and not item.isEmpty():
            return item.geometry().top()
    return None


def hold_buttons(window: QWidget) -> None:
    """A message is about to come or go in ``window``, an open dialog: its buttons (the
    last part of its column) are to stay where they are on the screen
    (``put_buttons_back``) as it grows or gives back the room, now or at Qt's next layout
    pass. A message shown above Add pushed it down 46 pixels, and the person's next click,
    aimed at Add, missed it."""
    layout = window.layout()
    if not isinstance(window, QDialog) or not window.isVisible() or layout is None:
        return
    keep_room_for_contents(window)
    keeper = window.findChild(_RoomForContents, options=Qt.FindChildOption.FindDirectChildrenOnly)
    if keeper is None or keeper.held is not None:
        return  # held already: by a message gone just before, the layout not yet settled
    # Laid out, and the room given back, for what changed just before (a progress bar
    # hidden as the work failed): left to Qt's next layout pass, it was taken for the
    # message's doing, and the dialog moved down by the bar's height.
    height = window.height()
    layout.activate()
    if window.height() > height and window.property("grownTo") == height:
        # Qt raised it to its new minimum: grown for its contents too, not by the person,
        # so the room is given back all the same (``give_back_room``).
        window.setProperty("grownTo", window.height())
    give_back_room(window)
    keeper.held = _last_part_top(window)


def put_buttons_back(window: QWidget) -> None:
    """The message came or went since ``hold_buttons``: the dialog moves up or down by as
    much as its buttons moved in it, so that they are where they were on the screen. It
    grows or shrinks at its top instead, never past the top of its screen. Once its
    layout has settled (the room of a message gone is given back then), it moves again if
    need be, and holds nothing more."""
    keeper = window.findChild(_RoomForContents, options=Qt.FindChildOption.FindDirectChildrenOnly)
    if keeper is not None and keeper.held is not None:
        keeper.held = _buttons_back(window, keeper.held)
        keeper.release_later()


def _buttons_back(window: QWidget, held: int) -> int:
    """Move ``window`` so that its last part, which started at ``held`` in it, is where it
    was on the screen; where it starts in the window now."""
    top = _last_part_top(window)
    if top is None or top == held or not window.isVisible():
        return held
    pos = window.pos()
    y = pos.y() + held - top
    screen = window.screen()
    if screen is not None:  # not over its top (unless it was already)
        y = max(y, min(pos.y(), screen.availableGeometry().top()))
    window.move(pos.x(), y)
    return top


def ask_first(
    parent: QWidget,
    name: str,
    title: str,
    text: str,
    detail: str,
    act: str,
    then: Callable[[bool], None],
    keep: str | None = None,
    icon: QMessageBox.Icon = QMessageBox.Icon.Warning,
) -> QMessageBox:
    """Ask before a step a stray key must not take (closing a visit, removing an allergy,
    revoking a workstation, discarding a form). ``act`` names the button that goes ahead;
    Cancel (or ``keep``) is the default, the Escape button and has the keyboard, so Space,
    Return or Escape go nowhere. Window-modal, with no nested event loop: ``then(True)``
    runs once the person chose ``act``, ``then(False)`` otherwise. Returns the open box
    (object name ``name``, its go-ahead button ``name + "Button"``)."""
    box = QMessageBox(icon, title, text, parent=parent)
    box.setObjectName(name)
    box.setInformativeText(detail)
    go = box.addButton(act, QMessageBox.ButtonRole.DestructiveRole)
    go.setObjectName(f"{name}Button")
    cancel = (
        box.addButton(keep, QMessageBox.ButtonRole.RejectRole)
        if keep is not None
        else box.addButton(QMessageBox.StandardButton.Cancel)
    )
    box.setDefaultButton(cancel)
    box.setEscapeButton(cancel)

    def answered(_result: int) -> None:
        chosen = box.clickedButton() is go
        box.deleteLater()
        then(chosen)

    box.finished.connect(answered)
    box.open()
    cancel.setFocus()  # Space presses the focused button: the safe one
    return box


def check_all(checks: Iterable[tuple[QLabel, Callable[[], object]]]) -> dict[QLabel, str]:
    """Run every check (core's field checks, which raise ``ValidationError``), not only up
    to the first that fails: each failure's message, worded as everywhere
    (``validation_text``), by the label that shows it (see ``TypedForm.show_problems``)."""
    problems: dict[QLabel, str] = {}
    for label, check in checks:
        try:
            check()
        except ValidationError as exc:
            problems[label] = validation_text(exc)
    return problems


DISCARD_QUESTION = "Discard what you typed?"


def ask_to_discard(parent: QWidget, title: str, then: Callable[[bool], None]) -> QMessageBox:
    """The question every form asks before what was typed in it is thrown away:
    "Discard what you typed?", Keep editing the default (and Escape). ``then(True)`` once
    the person chose Discard. Forms ask it through :class:`TypedForm`; a form that is not
    a dialog of its own (the first-run wizard, in the main window) asks it directly."""
    return ask_first(
        parent,
        "discardQuestion",
        title,
        DISCARD_QUESTION,
        "What you typed in this form is not saved.",
        "Discard",
        then,
        keep="Keep editing",
        icon=QMessageBox.Icon.Question,
    )


class FocusKeeper(QObject):
    """Where the keyboard goes when the control holding it is greyed out: back to the field
    last typed in, never on to the next button.

    A form's Save (Add addendum, Record vitals, Book...) is disabled while its work runs,
    so it is not pressed twice. Clicked, it held the keyboard, and Qt handed the keyboard
    on to the next control enabled: Cancel. A refusal ("Addendum is required.") then left
    the person typing into Cancel, whose first Space closed the form and let the next
    words land in the window behind: what they typed was lost unseen. The owner's
    ``focusNextPrevChild`` asks :meth:`greyed` first (Qt calls it for the move), and the
    keyboard goes back to the field; with no field to go to (none typed in, or greyed out
    too), it goes nowhere (a stray key presses nothing) until the control it left is
    enabled again, and comes back to it then (unless the outcome put it on a field).
    """

    def __init__(self, owner: QWidget) -> None:
        super().__init__(owner)
        self._owner = owner
        self.field: QWidget | None = None  # the field that last had the keyboard
        self._watched: set[int] = set()
        self._waiting: QWidget | None = None  # greyed out with the keyboard, none taking it

    def watch(self, fields: Iterable[QWidget]) -> None:
        """Remember which of ``fields`` last had the keyboard."""
        for widget in fields:
            if id(widget) not in self._watched:
                self._watched.add(id(widget))
                widget.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """A field got the keyboard: remembered; the control the keyboard left enabled
        again, the keyboard nowhere: back to it. Every event goes on."""
        if not isinstance(watched, QWidget):
            return False
        if event.type() == QEvent.Type.FocusIn and id(watched) in self._watched:
            self.field = watched
        elif (
            event.type() == QEvent.Type.EnabledChange
            and watched is self._waiting
            and watched.isEnabled()
        ):
            self._waiting = None
            if self.lost() and watched.isVisible():
                watched.setFocus(Qt.FocusReason.OtherFocusReason)
        return False

    def lost(self) -> bool:
        """True when nothing in the owner that can take keys has the keyboard (it was
        greyed out, or Qt found nowhere to put it)."""
        held = self._owner.window().focusWidget()
        if held is None or not (held is self._owner or self._owner.isAncestorOf(held)):
            return True
        return not held.isEnabled() or not held.isVisible()

    def greyed(self) -> bool | None:
        """Called from the owner's ``focusNextPrevChild``: when the control with the
        keyboard was just disabled, put the keyboard back on the field last typed in and
        return True (False: no field can take it, so Qt clears it). None: an ordinary
        move (Tab), for Qt to make."""
        held = self._owner.window().focusWidget()
        if held is None or held.isEnabled() or not self._owner.isAncestorOf(held):
            return None
        if self.back_to_field(avoid=held) is not None:
            return True
        self._waiting = held  # the keyboard comes back to it once it is enabled again
        held.installEventFilter(self)
        return False

    def back_to_field(
        self, wanted: QWidget | None = None, avoid: QWidget | None = None
    ) -> QWidget | None:
        """The keyboard to ``wanted`` (a field in error) if it can take it, else to the
        field last typed in; the field given it (None: neither can take it)."""
        for field in (wanted, self.field):
            if (
                field is not None
                and field is not avoid
                and field.isEnabled()
                and field.isVisibleTo(self._owner)
            ):
                field.setFocus(Qt.FocusReason.OtherFocusReason)
                return field
        return None


class KeepsFocusDialog(QDialog):
    """A dialog whose buttons are greyed out while their work runs (Save, Export, Print):
    the keyboard never passes from the button pressed to the next one (Cancel, Close,
    Choose…), but goes back to the field last typed in, or waits for the button (see
    :class:`FocusKeeper`). Every form dialog is one (:class:`TypedForm`)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.focus_keeper = FocusKeeper(self)

    def showEvent(self, event: QShowEvent) -> None:
        """Shown: its fields are watched for the keyboard."""
        super().showEvent(event)
        self.focus_keeper.watch(fields_of(self))

    def focusNextPrevChild(self, next: bool) -> bool:
        """Tab and Shift+Tab as usual; but when Qt moves the keyboard off a control just
        greyed out (Save while the work runs), it goes back to the field last typed in,
        never on to the next button (see :class:`FocusKeeper`)."""
        handled = self.focus_keeper.greyed()
        if handled is not None:
            return handled
        return super().focusNextPrevChild(next)


class TypedForm(KeepsFocusDialog):
    """A dialog people type into, which never throws away what they typed unasked.

    It remembers what its fields held when it opened (at its first show: an edit's stored
    values, a registration's blanks). Escape, Cancel (``action_buttons`` wires it to
    :meth:`cancel`) and the window's close button close an untouched or unchanged form at
    once; once a field differs, they ask "Discard what you typed?" (Keep editing the
    default, Escape on the question keeps editing too). The program closing the form
    (``reject()``, ``accept()``: a sign-out or the auto-lock, which keep the form's draft
    first; a save) never asks. While its work must be seen through
    (:meth:`must_stay_open`), the person cannot close it at all.

    Its fields keep their messages honest: the form-level message (``general_error``)
    goes when the person edits any field, a field's own message when they edit that field
    (:meth:`clears_on_edit`). A check of the form says everything wrong with it at once
    (:meth:`show_problems`): each field's message under it, the keyboard in the first
    field in error, in the form's order. And the mouse wheel changes none of its choices
    or numbers, nor do letters typed on a closed choice box, and a number typed there goes
    on to the text field after it (``guard_choices``).

    A form whose unsaved input is kept across a sign-out (its ``draft`` and ``restore``,
    app/session/drafts.py) comes back with the keyboard in the field that had it, cursor and
    selection as they were: each subclass's ``draft`` and ``restore`` are wrapped here to
    keep and give back that place (app/keyboard_place.py).
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Wrap a subclass's own ``draft`` and ``restore`` (see the class docstring)."""
        super().__init_subclass__(**kwargs)
        own = cls.__dict__
        # setattr: TypedForm itself declares neither method (not every form keeps drafts).
        if "draft" in own:
            setattr(cls, "draft", _keeps_keyboard_place(own["draft"]))  # noqa: B010
        if "restore" in own:
            setattr(cls, "restore", _gives_keyboard_place_back(own["restore"]))  # noqa: B010

    # True: a field's message put right leaves its lines blank until a check shows a
    # message above it, so the fields under it stay where the person saw them (FormDialog).
    KEEPS_MESSAGE_ROOM = False

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.general_error = error_label()
        self.discard_box: QMessageBox | None = None
        self._opened_with: object = None
        self._opened = False
        self._field_of: dict[QLabel, QWidget] = {}  # a field's message -> the field

    # ----- what was typed ---------------------------------------------------------------

    def form_state(self) -> object:
        """Everything the person can change, to compare with what the form opened with: by
        default the value of every field in it. A form whose fields the program fills
        after it opens (a list read on the worker) says what counts instead."""
        return {widget: input_value(widget) for widget in fields_of(self)}

    def own_fields(self) -> list[QWidget]:
        """This form's fields, not those of a form opened from it (its own window)."""
        return [w for w in fields_of(self) if w.window() is self.window()]

    def remember_state(self) -> None:
        """What the form holds now is what it opened with (nothing typed yet)."""
        self._opened_with = self.form_state()

    def has_changes(self) -> bool:
        """True once what the form holds differs from what it opened with."""
        return self._opened and self.form_state() != self._opened_with

    def clears_on_edit(self, pairs: Iterable[tuple[QWidget, QLabel]]) -> None:
        """Each ``(field, message)``: the message under the field goes when the field is
        edited (the form-level message goes on any edit anyway)."""
        for widget, message in pairs:
            clear_when_edited(widget, message, keep_room=self.KEEPS_MESSAGE_ROOM)
            self._field_of[message] = widget

    def answers_to(self, widget: QWidget, message: QLabel) -> None:
        """``message`` is about ``widget`` (a check that fills it puts the keyboard there),
        but is not hidden when the field is edited: it words itself anew (a live hint)."""
        self._field_of[message] = widget

    def release_message_room(self, below: QWidget | None = None) -> None:
        """The form is checked anew: the room kept by messages put right
        (``KEEPS_MESSAGE_ROOM``) goes; with ``below`` (the first field in error), only
        that of messages about fields under it, which move anyway as its message appears.
        Those above keep their blank line: a refused save moved First password up under
        the pointer as the kept Role line went."""
        top = (lambda w: w.mapTo(self, w.rect().topLeft()).y()) if below is not None else None
        for message, field in self._field_of.items():
            if top is None or below is None or top(field) > top(below):
                keep_room_when_hidden(message, False)

    def show_problems(self, problems: Mapping[QLabel, str], select: bool = False) -> bool:
        """Show every message of ``problems`` (a field's message label -> its text) at
        once, and put the keyboard in the first field in error in the form's Tab order
        (``select``: with its text selected, to type over). False when there are none.

        One message at a time, in the order the checks ran, sent a person round the form
        once per mistake, and to the third field first: the family name they typed next
        landed in the date of birth. (Fields are known by the messages
        :meth:`clears_on_edit` paired them with; a message of no field is still shown.)"""
        fields = [self._field_of[label] for label in problems if label in self._field_of]
        if fields:
            self.release_message_room(below=in_tab_order(self, fields)[0])
        return show_problems(self, problems, self._field_of, select)

    def focus_field_of(self, message: QLabel) -> None:
        """The keyboard to the field ``message`` is about (as given to
        :meth:`clears_on_edit`), its text selected for typing over; else back to the field
        last typed in. A refusal is answered where it was made."""
        wanted = self._field_of.get(message)
        field = self.focus_keeper.back_to_field(wanted)
        if field is wanted and isinstance(field, QLineEdit):
            field.selectAll()

    def message_shown(self, message: QLabel) -> None:
        """A message under a field (or the form) was shown. If the keyboard went nowhere
        while the form's work ran (its greyed-out Save held it, and so did every field),
        it goes to the field the message is about: the person answers it by typing."""
        if self.isVisible() and self.focus_keeper.lost():
            self.focus_field_of(message)

    def clear_form_error(self) -> None:
        """The person did something that answers the form-level message (chose a file)."""
        self.general_error.hide()

    def showEvent(self, event: QShowEvent) -> None:
        """First shown: what it holds is what it opened with; any edit from now on hides
        the form-level message; no choice in it takes the wheel or a stray word."""
        super().showEvent(event)
        if self._opened:
            return
        self._opened = True
        self.remember_state()
        fields = fields_of(self)
        for widget in fields:
            clear_when_edited(widget, self.general_error)
        guard_choices(*fields)

    # ----- leaving ------------------------------------------------------------------------

    def must_stay_open(self) -> bool:
        """True while the form's work runs and its outcome must be seen (a password being
        changed, a restore whose new recovery key is shown only once): Escape, Cancel and
        the close button then do nothing (the program can still close it). By default,
        never."""
        return False

    def cancel(self) -> None:
        """The person asked to leave without saving: close, asking first if they typed."""
        if self.must_stay_open():
            return
        if self.has_changes():
            self.ask_to_discard()
        else:
            self.reject()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Escape is Cancel (asks first when something was typed)."""
        if event.matches(QKeySequence.StandardKey.Cancel):
            event.accept()
            self.cancel()
            return
        super().keyPressEvent(event)

    def closeEvent(self, event: QCloseEvent) -> None:
        """The window's close button is Cancel too. (The program closes a form with
        ``reject()``, which sends no close event.)"""
        if self.isVisible() and self.must_stay_open():
            event.ignore()
            return
        if self.isVisible() and self.has_changes():
            event.ignore()
            self.ask_to_discard()
            return
        super().closeEvent(event)

    def ask_to_discard(self) -> None:
        """Ask "Discard what you typed?" (window-modal, no nested event loop); Discard
        closes the form, Keep editing (the default, and Escape) goes back to it."""
        if self.discard_box is not None:
            self.discard_box.raise_()
            return

        def answered(discard: bool) -> None:
            self.discard_box = None
            if discard:
                self.reject()

        self.discard_box = ask_to_discard(self, self.windowTitle(), answered)

    def done(self, result: int) -> None:
        """Close (the question too, if it is open: closed by the program, the form keeps
        nothing to ask about)."""
        box, self.discard_box = self.discard_box, None
        if box is not None:
            box.reject()
        super().done(result)


def _keeps_keyboard_place(draft: Callable[..., Any]) -> Callable[..., Any]:
    """``draft`` with the place of the form's keyboard in what it returns."""

    @functools.wraps(draft)
    def kept(form: TypedForm, *args: Any, **kwargs: Any) -> Any:
        values = draft(form, *args, **kwargs)
        if not isinstance(values, dict):
            return values  # nothing to keep
        place = keyboard_place(form, form.own_fields())
        return values if place is None else {**values, KEYBOARD: place}

    return kept


def _gives_keyboard_place_back(restore: Callable[..., Any]) -> Callable[..., Any]:
    """``restore`` (given the draft without the place), then the keyboard put back."""

    @functools.wraps(restore)
    def restored(form: TypedForm, draft: Any, *args: Any, **kwargs: Any) -> Any:
        place = draft.get(KEYBOARD) if isinstance(draft, dict) else None
        if place is not None:
            draft = {k: v for k, v in draft.items() if k != KEYBOARD}
        result = restore(form, draft, *args, **kwargs)
        if place is not None:
            put_keyboard_back(form, form.own_fields(), place)
        return result

    return restored
