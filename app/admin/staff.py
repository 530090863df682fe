"""Settings → Staff: the clinic's staff accounts for an administrator (core/records/staff.py).

A table of every account (role, active or deactivated, a password they must still change,
two-factor sign-in, failed sign-ins and any sign-in delay on this computer), and the
actions: add a staff member, change a role, deactivate or reactivate, reset a password.
Every read and write runs on the worker; core checks who may do each (the menu entry is
shown to administrators only, to spare others a pointless refusal).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from app.messages import describe_error
from app.session.key_dialogs import FormDialog, busy_bar, heading_label, password_field
from app.session.strength_hint import StrengthHint, worded
from app.widgets import (
    MessageSlot,
    action_buttons,
    ask_first,
    choose_deliberately,
    dialog_layout,
    error_label,
    ignore_wheel,
    paragraph,
    tab_leaves,
)
from app.worker import Worker
from core.records.errors import ValidationError
from core.records.lockout import Lockout, describe_wait
from core.records.staff import StaffMember
from core.records.validation import ROLES
from core.records.workstation import Workstation

COLUMNS = ("User name", "Full name", "Role", "Status", "Password", "Two-factor", "Sign-in")


# What the question before granting Admin names (core/records/permissions.py: what only
# the admin role holds).
ADMIN_CAN = (
    "An administrator can add and deactivate staff, change anyone's role and reset their "
    "password, let new workstations join the clinic, back up the clinic's records, read the "
    "audit log, change who may see a chart and delete patients."
)


def role_label(role: str) -> str:
    """``front_desk`` -> ``Front desk``."""
    return role.replace("_", " ").capitalize()


@dataclass(frozen=True)
class StaffRow:
    """One account and its failed sign-ins on this computer."""

    member: StaffMember
    lockout: Lockout | None
    now: float

    def cells(self) -> tuple[str, ...]:
        """The table's cells, in COLUMNS order."""
        m, lock = self.member, self.lockout
        if lock is None:
            sign_in = "OK"
        else:
            left = lock.seconds_left(self.now)
            sign_in = f"{lock.failures} failed"
            if left > 0:
                sign_in += f", waits {describe_wait(left)}"
        return (
            m.username,
            m.full_name,
            ", ".join(role_label(r) for r in (m.roles or (m.role,))),
            "Active" if m.active else "Deactivated",
            "Must change" if m.must_change_password else "Set",
            "On" if m.two_factor else "Off",
            sign_in,
        )


def load_staff(ws: Workstation) -> list[StaffRow]:
    """Runs on the worker: the accounts and this computer's sign-in delays."""
    members = ws.staff().members()
    locks = {lock.user: lock for lock in ws.lockouts()}
    now = ws.clock()
    return [StaffRow(m, locks.get(m.username), now) for m in members]


def role_box(current: str | None = None) -> QComboBox:
    """The roles to choose from, ``current`` chosen (None: none yet, the box reads
    "Choose a role…").

    Typing a letter on the closed box chose the first role with it (``a``: Admin), so a
    password typed one field late made a new colleague an administrator unnoticed; typed
    into the open list, a password's letters walked it and ended on Admin for Return to
    take. Here a role is chosen only deliberately (``choose_deliberately``), the wheel
    never chooses, and granting Admin asks first (``ask_to_grant_admin``).
    """
    box = QComboBox()
    box.setObjectName("roleBox")
    box.setAccessibleName("Role")
    box.setPlaceholderText("Choose a role…")
    for role in ROLES:
        box.addItem(role_label(role), role)
    box.setCurrentIndex(ROLES.index(current) if current is not None else -1)
    ignore_wheel(box)  # a pointer passing over it never makes someone an administrator
    choose_deliberately(box)
    return box


class StaffDialog(QDialog):
    """The staff screen (window-modal, opened with ``open()``)."""

    def __init__(self, worker: Worker, workstation: Workstation, parent: QWidget | None) -> None:
        super().__init__(parent)
        self._worker = worker
        self._workstation = workstation
        self.rows: list[StaffRow] = []
        self.child: QDialog | None = None
        self.setObjectName("staffDialog")
        self.setWindowTitle("Staff")
        self.setMinimumSize(980, 460)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("staffTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        tab_leaves(self.table)  # on to Change role… and the rest, for the person chosen
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.add_button = QPushButton("Add…")
        self.add_button.setObjectName("addStaff")
        self.role_button = QPushButton("Change role…")
        self.role_button.setObjectName("changeRole")
        self.other_roles_button = QPushButton("Other roles…")
        self.other_roles_button.setObjectName("otherRoles")
        self.other_roles_button.setToolTip("Roles held beyond the primary one")
        self.active_button = QPushButton("Deactivate…")
        self.active_button.setObjectName("toggleActive")
        self.reset_button = QPushButton("Reset password…")
        self.reset_button.setObjectName("resetPassword")
        self.add_button.clicked.connect(self.show_add)
        self.role_button.clicked.connect(self.show_role)
        self.other_roles_button.clicked.connect(self.show_other_roles)
        self.active_button.clicked.connect(self.toggle_active)
        self.reset_button.clicked.connect(self.show_reset)
        actions = QHBoxLayout()
        for button in (
            self.add_button,
            self.role_button,
            self.other_roles_button,
            self.active_button,
            self.reset_button,
        ):
            actions.addWidget(button)
        actions.addStretch(1)
        holder = QWidget()
        holder.setLayout(actions)
        self.error = error_label()
        self.busy = busy_bar()
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        intro = paragraph(
            "Everyone who can sign in to the clinic. A deactivated person cannot sign in on "
            "any computer once the change has reached it; what they recorded stays theirs. "
            "“Sign-in” shows failed sign-ins on this computer and any delay they caused.",
            "hint",
        )
        dialog_layout(
            self, heading_label("Staff"), intro, self.table, holder, self.error, self.busy, close
        )
        self._selection_changed()
        self.reload()

    def reload(self, select: str = "") -> None:
        """Read the staff again on the worker (``select``: the user name to select)."""
        self.busy.show()
        self._worker.submit(
            lambda: load_staff(self._workstation),
            lambda rows: self._show(rows, select),
            self._failed,
            label="staff",
        )

    def _show(self, rows: list[StaffRow], select: str) -> None:
        self.busy.hide()
        self.rows = rows
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, text in enumerate(row.cells()):
                item = QTableWidgetItem(text)
                if not row.member.active:
                    item.setForeground(Qt.GlobalColor.gray)
                self.table.setItem(r, c, item)
            if row.member.username == select:
                self.table.selectRow(r)
        self._selection_changed()

    def _failed(self, exc: Exception) -> None:
        self.busy.hide()
        self.error.setText(describe_error(exc))
        self.error.show()

    def selected(self) -> StaffMember | None:
        """The account whose row is selected."""
        picked = self.table.selectionModel().selectedRows()
        if not picked or picked[0].row() >= len(self.rows):
            return None
        return self.rows[picked[0].row()].member

    def _selection_changed(self) -> None:
        member = self.selected()
        for button in (self.role_button, self.active_button, self.reset_button):
            button.setEnabled(member is not None)
        self.other_roles_button.setEnabled(member is not None and member.active)
        self.active_button.setText(
            # Deactivating asks first (the ellipsis says so); reactivating does not.
            "Reactivate" if member is not None and not member.active else "Deactivate…"
        )

    def _open_child(self, dialog: QDialog) -> None:
        if self.child is not None:
            dialog.deleteLater()
            return
        self.child = dialog
        dialog.finished.connect(self._forget_child)
        dialog.open()

    def _forget_child(self) -> None:
        if self.child is not None:
            self.child.deleteLater()
            self.child = None

    def show_add(self) -> None:
        """Add… : a new staff member."""
        dialog = AddStaffDialog(self._worker, self._workstation, self)
        dialog.saved.connect(self.reload)
        self._open_child(dialog)

    def show_role(self) -> None:
        """Change role… of the selected account."""
        self._open_for_selected(RoleDialog)

    def show_other_roles(self) -> None:
        """Other roles… of the selected account."""
        self._open_for_selected(OtherRolesDialog)

    def show_reset(self) -> None:
        """Reset password… of the selected account."""
        self._open_for_selected(ResetPasswordDialog)

    def _open_for_selected(
        self, kind: Callable[[Worker, Workstation, StaffMember, QWidget | None], _StaffForm]
    ) -> None:
        member = self.selected()
        if member is not None:
            dialog = kind(self._worker, self._workstation, member, self)
            dialog.saved.connect(self.reload)
            self._open_child(dialog)

    def toggle_active(self) -> None:
        """Deactivate (after a confirmation) or reactivate the selected account."""
        member = self.selected()
        if member is None or self.child is not None:
            return
        name = member.username
        staff = self._workstation.staff
        if not member.active:
            self._run(lambda: staff().reactivate(name), name)
            return
        # A question a stray Return or Space must not answer: Cancel is the default.
        self.child = ask_first(
            self,
            "confirmDeactivate",
            "Deactivate",
            f"Deactivate {member.full_name or name} ({name})?",
            "They can no longer sign in on this computer, nor on the clinic's other computers "
            "once this change reaches them. Everything they recorded stays theirs. You can "
            "reactivate them later.",
            "Deactivate",
            lambda chosen: self._deactivate_answered(chosen, name),
        )

    def _deactivate_answered(self, chosen: bool, name: str) -> None:
        self.child = None  # ask_first deletes its box
        if chosen:
            staff = self._workstation.staff
            self._run(lambda: staff().deactivate(name), name)

    def _run(self, fn: Callable[[], object], select: str) -> None:
        self.error.hide()
        self.busy.show()
        self._worker.submit(fn, lambda _: self.reload(select), self._failed, label="staff")


class _StaffForm(FormDialog):
    """A staff form: saved on the worker, then ``saved(username)``."""

    saved = Signal(str)

    def __init__(self, worker: Worker, workstation: Workstation, parent: QWidget | None) -> None:
        super().__init__(worker, parent)
        self._workstation = workstation
        self._username = ""
        self.admin_question: QMessageBox | None = None
        self.setMinimumWidth(580)

    def finish(self, accept_text: str, *parts: QWidget | QFormLayout) -> None:
        """Lay out ``parts`` with the dialog's buttons."""
        self.buttons, self.save_button = action_buttons(self, self.save, accept_text)
        dialog_layout(
            self,
            *parts,
            self.general_error,
            self.progress,
            self.busy,
            self.buttons,
            room_above_last=True,
        )

    def save(self) -> None:
        """Subclasses check their form and call :meth:`run`."""

    def run_granting_admin(self, who: str, fn: Callable[[], None], busy_text: str) -> None:
        """:meth:`run` ``fn``, which makes ``who`` an administrator, once the person said
        so: a role typed or clicked by mistake must not hand someone the clinic's keys.
        Cancel is the question's default; the form stays as it was."""
        if self.admin_question is not None:
            return

        def answered(grant: bool) -> None:
            self.admin_question = None
            if grant:
                self.run(fn, busy_text)
            else:
                self.role_field().setFocus()

        self.admin_question = ask_first(
            self,
            "confirmAdmin",
            self.windowTitle(),
            f"Make {who} an administrator?",
            ADMIN_CAN,
            "Make administrator",
            answered,
        )

    def role_field(self) -> QWidget:
        """Where the role was chosen (the keyboard goes back there if Admin is declined)."""
        return self.save_button

    def done(self, result: int) -> None:
        """Close (the Admin question too, if open)."""
        box, self.admin_question = self.admin_question, None
        if box is not None:
            box.reject()
        super().done(result)

    def succeeded(self) -> None:
        """Tell the staff screen, and close."""
        self.saved.emit(self._username)
        self.accept()

    def failed(self, exc: Exception) -> None:
        """A weak password shows under the password field."""
        if isinstance(exc, ValidationError) and exc.field == "password":
            self.show_error("password", worded(exc))
        else:
            super().failed(exc)


class AddStaffDialog(_StaffForm):
    """Add a staff member with a first password they change at first sign-in."""

    def __init__(self, worker: Worker, workstation: Workstation, parent: QWidget | None) -> None:
        super().__init__(worker, workstation, parent)
        self.setObjectName("addStaffDialog")
        self.setWindowTitle("Add a staff member")
        self.user = QLineEdit()
        self.user.setObjectName("staffUsername")
        self.user.setPlaceholderText("e.g. nina.okafor")
        self.full_name = QLineEdit()
        self.full_name.setObjectName("staffFullName")
        # No role until the person chooses one: the account's rights are never a default.
        self.role = role_box(None)
        self.new = password_field("firstPassword")
        self.confirm = password_field("confirmPassword")
        # Rows in the order they are seen, which is the order Tab takes: Role was added
        # after the passwords, and Tab reached it last.
        form = self.add_rows(
            [("User name", "username", self.user), ("Full name", "full_name", self.full_name)]
        )
        self.errors["role"] = error_label()
        self.clears_on_edit([(self.role, self.errors["role"])])
        form.addRow("Role", self.role)
        form.addRow("", MessageSlot(self.errors["role"]))
        self.strength = StrengthHint(self.new, lambda: (self.user.text(), self.full_name.text()))
        self.add_rows(
            [
                ("First password", "password", self.new),
                ("Repeat password", "confirm", self.confirm),
            ],
            form,
            self.strength,
        )
        intro = paragraph(
            "Give them the first password in person. They must choose their own the first "
            "time they sign in. Their account reaches the clinic's other computers with the "
            "next sync.",
            "hint",
        )
        self.finish("Add", heading_label("Add a staff member"), intro, form)
        self.user.setFocus()

    def save(self) -> None:
        """Check the form and add the account on the worker."""
        if self.working:
            return
        self.clear_errors()
        user, full_name = self.user.text().strip(), self.full_name.text().strip()
        new = self.new.text()
        problems = {"username": "Enter a user name."} if not user else {}
        if not full_name:
            problems["full_name"] = "Enter their full name."
        if self.role.currentData() is None:
            problems["role"] = "Choose their role: it decides what they may do."
        problems |= self.new_password_problems(
            "password", new, self.confirm, "passwords", self.strength
        )
        if self.show_errors(problems):
            return
        role = str(self.role.currentData())
        ws = self._workstation
        self._username = user.lower()

        def add() -> None:
            ws.add_staff(user, full_name, role, new)

        busy = "Adding the staff member… This takes a few seconds."
        if role == "admin":
            self.run_granting_admin(f"{full_name} ({user})", add, busy)
        else:
            self.run(add, busy)

    def role_field(self) -> QWidget:
        """The Role box."""
        return self.role


class RoleDialog(_StaffForm):
    """Change a staff member's role."""

    def __init__(
        self, worker: Worker, workstation: Workstation, member: StaffMember, parent: QWidget | None
    ) -> None:
        super().__init__(worker, workstation, parent)
        self.setObjectName("roleDialog")
        self.setWindowTitle("Change role")
        self._username = member.username
        self._member = member
        self.role = role_box(member.role)
        form = self.add_rows([])
        form.addRow("Role", self.role)
        intro = paragraph(
            "The role decides what they may do. The clinic always keeps at least one active "
            "administrator.",
            "hint",
        )
        self.finish(
            "Change role",
            heading_label(f"Role of {member.full_name or member.username}"),
            intro,
            form,
        )

    def save(self) -> None:
        """Change the role on the worker."""
        if self.working:
            return
        self.clear_errors()
        name, role, staff = self._username, str(self.role.currentData()), self._workstation.staff

        def change() -> None:
            staff().set_role(name, role)

        member = self._member
        if role == "admin" and "admin" not in (member.roles or (member.role,)):
            self.run_granting_admin(
                f"{member.full_name or name} ({name})", change, "Changing the role…"
            )
        else:
            self.run(change, "Changing the role…")

    def role_field(self) -> QWidget:
        """The Role box."""
        return self.role


class OtherRolesDialog(_StaffForm):
    """Roles beyond the primary one: a checkbox per role (the primary one ticked and fixed)."""

    def __init__(
        self, worker: Worker, workstation: Workstation, member: StaffMember, parent: QWidget | None
    ) -> None:
        super().__init__(worker, workstation, parent)
        self.setObjectName("otherRolesDialog")
        self.setWindowTitle("Other roles")
        self._username = member.username
        self._who = f"{member.full_name or member.username} ({member.username})"
        self._held = set(member.roles or (member.role,))
        self.boxes: dict[str, QCheckBox] = {}
        form = self.add_rows([])
        for role in ROLES:
            box = QCheckBox(role_label(role))
            box.setObjectName(f"role_{role}")
            box.setChecked(role in self._held)
            if role == member.role:
                box.setEnabled(False)
                box.setText(f"{role_label(role)} (primary role)")
            self.boxes[role] = box
            form.addRow("", box)
        intro = paragraph(
            "A person may hold several roles, such as an administrator who also sees "
            "patients as a clinician. Each role adds what it allows. The primary role is "
            "changed with “Change role…”. Changes reach the clinic's other computers with "
            "the next sync and are recorded in the audit log.",
            "hint",
        )
        self.finish(
            "Save roles",
            heading_label(f"Roles of {member.full_name or member.username}"),
            intro,
            form,
        )

    def save(self) -> None:
        """Grant the newly ticked roles and take back the unticked ones, on the worker."""
        if self.working:
            return
        self.clear_errors()
        wanted = {role for role, box in self.boxes.items() if box.isChecked()}
        add = [r for r in ROLES if r in wanted - self._held]
        remove = [r for r in ROLES if r in self._held - wanted]
        name, staff = self._username, self._workstation.staff

        def change() -> None:
            people = staff()
            for role in add:
                people.add_role(name, role)
            for role in remove:
                people.remove_role(name, role)

        if "admin" in add:
            self.run_granting_admin(self._who, change, "Changing the roles…")
        else:
            self.run(change, "Changing the roles…")

    def role_field(self) -> QWidget:
        """The Admin tick."""
        return self.boxes["admin"]


class ResetPasswordDialog(_StaffForm):
    """An administrator sets a new password; the person changes it at next sign-in."""

    def __init__(
        self, worker: Worker, workstation: Workstation, member: StaffMember, parent: QWidget | None
    ) -> None:
        super().__init__(worker, workstation, parent)
        self.setObjectName("resetPasswordDialog")
        self.setWindowTitle("Reset password")
        self._username = member.username
        self.new = password_field("resetNewPassword")
        self.confirm = password_field("confirmPassword")
        self.strength = StrengthHint(self.new, lambda: (member.username, member.full_name))
        form = self.add_rows(
            [("New password", "password", self.new), ("Repeat password", "confirm", self.confirm)],
            hint=self.strength,
        )
        intro = paragraph(
            f"{member.full_name or member.username} must choose their own password the next "
            "time they sign in. Their old password stops working here at once, and on the "
            "other computers once this change reaches them. The reset is recorded in the "
            "audit log.",
            "hint",
        )
        self.finish(
            "Reset password",
            heading_label(f"Reset the password of {member.username}"),
            intro,
            form,
        )
        self.new.setFocus()

    def save(self) -> None:
        """Reset on the worker."""
        if self.working:
            return
        self.clear_errors()
        new = self.new.text()
        problems = self.new_password_problems(
            "password", new, self.confirm, "passwords", self.strength
        )
        if self.show_errors(problems):
            return
        name, ws = self._username, self._workstation
        self.run(
            lambda: ws.reset_staff_password(name, new),
            "Resetting the password… This takes a few seconds.",
        )
