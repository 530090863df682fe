"""``careline``: the workstation's command line (DESIGN.md section 4).

Global options come before the command. With no command the desktop app opens (the
``app`` package decides that; this module never imports Qt). ``--json`` prints exactly one
JSON document on stdout; errors go to stderr with a non-zero exit code that says what kind
of failure it was.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from core.audit.verify import verify_audit_log
from core.config.settings import (
    CONFIG_FILE_NAME,
    DESKTOP_SCHEMA,
    ConfigError,
    default_data_dir,
    load_settings,
)
from core.crypto.secure_memory import disable_core_dumps
from core.keys.errors import KeyError_, KeyringUnavailableError, NoSlotError, WrongSecretError
from core.records import validation
from core.records.clinic import ClinicRecords
from core.records.errors import AuthenticationError, NotFoundError, RecordError
from core.records.models import PATIENT_EDITABLE, Conflict, Patient, PatientSummary
from core.records.spec import spoken_list
from core.records.types import ALLERGIES, PATIENT
from core.records.workstation import Workstation
from core.store.database import DriverError
from core.store.errors import (
    DamagedDatabaseError,
    NotCarelineDatabaseError,
    StoreError,
    WrongKeyError,
)
from core.sync.session import SyncReport

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_AUTH, EXIT_CHECK_FAILED = 0, 1, 2, 3, 4


class CliError(Exception):
    """A failure to report on stderr with an exit code."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


def build_parser() -> argparse.ArgumentParser:
    """The full ``careline`` grammar."""
    parser = argparse.ArgumentParser(
        prog="careline",
        description="Careline clinic records. With no command, opens the desktop app.",
    )
    parser.add_argument("--data-dir", type=Path, help="folder of the clinic database")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--user", help="act as this user (default: the admin named at init)")
    parser.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    parser.add_argument(
        "--recovery-key-stdin",
        action="store_true",
        help="keys recover: read the recovery key from standard input (then the new password)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    init = sub.add_parser("init", help="create a new encrypted clinic database")
    init.add_argument("--clinic", required=True, help="clinic name")
    init.add_argument("--user", dest="init_user", required=True, help="first admin's login")
    init.add_argument("--full-name", help="first admin's full name (default: the login)")

    patient = sub.add_parser("patient", help="patients").add_subparsers(
        dest="action", metavar="ACTION", required=True
    )
    add = patient.add_parser("add", help="register a patient")
    add.add_argument("--family", required=True)
    add.add_argument("--given", required=True)
    add.add_argument("--birth-date", required=True, help="YYYY-MM-DD")
    add.add_argument("--mrn")
    add.add_argument("--sex", help=spoken_list(PATIENT.field_spec("sex").choices))
    add.add_argument("--phone")
    show = patient.add_parser("show", help="open a chart (audited)")
    show.add_argument("id")
    search = patient.add_parser("search", help="search by name prefix, MRN or birth date")
    search.add_argument("text")
    search.add_argument("--limit", type=int, default=20)
    setp = patient.add_parser("set", help="change one field")
    setp.add_argument("id")
    setp.add_argument("field", choices=PATIENT_EDITABLE)
    setp.add_argument("value")

    allergy = sub.add_parser("allergy", help="allergies").add_subparsers(
        dest="action", metavar="ACTION", required=True
    )
    aadd = allergy.add_parser("add", help="record an allergy")
    aadd.add_argument("patient_id")
    aadd.add_argument("substance")
    aadd.add_argument("--reaction")
    aadd.add_argument("--severity", help=spoken_list(ALLERGIES.item("severity").choices))

    conflicts = sub.add_parser("conflicts", help="concurrent edits waiting for a decision")
    csub = conflicts.add_subparsers(dest="action", metavar="ACTION", required=True)
    csub.add_parser("list", help="open conflicts with every competing value")
    resolve = csub.add_parser("resolve", help="settle a conflict (one audited change)")
    resolve.add_argument("conflict_id")
    how = resolve.add_mutually_exclusive_group(required=True)
    how.add_argument(
        "--choose",
        metavar="VALUE_ID",
        help="keep one of the listed values (a list conflict: 'merged' or a side's id)",
    )
    how.add_argument("--value", metavar="V", help="enter a new value instead")
    how.add_argument(
        "--keep",
        metavar="ITEM_ID[,ITEM_ID...]",
        help="a list conflict: the listed items to keep on the list ('' keeps none of them)",
    )

    enroll = sub.add_parser("enroll", help="join a clinic server with a one-time code")
    enroll.add_argument("--server", required=True, help="https://host:port")
    enroll.add_argument("--code", required=True)
    enroll.add_argument("--ca-file", type=Path, help="pin this CA for the server's TLS")
    enroll.add_argument("--device-name", help="how the server lists this workstation")
    pair = sub.add_parser("pair", help="pair LAN workstations").add_subparsers(
        dest="pair_command", metavar="ACTION", required=True
    )
    pcode = pair.add_parser("code", help="print a one-time code that lets a LAN workstation join")
    pcode.add_argument("--ttl", type=float, default=10.0, help="minutes the code stays valid")
    pjoin = pair.add_parser("join", help="join the clinic of the peer that showed the code")
    pjoin.add_argument("--code", required=True)
    pjoin.add_argument("--peer", metavar="HOST:PORT", help="the peer (default: found over mDNS)")
    serve = sub.add_parser("serve", help="run headless as a LAN peer until stopped")
    serve.add_argument("--port", type=int, default=47390, help="sync port (pairing: PORT+1)")
    serve.add_argument("--host", default="0.0.0.0", help="address to listen on")  # noqa: S104
    serve.add_argument(
        "--mdns-interface", default=None, help="announce on this address (default: --host)"
    )
    peers = sub.add_parser("peers", help="LAN peers seen over mDNS, and which are trusted")
    peers.add_argument("--seconds", type=float, default=2.0, help="how long to listen")
    peers.add_argument("--interface", default=None, help="browse on this address")
    sync = sub.add_parser("sync", help="sync with the clinic server")
    sync.add_argument("--server", help="server URL (default: the one enrolled with)")
    sync.add_argument("--peer", metavar="HOST:PORT", help="a LAN peer instead of the server")
    sync.add_argument("--once", action="store_true", help="one session, then exit")
    sync.add_argument("--progress", action="store_true", help="report each applied batch on stderr")
    sync.add_argument("--interval", type=float, default=30.0, help=argparse.SUPPRESS)

    password = sub.add_parser("password", help="your password").add_subparsers(
        dest="action", metavar="ACTION", required=True
    )
    password.add_parser(
        "change",
        help="change --user's password (--password-stdin: old, then new, one per line)",
    )
    keys = sub.add_parser("keys", help="recovery key, re-keying, forgotten passwords")
    ksub = keys.add_subparsers(dest="action", metavar="ACTION", required=True)
    ksub.add_parser(
        "recovery", help="admin: print a new recovery key once; the old one stops working"
    )
    ksub.add_parser("rekey", help="admin: re-encrypt the database under a fresh key")
    recover = ksub.add_parser(
        "recover",
        help="forgotten password: unlock with the recovery key and set a user's new password",
    )
    recover.add_argument("--user", dest="recover_user", required=True, help="whose password to set")
    # Accepted here too; SUPPRESS keeps the global flag's value when this one is absent.
    recover.add_argument(
        "--recovery-key-stdin",
        action="store_true",
        default=argparse.SUPPRESS,
        help="read the recovery key, then the new password, from standard input",
    )

    audit = sub.add_parser("audit", help="audit log").add_subparsers(
        dest="action", metavar="ACTION", required=True
    )
    audit.add_parser("verify", help="check the hash chain; name any altered entry")
    db = sub.add_parser("db", help="database").add_subparsers(
        dest="action", metavar="ACTION", required=True
    )
    db.add_parser("check", help="integrity check of the encrypted database")
    return parser


class Context:
    """Resolved settings and output for one invocation."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        base = load_settings(DESKTOP_SCHEMA, cli={"data_dir": args.data_dir})
        data_dir: Path = base["data_dir"] or default_data_dir()
        self.settings = load_settings(
            DESKTOP_SCHEMA,
            cli={"data_dir": data_dir},
            config_file=data_dir / CONFIG_FILE_NAME,
        )
        self.data_dir = data_dir
        self.workstation = Workstation(data_dir)

    def emit(self, document: Any, text: str) -> None:
        """Print the JSON document or the human text."""
        if self.args.json:
            sys.stdout.write(json.dumps(document, ensure_ascii=False) + "\n")
        else:
            sys.stdout.write(text.rstrip("\n") + "\n")

    def password(self) -> str | None:
        """Password from --password-stdin or CARELINE_PASSWORD_FILE."""
        from core.cli.passwords import read_password

        return read_password(self.args.password_stdin, self.settings["password_file"])

    def open_database(self) -> None:
        """Open the database for a check, without signing anyone in: nothing is written
        (no audit entry either), so a damaged file is examined as it is."""
        self._unlock(sign_in=False)

    def open_records(self) -> ClinicRecords:
        """Unlock for an unattended command: the user's password, else the OS keyring."""
        user, signed_in = self._unlock(sign_in=True)
        if signed_in:
            return self.workstation.records
        try:
            return self.workstation.unlock_for(user)
        except AuthenticationError as exc:
            raise CliError(str(exc), EXIT_AUTH) from None

    def _unlock(self, sign_in: bool) -> tuple[str, bool]:
        """Open the database with ``--user``'s password (signing them in when ``sign_in``),
        else with the OS keyring. Returns the user and whether they were signed in."""
        ws = self.workstation
        if not ws.is_initialized():
            raise CliError(f"no clinic in {self.data_dir}; run 'careline init' first")
        user = self.args.user or ws.keychain().default_user
        password = self.password()
        try:
            if password is None:
                ws.unlock_with_keyring()
            elif sign_in:
                ws.sign_in(user, password)
            else:
                ws.unlock_with_password(user, password)
        except AuthenticationError as exc:
            raise CliError(str(exc), EXIT_AUTH) from None
        except KeyringUnavailableError as exc:
            raise CliError(
                f"cannot unlock: {exc}. Give {user!r}'s password with --password-stdin "
                "or CARELINE_PASSWORD_FILE",
                EXIT_AUTH,
            ) from None
        except (NoSlotError, WrongSecretError) as exc:
            raise CliError(
                f"cannot unlock with the OS keyring ({exc}); give {user!r}'s password with "
                "--password-stdin or CARELINE_PASSWORD_FILE",
                EXIT_AUTH,
            ) from None
        return user, password is not None and sign_in

    def sign_in_person(self) -> ClinicRecords:
        """Sign ``--user`` in with their password (--password-stdin, CARELINE_PASSWORD_FILE
        or a prompt). Key management needs this: the OS-keyring slot opens the database
        but proves nobody's identity, so it is not enough to mint a recovery key or re-key."""
        from core.cli.passwords import PASSWORD_FILE_ENV, prompt_secret

        ws = self.workstation
        if not ws.is_initialized():
            raise CliError(f"no clinic in {self.data_dir}; run 'careline init' first")
        user = (self.args.user or ws.keychain().default_user).strip().lower()
        password = self.password() or prompt_secret(
            f"Password for {user}: ",
            "password",
            f"--password-stdin or set {PASSWORD_FILE_ENV} (the OS keyring is not enough here)",
        )
        try:
            ws.sign_in(user, password)
        except AuthenticationError as exc:
            raise CliError(str(exc), EXIT_AUTH) from None
        return ws.records


def _summary_line(p: PatientSummary | Patient) -> str:
    mrn = f"  MRN {p.mrn}" if p.mrn else ""
    return f"{p.id}  {p.family.upper()}, {p.given}  born {p.birth_date}{mrn}"


def cmd_init(ctx: Context) -> int:
    """Create the clinic database and first admin; print the recovery key once."""
    from core.cli.passwords import prompt_new_password

    args = ctx.args
    password = ctx.password() or prompt_new_password()
    ws = ctx.workstation
    recovery = ws.init(args.clinic, args.init_user, args.full_name or args.init_user, password)
    ws.lock()
    doc = {
        "data_dir": str(ctx.data_dir),
        "clinic": args.clinic,
        "user": args.init_user.strip().lower(),
        "recovery_key": recovery,
        "keyring_slot": ws.keyring_note is None,
    }
    keyring_line = (
        "An OS-keyring slot was added: this account can open the database without a password."
        if ws.keyring_note is None
        else f"No OS-keyring slot: {ws.keyring_note}."
    )
    ctx.emit(
        doc,
        f"Created clinic {args.clinic!r} in {ctx.data_dir}.\n"
        f"{keyring_line}\n\n"
        f"RECOVERY KEY (shown only now; store it offline, e.g. printed in the clinic safe):\n\n"
        f"    {recovery}\n",
    )
    return EXIT_OK


def cmd_patient(ctx: Context) -> int:
    """patient add/show/search/set."""
    args, records = ctx.args, ctx.open_records()
    if args.action == "add":
        p = records.add_patient(
            args.family, args.given, args.birth_date, args.sex, args.mrn, args.phone
        )
        ctx.emit(p.to_dict(), f"Added {_summary_line(p)}")
    elif args.action == "show":
        chart = records.open_chart(args.id)
        p = chart.patient
        lines = [
            _summary_line(p),
            f"  sex: {p.sex or '-'}   phone: {p.phone or '-'}",
            "  allergies: " + ("none recorded" if not chart.allergies else ""),
        ]
        for a in chart.allergies:
            extra = ", ".join(x for x in (a.reaction, a.severity) if x)
            lines.append(f"    {a.substance}" + (f" ({extra})" if extra else ""))
        ctx.emit(chart.to_dict(), "\n".join(lines))
    elif args.action == "search":
        if not 1 <= args.limit <= 1000:
            raise CliError("--limit must be between 1 and 1000", EXIT_USAGE)
        found = records.search_patients(args.text, limit=args.limit)
        ctx.emit(
            [s.to_dict() for s in found],
            "\n".join(_summary_line(s) for s in found) or "No patients match.",
        )
    elif args.action == "set":
        value = args.value if args.value != "" else None
        p = records.update_patient(args.id, {args.field: value})
        ctx.emit(p.to_dict(), f"Updated {_summary_line(p)}")
    return EXIT_OK


def cmd_allergy(ctx: Context) -> int:
    """allergy add."""
    args, records = ctx.args, ctx.open_records()
    a = records.add_allergy(args.patient_id, args.substance, args.reaction, args.severity)
    ctx.emit(a.to_dict(), f"Recorded allergy {a.id}: {a.substance} for patient {a.patient_id}")
    return EXIT_OK


def cmd_conflicts(ctx: Context) -> int:
    """conflicts list / resolve."""
    args, records = ctx.args, ctx.open_records()
    if args.action == "resolve":
        keep = None
        if args.keep is not None:
            keep = [item.strip() for item in args.keep.split(",") if item.strip()]
        records.resolve_conflict(args.conflict_id, choose=args.choose, value=args.value, keep=keep)
        ctx.emit({"resolved": args.conflict_id}, f"Resolved conflict {args.conflict_id}.")
        return EXIT_OK
    found = records.review_conflicts()
    lines = []
    for c in found:
        if c.kind == "set":
            lines += _list_conflict_lines(c)
            continue
        lines.append(f"{c.id}  {c.record_type} {c.record_id}  field {c.field}:")
        for v in c.candidates:
            shown = "(deleted)" if v.field == "deleted" else f"{v.field} = {v.value!r}"
            lines.append(f"    {v.id}  {shown}  by {v.author} on {v.replica} at {v.time}")
    ctx.emit([c.to_dict() for c in found], "\n".join(lines) or "No open conflicts.")
    return EXIT_OK


def _list_conflict_lines(c: Conflict) -> list[str]:
    """A list conflict as text: each side's additions and removals, then the choices."""
    labels = {i.id: i.label for i in c.items}
    lines = [f"{c.id}  {c.record_type} {c.record_id}  list {c.field} (same item changed twice):"]
    for side in c.sides:
        lines.append(f"    side {side.id}  (workstation {side.id}):")
        for e in side.edits:
            lines.append(f"        {e.action:<7}  {e.item}  {e.label}  by {e.author} at {e.time}")
        if not side.edits:
            lines.append("        (no net change)")
        kept = ", ".join(labels[i] for i in side.keep) or "none of them"
        lines.append(f"        applying this side keeps: {kept}")
    merged = ", ".join(labels[i] for i in c.merged) or "none of them"
    lines.append(f"    merged (shown now) keeps: {merged}")
    lines.append("    resolve with --choose merged, --choose SIDE_ID or --keep ITEM_ID,...")
    return lines


def cmd_enroll(ctx: Context) -> int:
    """Join a server's clinic; on an empty data dir, create the local database first."""
    from core.sync.enroll import EnrollmentError, enroll, save_credential
    from core.sync.session import SyncError, sync

    args, ws = ctx.args, ctx.workstation
    ca_pem = None
    if args.ca_file is not None:
        try:
            ca_pem = args.ca_file.read_text(encoding="ascii")
        except OSError as exc:
            raise CliError(f"--ca-file: cannot read {args.ca_file}: {exc.strerror}") from None
    if ws.is_initialized():
        ctx.open_records()
        recovery = None
    else:
        if not args.user:
            raise CliError("--user is required to create this workstation's database", 2)
        password = ctx.password()
        if password is None:
            raise CliError("give the password with --password-stdin or CARELINE_PASSWORD_FILE", 2)
        recovery = ws.prepare_join(args.user, password)
    try:
        credential = enroll(args.server, args.code, ca_pem, args.device_name)
    except EnrollmentError as exc:
        if recovery is not None:
            ws.lock()
            _remove_new_workstation(ws)
        raise CliError(str(exc)) from None
    save_credential(ws.database, credential)
    transport = credential.transport()
    try:
        report = sync(
            ws.database,
            transport,
            args.user or "device",
            on_revoked=_revocation_sink(ws.database, args.user or "device"),
        )
    except SyncError as exc:
        raise CliError(f"enrolled, but the first sync failed: {exc}") from None
    finally:
        transport.close()
    doc = {
        "device_id": credential.device_id,
        "clinic": credential.clinic_name,
        "records": report.snapshot_records + report.pulled,
        "recovery_key": recovery,
    }
    text = (
        f"Enrolled as device {credential.device_id} of {credential.clinic_name}; "
        f"{doc['records']} records received."
    )
    if recovery:
        text += f"\n\nRECOVERY KEY for this workstation (shown only now):\n\n    {recovery}\n"
    ctx.emit(doc, text)
    return EXIT_OK


def _revocation_sink(db: Any, actor: str) -> Callable[[list[int]], None]:
    """Devices the server revoked are refused on the LAN too."""
    from core.sync.lan.identity import merge_revoked

    def store(serials: list[int]) -> None:
        merge_revoked(db, serials, actor)

    return store


def _remove_new_workstation(ws: Workstation) -> None:
    for leftover in ws.data_dir.iterdir():
        leftover.unlink()


def cmd_sync(ctx: Context) -> int:
    """Sync with the enrolled server, once or until stopped."""
    import time

    from core.sync.enroll import load_credential
    from core.sync.session import SyncError, sync
    from core.sync.transport import TransportError

    args = ctx.args
    records = ctx.open_records()
    transport: Any
    if args.peer:
        transport = _peer_transport(records, args.peer)
    else:
        credential = load_credential(records.db)
        if credential is None:
            raise CliError("this workstation is not enrolled: run 'careline enroll' first")
        if args.server and args.server.rstrip("/") != credential.server_url:
            raise CliError(
                f"this workstation is enrolled with {credential.server_url}, not {args.server}"
            )
        transport = credential.transport()
    delay = args.interval
    try:
        while True:
            try:
                report = sync(
                    records.db,
                    transport,
                    records.actor,
                    on_revoked=_revocation_sink(records.db, records.actor),
                    on_progress=_progress_printer() if args.progress else None,
                )
                ctx.emit(
                    report.__dict__, f"Synced: {report.pulled} received, {report.pushed} sent."
                )
                if report.audit_problem is not None:
                    # A security finding, not a sync failure: the records did sync.
                    sys.stderr.write(f"careline: warning: {report.audit_problem}\n")
                delay = args.interval
                if args.once:
                    return EXIT_OK if report.audit_problem is None else EXIT_CHECK_FAILED
            except (SyncError, TransportError) as exc:
                if args.once:
                    raise CliError(f"sync failed: {exc}") from None
                sys.stderr.write(f"careline: sync failed, retrying in {delay:.0f} s: {exc}\n")
                delay = min(delay * 2, 600)
            time.sleep(delay)
    finally:
        transport.close()


def _progress_printer() -> Callable[[SyncReport], None]:
    """Print one line per applied batch, flushed so a log shows how far a long pull got."""

    def show(report: SyncReport) -> None:
        received = report.pulled + report.snapshot_records
        sys.stderr.write(f"careline: sync: {received} received, {report.pushed} sent\n")
        sys.stderr.flush()

    return show


def _peer_transport(records: ClinicRecords, address: str) -> Any:
    from core.sync.lan import identity as lan_id
    from core.sync.lan.pairing import PairingError, split_address
    from core.sync.lan.transport import LanTransport

    try:
        split_address(address)
    except PairingError as exc:
        raise CliError(f"--peer: {exc}", 2) from None
    identity = lan_id.load_identity(records.db)
    if identity is None:
        raise CliError("this workstation has no LAN identity: run 'careline pair join' first")
    return LanTransport(address, identity, lan_id.revoked_serials(records.db))


def cmd_pair(ctx: Context) -> int:
    """pair code | pair join."""
    from core.sync.lan import identity as lan_id

    args = ctx.args
    if args.pair_command == "code":
        records = ctx.open_records()
        lan_id.ensure_identity(records.db, records.actor)
        try:
            code = lan_id.new_pair_code(records.db, records.actor, args.ttl)
        except lan_id.LanIdentityError as exc:
            raise CliError(str(exc)) from None
        ctx.emit(
            {"code": code, "ttl_minutes": args.ttl},
            f"Pairing code (valid {args.ttl:g} minutes, once): {code}\n"
            "Keep 'careline serve' running here while the other workstation joins.",
        )
        return EXIT_OK
    return _pair_join(ctx)


def _pair_join(ctx: Context) -> int:
    from core.sync.lan import discovery
    from core.sync.lan.pairing import PairingError, pair_and_sync, split_address
    from core.sync.session import SyncError
    from core.sync.transport import TransportError

    args, ws = ctx.args, ctx.workstation
    if args.peer:
        try:
            host, port = split_address(args.peer)
        except PairingError as exc:
            raise CliError(f"--peer: {exc}", 2) from None
    else:
        seen = discovery.browse(2.0)
        if not seen:
            raise CliError("no LAN peer found over mDNS; give --peer HOST:PORT")
        host, port = seen[0].host, seen[0].port
    if ws.is_initialized():
        records = ctx.open_records()
        actor, recovery = records.actor, None
    else:
        if not args.user:
            raise CliError("--user is required to create this workstation's database", 2)
        password = ctx.password()
        if password is None:
            raise CliError("give the password with --password-stdin or CARELINE_PASSWORD_FILE", 2)
        recovery = ws.prepare_join(args.user, password)
        actor = args.user
    try:
        joined = pair_and_sync(ws.database, host, port, args.code, actor)
    except PairingError as exc:
        if recovery is not None:
            ws.lock()
            _remove_new_workstation(ws)
        raise CliError(str(exc)) from None
    except (SyncError, TransportError) as exc:
        raise CliError(f"paired, but the first sync failed: {exc}") from None
    device_id = joined.identity.device_id
    doc = {"device_id": device_id, "records": joined.records, "recovery_key": recovery}
    text = f"Paired as device {device_id}; {joined.records} records received."
    if recovery:
        text += f"\n\nRECOVERY KEY for this workstation (shown only now):\n\n    {recovery}\n"
    ctx.emit(doc, text)
    return EXIT_OK


def cmd_serve(ctx: Context) -> int:
    """Serve LAN peers (mutual TLS + mDNS) until interrupted."""
    import signal
    import threading

    from core.sync.lan import discovery
    from core.sync.lan import identity as lan_id
    from core.sync.lan.server import PeerServer

    args = ctx.args
    records = ctx.open_records()
    identity = lan_id.ensure_identity(records.db, records.actor)
    server = PeerServer(records.db, identity, args.host, args.port)
    try:
        server.start()
    except OSError as exc:
        raise CliError(f"--port {args.port}: cannot listen: {exc.strerror}") from None
    announce = args.mdns_interface or (args.host if args.host != "0.0.0.0" else None)  # noqa: S104
    advertiser = None
    try:
        advertiser = discovery.Advertiser(server.port, announce, [announce] if announce else None)
    except OSError as exc:
        sys.stderr.write(f"careline: mDNS announcement unavailable: {exc}\n")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    ctx.emit(
        {"port": server.port, "pairing_port": server.pairing_port, "device_id": identity.device_id},
        f"Serving LAN peers on {args.host}:{server.port}"
        + (f" (pairing on {server.pairing_port})" if server.pairing_port else ""),
    )
    sys.stdout.flush()
    try:
        stop.wait()
    finally:
        if advertiser is not None:
            advertiser.close()
        server.stop()
    return EXIT_OK


def cmd_peers(ctx: Context) -> int:
    """List peers announced over mDNS, and whether each passes a mutual-TLS hello."""
    from core.sync.lan import discovery
    from core.sync.lan import identity as lan_id
    from core.sync.lan.transport import LanTransport
    from core.sync.transport import TransportError

    args = ctx.args
    records = ctx.open_records()
    identity = lan_id.load_identity(records.db)
    seen = discovery.browse(args.seconds, [args.interface] if args.interface else None)
    rows = []
    for peer in seen:
        trusted = False
        if identity is not None:
            try:
                with LanTransport(
                    peer.address, identity, lan_id.revoked_serials(records.db), timeout=5
                ) as transport:
                    transport.hello()
                trusted = True
            except TransportError:
                trusted = False
        rows.append({"instance": peer.instance, "address": peer.address, "trusted": trusted})
    lines = [
        f"{r['address']}  {r['instance']}  {'trusted' if r['trusted'] else 'NOT trusted'}"
        for r in rows
    ]
    ctx.emit(rows, "\n".join(lines) or "No LAN peers seen.")
    return EXIT_OK


def cmd_audit(ctx: Context) -> int:
    """audit verify."""
    ctx.open_records()
    report = verify_audit_log(ctx.workstation.database)
    doc = {"ok": report.ok, "entries": report.entries, "problems": list(report.problems)}
    if report.ok:
        ctx.emit(doc, f"Audit log intact: {report.entries} entries, hash chain verified.")
        return EXIT_OK
    ctx.emit(doc, "Audit log FAILED verification:\n" + "\n".join(f"  {p}" for p in report.problems))
    return EXIT_CHECK_FAILED


def cmd_db(ctx: Context) -> int:
    """db check: SQLite's and SQLCipher's integrity checks; a file too damaged to open is a
    failed check too (exit 4), named in the report."""
    try:
        ctx.open_database()
        problems = ctx.workstation.database.integrity_problems()
    except (DamagedDatabaseError, NotCarelineDatabaseError, DriverError) as exc:
        problems = [str(exc)]
    doc = {"ok": not problems, "problems": problems, "path": str(ctx.workstation.db_path)}
    if not problems:
        ctx.emit(doc, f"Database {ctx.workstation.db_path}: integrity and cipher checks passed.")
        return EXIT_OK
    ctx.emit(doc, "Database check FAILED:\n" + "\n".join(f"  {p}" for p in problems))
    return EXIT_CHECK_FAILED


def cmd_password(ctx: Context) -> int:
    """password change: the current password, then the new one; changes the synced
    verifier and this workstation's slot."""
    from core.cli.passwords import PASSWORD_FILE_ENV, prompt_new_password, read_stdin_line

    args, ws = ctx.args, ctx.workstation
    if not ws.is_initialized():
        raise CliError(f"no clinic in {ctx.data_dir}; run 'careline init' first")
    user = (args.user or ws.keychain().default_user).strip().lower()
    # Both passwords are read before the slow sign-in, so a missing line fails at once.
    old = ctx.password()
    if old is None:
        from core.cli.passwords import prompt_secret

        old = prompt_secret(
            f"Current password for {user}: ", "password", f"--password-stdin or {PASSWORD_FILE_ENV}"
        )
    if args.password_stdin:
        new = read_stdin_line("--password-stdin", "second (new password)")
    else:
        new = prompt_new_password()
    validation.password(new)
    if new == old:
        raise CliError("the new password is the same as the current one")
    try:
        ws.sign_in(user, old)
        ws.change_password(user, old, new)
    except AuthenticationError as exc:
        raise CliError(str(exc), EXIT_AUTH) from None
    ctx.emit(
        {"user": user, "password_changed": True},
        f"Password changed for {user!r}. Use the new password from now on.",
    )
    return EXIT_OK


def cmd_keys(ctx: Context) -> int:
    """keys recovery | rekey | recover."""
    if ctx.args.action == "recover":
        return _keys_recover(ctx)
    ws = ctx.workstation
    ctx.sign_in_person()
    if ctx.args.action == "recovery":
        recovery = ws.new_recovery_key()
        ctx.emit(
            {"recovery_key": recovery},
            "New RECOVERY KEY for this workstation (shown only now; the previous key no longer "
            "opens it). Store it offline, e.g. printed in the clinic safe:\n\n"
            f"    {recovery}\n",
        )
        return EXIT_OK
    ws.rekey()
    chain = ws.keychain()
    generation = chain.db_key.generation
    keyring = " and the OS-keyring slot" if any(s.kind == "keyring" for s in chain.slots) else ""
    ctx.emit(
        {"rekeyed": True, "generation": generation},
        f"Re-encrypted {ws.db_path} under a new database key (generation {generation}). "
        f"Passwords, the recovery key{keyring} still open it.",
    )
    return EXIT_OK


def _keys_recover(ctx: Context) -> int:
    """Unlock with the recovery key and set a user's new password (audited)."""
    from core.cli.passwords import prompt_new_password, prompt_secret, read_stdin_line

    args, ws = ctx.args, ctx.workstation
    if not ws.is_initialized():
        raise CliError(f"no clinic in {ctx.data_dir}; run 'careline init' first")
    user = validation.username(args.recover_user)
    if args.recovery_key_stdin:
        recovery = read_stdin_line("--recovery-key-stdin", "recovery key")
    else:
        recovery = prompt_secret("Recovery key: ", "recovery key", "--recovery-key-stdin")
    if args.recovery_key_stdin or args.password_stdin:
        flag = "--recovery-key-stdin" if args.recovery_key_stdin else "--password-stdin"
        new = read_stdin_line(flag, "new password")
    else:
        new = prompt_new_password(f"New password for {user}: ")
    try:
        ws.recover_password(recovery, user, new)
    except (WrongSecretError, NoSlotError) as exc:
        raise CliError(f"cannot unlock with the recovery key: {exc}", EXIT_AUTH) from None
    ctx.emit(
        {"user": user, "password_changed": True},
        f"New password set for {user!r} (audited as done with the recovery key). "
        f"{user!r} signs in with it from now on. The recovery key still works; if it may "
        "have been seen, an administrator can issue a new one with 'careline keys recovery'.",
    )
    return EXIT_OK


COMMANDS: dict[str, Callable[[Context], int]] = {
    "init": cmd_init,
    "patient": cmd_patient,
    "allergy": cmd_allergy,
    "conflicts": cmd_conflicts,
    "enroll": cmd_enroll,
    "sync": cmd_sync,
    "pair": cmd_pair,
    "serve": cmd_serve,
    "peers": cmd_peers,
    "audit": cmd_audit,
    "db": cmd_db,
    "password": cmd_password,
    "keys": cmd_keys,
}


def run(argv: Sequence[str] | None, open_gui: Callable[[argparse.Namespace], int]) -> int:
    """Parse and run; ``open_gui`` is called when no command is given."""
    parser = build_parser()
    args = parser.parse_args(argv)
    disable_core_dumps()
    if args.command is None:
        return open_gui(args)
    ctx: Context | None = None
    try:
        ctx = Context(args)
        return COMMANDS[args.command](ctx)
    except CliError as exc:
        return _fail(str(exc), exc.code)
    except ConfigError as exc:
        return _fail(f"configuration: {exc}", EXIT_USAGE)
    except AuthenticationError as exc:
        return _fail(str(exc), EXIT_AUTH)
    except (NotFoundError, RecordError) as exc:
        return _fail(str(exc), EXIT_ERROR)
    except WrongKeyError as exc:
        return _fail(f"cannot unlock: {exc}", EXIT_AUTH)
    except (StoreError, KeyError_) as exc:
        return _fail(str(exc), EXIT_ERROR)
    except DriverError as exc:
        return _fail(
            f"the clinic database {ctx.workstation.db_path if ctx else ''} could not be read "
            f"({exc}). Run 'careline db check' for a full report",
            EXIT_ERROR,
        )
    finally:
        if ctx is not None:
            ctx.workstation.lock()


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"careline: error: {message}\n")
    return code
