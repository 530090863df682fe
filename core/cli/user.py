"""``careline user add|list|role|roles|deactivate|reactivate|reset-password|totp``: staff
accounts (core/records/staff.py), as an administrator signed in with their password.

Secrets never go on the command line. With ``--password-stdin`` standard input holds, one per
line: the administrator's password, their two-factor code if they enrolled one, then the
new person's first password (``add``) or new password (``reset-password``) or the code that
confirms a TOTP enrolment. Without it, each is asked for on the terminal.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from core.cli.context import EXIT_OK, Context
from core.cli.registry import CommandGroup, actions
from core.records import two_factor
from core.records import validation as v
from core.records.lockout import Lockout, describe_wait
from core.records.staff import StaffMember


def arguments(parser: argparse.ArgumentParser) -> None:
    """The user actions."""
    user = actions(parser)
    said = (
        "admin: add a staff member; with --password-stdin, standard input holds one per "
        "line your own password, your two-factor code if you enrolled one, then their first "
        "password (else you are prompted)"
    )
    add = user.add_parser("add", help=said, description=said)
    add.add_argument("username")
    add.add_argument("--full-name", required=True)
    add.add_argument("--role", required=True, choices=v.ROLES)
    user.add_parser("list", help="admin: staff, their roles, and sign-in delays on this computer")
    role = user.add_parser("role", help="admin: change a staff member's role")
    role.add_argument("username")
    role.add_argument("role", choices=v.ROLES)
    roles = user.add_parser(
        "roles", help="admin: every role a staff member holds; --add/--remove an extra one"
    )
    roles.add_argument("username")
    roles.add_argument("--add", choices=v.ROLES, metavar="ROLE", help="give an extra role")
    roles.add_argument("--remove", choices=v.ROLES, metavar="ROLE", help="take back an extra role")
    for name, what in (
        ("deactivate", "admin: stop an account signing in (its past work stays its own)"),
        ("reactivate", "admin: let a deactivated account sign in again"),
        (
            "reset-password",
            "admin: set a new password, changed at next sign-in; with "
            "--password-stdin, standard input holds your own password (and two-factor code), "
            "then the new one, one per line",
        ),
    ):
        user.add_parser(name, help=what, description=what).add_argument("username")
    totp = user.add_parser("totp", help="two-factor sign-in for your admin account")
    totp_actions = actions(totp, dest="totp_action")
    totp_actions.add_parser(
        "enrol", help="show a new secret (otpauth URI), then confirm it with a code"
    )
    disable = totp_actions.add_parser("disable", help="turn two-factor sign-in off")
    disable.add_argument("username", nargs="?", help="another admin's (default: your own)")


def _secret_line(ctx: Context, prompt: str, what: str, confirm: bool) -> str:
    from core.cli.passwords import prompt_new_password, prompt_secret, read_stdin_line

    if ctx.args.password_stdin:
        return read_stdin_line("--password-stdin", what)
    if confirm:
        return prompt_new_password(prompt)
    return prompt_secret(prompt, what, "--password-stdin")


def member_line(m: StaffMember, lockout: Lockout | None, now: float) -> str:
    """One line of ``user list``."""
    flags = [] if m.active else ["DEACTIVATED"]
    if m.must_change_password:
        flags.append("must change password")
    if m.two_factor:
        flags.append("two-factor")
    if lockout is not None:
        left = lockout.seconds_left(now)
        wait = f", waits {describe_wait(left)}" if left > 0 else ""
        flags.append(f"{lockout.failures} failed sign-ins here{wait}")
    extra = f"  ({'; '.join(flags)})" if flags else ""
    roles = "+".join(r.replace("_", " ") for r in (m.roles or (m.role,)))
    return f"{m.username:<16} {roles:<16} {m.full_name}{extra}"


def member_dict(m: StaffMember, lockout: Lockout | None, now: float) -> dict[str, Any]:
    """One entry of ``user list --json``."""
    return {**m.to_dict(), "sign_in_delay": lockout.to_dict(now) if lockout else None}


def run(ctx: Context) -> int:
    """user ..."""
    args, ws = ctx.args, ctx.workstation
    if args.action == "add":
        # Checked before the slow sign-in, so a bad name or role fails at once.
        v.username(args.username)
        v.text("full_name", args.full_name)
    ctx.sign_in_person()
    staff = ws.staff()
    now = ws.clock()
    if args.action == "list":
        members = staff.members()
        locks = {lock.user: lock for lock in ws.lockouts()}
        ctx.emit(
            [member_dict(m, locks.get(m.username), now) for m in members],
            "\n".join(member_line(m, locks.get(m.username), now) for m in members),
        )
        return EXIT_OK
    if args.action == "add":
        first = _secret_line(
            ctx, f"First password for {args.username}: ", "first password (of the new person)", True
        )
        member = StaffMember.of(ws.add_staff(args.username, args.full_name, args.role, first))
        ctx.emit(
            member.to_dict(),
            f"Added {member.username} ({member.role.replace('_', ' ')}). They must choose their "
            "own password when they first sign in.",
        )
    elif args.action == "role":
        member = staff.set_role(args.username, args.role)
        ctx.emit(member.to_dict(), f"{member.username} is now {member.role.replace('_', ' ')}.")
    elif args.action == "roles":
        if args.add:
            member = staff.add_role(args.username, args.add)
        if args.remove:
            member = staff.remove_role(args.username, args.remove)
        if not (args.add or args.remove):
            member = staff.roles(args.username)
        named = ", ".join(r.replace("_", " ") for r in member.roles)
        primary = member.role.replace("_", " ")
        ctx.emit(member.to_dict(), f"{member.username}: {named} (primary role: {primary}).")
    elif args.action == "deactivate":
        member = staff.deactivate(args.username)
        ctx.emit(
            member.to_dict(),
            f"Deactivated {member.username}: they cannot sign in on any workstation once this "
            "change has synced there; their past work stays theirs.",
        )
    elif args.action == "reactivate":
        member = staff.reactivate(args.username)
        ctx.emit(member.to_dict(), f"Reactivated {member.username}.")
    elif args.action == "reset-password":
        new = _secret_line(ctx, f"New password for {args.username}: ", "new password", True)
        ws.reset_staff_password(args.username, new)
        member = StaffMember.of(_must_exist(ctx, args.username))
        ctx.emit(
            member.to_dict(),
            f"Password reset for {member.username}; they must change it at their next sign-in.",
        )
    else:
        return _totp(ctx)
    return EXIT_OK


def _must_exist(ctx: Context, username: str) -> Any:
    user = ctx.workstation.records.user(username)
    assert user is not None  # the reset just found it
    return user


def _totp(ctx: Context) -> int:
    """user totp enrol | disable."""
    ws = ctx.workstation
    staff = ws.staff()
    if ctx.args.totp_action == "disable":
        member = staff.disable_totp(ctx.args.username)
        ctx.emit(member.to_dict(), f"Two-factor sign-in is off for {member.username}.")
        return EXIT_OK
    secret = two_factor.new_secret()
    me = ws.records.actor
    uri = two_factor.provisioning_uri(secret, me, ws.records.clinic_name())
    # On stderr, before the code is read: stdout stays the one result document.
    sys.stderr.write(
        "Add this account to your authenticator app (type the secret, or paste the URI):\n"
        f"  secret: {secret}\n  uri:    {uri}\n"
    )
    sys.stderr.flush()
    code = _secret_line(ctx, "Code the app shows now: ", "two-factor code (to confirm)", False)
    member = staff.enrol_totp(secret, code)
    ctx.emit(
        member.to_dict(),
        f"Two-factor sign-in is on for {me}: every sign-in now asks for the app's code.",
    )
    return EXIT_OK


GROUP = CommandGroup("user", "staff accounts (administrators)", arguments, run)
