"""``careline-server``: the headless clinic server and its admin commands (DESIGN.md 4)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from types import FrameType
from typing import Any

from core import __version__
from core.cli import server_backup
from core.cli.passwords import read_stdin_line
from core.cli.user import member_line
from core.config.logs import configure_logging, withhold_exception_messages
from core.config.settings import ConfigError
from core.crypto import certs
from core.crypto.secure_memory import SecureMemory, disable_core_dumps, set_memory_locking
from core.errors import CarelineError, plain_words
from core.records.audit_review import AuditFilter
from core.records.staff import Staff, StaffMember
from core.records.validation import ROLES
from core.server import security_log
from core.server.audit_list import held_entries
from core.server.data_folder import created_whole_or_not_at_all, holds_server, require_server
from core.server.registry import IssuedCertificate
from core.server.service import ClinicServer
from core.server.settings import default_server_dir, load_server_settings
from core.server.tls_certificate import parse_tls_names

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2

log = logging.getLogger("careline.server")


def build_parser() -> argparse.ArgumentParser:
    """The full ``careline-server`` grammar."""
    parser = argparse.ArgumentParser(prog="careline-server", description=__doc__)
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}", help="print the release"
    )
    parser.add_argument("--data-dir", type=Path, help="server data folder")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser("run", help="serve the sync API over HTTPS until stopped")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8443)
    run.add_argument("--tls-cert", type=Path, help="PEM certificate (default: generated)")
    run.add_argument("--tls-key", type=Path, help="PEM private key (default: generated)")

    admin = sub.add_parser("admin", help="administration").add_subparsers(
        dest="area", metavar="AREA", required=True
    )
    admin.add_parser(
        "init",
        help="make a new server (registry and, with the local key provider, the master key "
        "file) in --data-dir; the only admin command that creates one (run's first start "
        "and restore do too)",
    )
    clinic = admin.add_parser("clinic", help="clinics").add_subparsers(dest="action", required=True)
    create = clinic.add_parser("create", help="create a clinic (tenant)")
    create.add_argument("name")
    clinic.add_parser("list", help="list clinics")
    user = admin.add_parser("user", help="staff accounts").add_subparsers(
        dest="action", required=True
    )
    add = user.add_parser(
        "add",
        help="add a staff account (first password on stdin; changed at first sign-in, except "
        "for the clinic's first account, its founding admin)",
    )
    add.add_argument("clinic")
    add.add_argument("user")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--full-name")
    ulist = user.add_parser("list", help="the clinic's staff accounts and their roles")
    ulist.add_argument("clinic")
    urole = user.add_parser("role", help="change a staff member's role")
    urole.add_argument("clinic")
    urole.add_argument("user")
    urole.add_argument("role", choices=ROLES)
    for name, what in (
        ("deactivate", "stop an account signing in on every workstation (once synced)"),
        ("reactivate", "let a deactivated account sign in again"),
        ("reset-password", "new password on stdin; the person changes it at next sign-in"),
    ):
        one = user.add_parser(name, help=what)
        one.add_argument("clinic")
        one.add_argument("user")
    code = admin.add_parser("enroll-code", help="print an enrollment code (one use by default)")
    code.add_argument("clinic")
    code.add_argument("--ttl", type=int, default=60, help="minutes the code stays valid")
    code.add_argument(
        "--uses", type=int, default=1, help="how many workstations it enrolls (mass enrollment)"
    )
    device = admin.add_parser("device", help="enrolled devices").add_subparsers(
        dest="action", required=True
    )
    listing = device.add_parser("list")
    listing.add_argument("--clinic")
    revoke = device.add_parser(
        "revoke", help="revoke a device: its token and every certificate it was issued"
    )
    revoke.add_argument("id")
    revoke.add_argument(
        "--earlier-serial",
        type=int,
        action="append",
        default=[],
        metavar="SERIAL",
        help="a certificate the device held before its current one that the registry does "
        "not know (see README, Device certificates and revocation); revoked too, also on a "
        "device already revoked (repeatable)",
    )
    keys = admin.add_parser("keys", help="encryption keys").add_subparsers(
        dest="action", required=True
    )
    keys.add_parser("rotate", help="new master key version; re-wrap every data key")
    reencrypt = keys.add_parser(
        "reencrypt", help="re-encrypt clinic replicas under fresh data keys (resumable)"
    )
    reencrypt.add_argument("--clinic", help="only this clinic")
    retire = keys.add_parser("retire", help="retire a master key version nothing uses any more")
    retire.add_argument("version")
    quarantine = admin.add_parser(
        "quarantine", help="ops refused by verification and kept aside"
    ).add_subparsers(dest="action", required=True)
    held = quarantine.add_parser(
        "list", help="what the server quarantined: origin, seq, record type, author, why, "
        "from which device, when"
    )  # fmt: skip
    held.add_argument("clinic", nargs="?", help="only this clinic (id or name)")
    held.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print one JSON document"
    )
    audit = admin.add_parser("audit", help="audit logs").add_subparsers(
        dest="action", required=True
    )
    audit.add_parser("verify", help="verify every hash chain")
    server_backup.add_arguments(admin)
    listing = audit.add_parser(
        "list", help="a clinic's audit entries: the server's and its workstations'"
    )
    listing.add_argument("clinic", help="the clinic (id or name)")
    listing.add_argument("--device", help="only this workstation's entries (device id)")
    listing.add_argument("--user", help="only entries by this person")
    listing.add_argument("--patient", help="only entries naming this patient")
    listing.add_argument("--action", dest="action_filter", metavar="ACTION",
                         help="an action (chart.open) or a kind (chart)")  # fmt: skip
    listing.add_argument("--since", help="from this day (YYYY-MM-DD) or time")
    listing.add_argument("--until", help="up to the end of this day or this time")
    listing.add_argument("--limit", type=int, help="at most N entries")
    listing.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print one JSON document"
    )
    return parser


class Output:
    """One JSON document with --json, else human text."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def emit(self, document: Any, text: str) -> None:
        """Print the result."""
        if self.as_json:
            sys.stdout.write(json.dumps(document) + "\n")
        else:
            sys.stdout.write(text.rstrip("\n") + "\n")


def open_server(settings: dict[str, Any], *, serving: bool = False) -> ClinicServer:
    """The server over the configured key provider. ``serving`` (``run``): a PostgreSQL
    server still starting is waited for; an admin command says at once that it does not
    answer."""
    from core.keys.providers import provider_from_settings

    data_dir: Path = settings["data_dir"]
    return ClinicServer(
        data_dir,
        provider_from_settings(settings, data_dir),
        settings=settings,
        wait_for_database=serving,
    )


# Seconds an idle client connection is kept open (uvicorn's default is 5).
SERVER_KEEPALIVE_S = 90


def cmd_run(args: argparse.Namespace, settings: dict[str, Any], out: Output) -> int:
    """Serve until stopped (SIGINT/SIGTERM)."""
    import uvicorn

    from core.server.api import create_app
    from core.server.systemd_notify import NotifyingServer

    server = open_server(settings, serving=True)
    cert, key = args.tls_cert, args.tls_key
    if (cert is None) != (key is None):
        raise ConfigError("--tls-cert and --tls-key go together")
    if cert is None:
        listed = parse_tls_names(settings["TLS_NAMES"] or "")
        cert, key = ensure_tls(settings["data_dir"], args.host, listed)
        pinned = settings["data_dir"] / "tls" / "server.pem"  # what workstations pin
        names = ", ".join(certs.server_names(Path(cert).read_text()))
        sys.stderr.write(
            f"careline-server: serving https://{args.host}:{args.port} (certificate "
            f"{pinned}, SHA-256 {certs.fingerprint(pinned.read_text())}; valid for {names})\n"
        )
    else:
        sys.stderr.write(
            f"careline-server: serving https://{args.host}:{args.port} "
            f"(certificate {cert}, SHA-256 {certs.fingerprint(Path(cert).read_text())})\n"
        )
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again: with the
    # default action the process would die right there, before closing the server (which,
    # on PostgreSQL, also takes this process out of the live node table).
    previous = signal.signal(signal.SIGTERM, _exit_quietly)
    try:
        # uvicorn.run's own server, plus READY=1 to systemd once it listens (Type=notify).
        config = uvicorn.Config(
            create_app(server),
            host=args.host,
            port=args.port,
            ssl_certfile=str(cert),
            ssl_keyfile=str(key),
            # No logging config of uvicorn's own: its records reach the one handler
            # start_up installed (JSON lines or text). The API logs every request itself.
            log_config=None,
            log_level=settings["LOG_LEVEL"],
            access_log=False,
            # Idle connections stay open past a workstation's minute between sessions
            # and its own keep-alive (core.sync.http_transport.KEEPALIVE_S): the next
            # session reuses its connection, with no new TLS handshake.
            timeout_keep_alive=SERVER_KEEPALIVE_S,
        )
        # Always: a PROXY header from an address not listed is logged, not just refused.
        _behind_proxy_protocol(config, settings["PROXY_PROTOCOL_FROM"])
        web = NotifyingServer(config)
        # Large clinics' snapshot images are built meanwhile, for the next workstation
        # that joins (core.sync.snapshot_image); until one is ready, pages as before.
        threading.Thread(target=server.prepare_images, name="careline-images", daemon=True).start()
        web.run()
        if not web.started:
            raise CarelineError(f"could not start serving on {args.host}:{args.port}")
    finally:
        server.close()
        signal.signal(signal.SIGTERM, previous)
    return EXIT_OK


def _behind_proxy_protocol(config: Any, balancers: str | None) -> None:
    """uvicorn's ``config``, loaded, with TLS moved behind PROXY protocol v2 headers from
    ``balancers`` (:mod:`core.server.proxy_protocol`; None: from no one): the same TLS
    context, started once a balancer's header has been read, or at once for anyone else."""
    from core.server.proxy_protocol import parse_networks, proxy_protocol_http

    config.load()
    trusted = parse_networks(balancers) if balancers is not None else ()
    config.http_protocol_class = proxy_protocol_http(
        config.http_protocol_class, config.ssl, trusted
    )
    config.ssl = None  # the listener takes plain TCP; the wrapper starts TLS itself


def start_up(settings: dict[str, Any], *, serving: bool) -> None:
    """Logging, the security event log and memory locking, as the settings say.

    ``serving`` (``run``): every log record goes to stderr as LOG_FORMAT says. Admin
    commands keep stderr for their own messages; their security events go to
    SECURITY_AUDIT_LOG only.
    """
    if serving:
        configure_logging(settings["LOG_FORMAT"], settings["LOG_LEVEL"])
    else:
        events = logging.getLogger(security_log.LOGGER)
        events.propagate = False
        # With no SECURITY_AUDIT_LOG, logging's last-resort handler would print the bare
        # event name ("admin.failed") above the command's own message.
        events.addHandler(logging.NullHandler())
    path = settings["SECURITY_AUDIT_LOG"]
    try:
        security_log.install(path)
    except OSError as exc:
        raise ConfigError(f"SECURITY_AUDIT_LOG: cannot open {path}: {exc.strerror}") from None
    if settings["ENABLE_MEMORY_LOCKING"]:
        set_memory_locking("require")
        SecureMemory(1).close()  # fail now, naming the limit, not at the first key
    else:
        set_memory_locking("off")
        log.warning(
            "ENABLE_MEMORY_LOCKING=false: key memory is not locked, so keys may be swapped to disk"
        )


def _exit_quietly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(EXIT_OK)


def ensure_tls(data_dir: Path, host: str, listed: Sequence[str] = ()) -> tuple[Path, Path]:
    """The generated TLS certificate to serve, and its key (devices pin ``tls/server.pem``
    at enrollment): :func:`core.server.tls_certificate.ensure_tls`."""
    from core.server import tls_certificate

    return tls_certificate.ensure_tls(data_dir, host, listed)


def cmd_admin(args: argparse.Namespace, settings: dict[str, Any], out: Output) -> int:
    """Every ``admin`` command, each recorded as a security event (ids, never passwords)."""
    action = " ".join(a for a in (args.area, getattr(args, "action", None)) if a)
    target: dict[str, Any] = {k: str(v) for k in ("clinic", "name", "id", "user", "version", "role")
              if (v := getattr(args, k, None)) is not None}  # fmt: skip
    try:
        if args.area == "restore":  # into a new data folder: no server to open there yet
            code = server_backup.restore(args, settings, out)
        elif args.area == "init":
            code = _init(settings, out)
        else:
            # Opening makes a registry and a master key where there are none: an admin
            # command on the wrong folder must say so, not act on an empty new server.
            # Creating a clinic is how a new server is set up (DESIGN.md's contract), so
            # it still makes one in an empty folder, and says so.
            new = _creates_clinic(args) and not holds_server(settings)
            if new:
                sys.stderr.write(
                    f"careline-server: {settings['data_dir']} held no server: making a new "
                    "one there for this clinic\n"
                )
            else:
                require_server(settings, _data_dir_source(args))
            if args.area == "backup":
                server_backup.check_destination(args)
            with created_whole_or_not_at_all(settings["data_dir"]) if new else nullcontext():
                server = open_server(settings)
            try:
                code = _admin(args, server, out)
            finally:
                server.close()
    except Exception as exc:
        security_log.event(
            "admin.failed", failed=True, action=action, error=type(exc).__name__, **target
        )
        raise
    security_log.event("admin", action=action, exit_code=code, **target)
    return code


def _init(settings: dict[str, Any], out: Output) -> int:
    """``admin init``: a new server in the data folder; an existing one is left alone."""
    data_dir: Path = settings["data_dir"]
    existed = holds_server(settings)
    if not existed:
        with created_whole_or_not_at_all(data_dir):
            open_server(settings).close()
    out.emit(
        {"data_dir": str(data_dir), "created": not existed},
        f"{data_dir} already holds a server; nothing changed."
        if existed
        else f"Made a new server in {data_dir}; create its first clinic with 'admin clinic "
        "create NAME'.",
    )
    return EXIT_OK


def _creates_clinic(args: argparse.Namespace) -> bool:
    """``admin clinic create``: the one command besides init that may make a server."""
    return args.area == "clinic" and getattr(args, "action", None) == "create"


def _data_dir_source(args: argparse.Namespace) -> str:
    """Where the data folder's name came from (said when it holds no server)."""
    if args.data_dir is not None:
        return "--data-dir"
    if os.environ.get("CARELINE_DATA_DIR"):
        return "CARELINE_DATA_DIR"
    return "the default for this user, as neither --data-dir nor CARELINE_DATA_DIR was given"


_NOT_KNOWN_WARNING = (
    "careline-server: warning: device {device} was re-certified on {when} by a server that "
    "did not keep the certificate it replaced, so its serial is not known and that "
    "certificate is NOT revoked: LAN peers still accept it until it expires, about "
    "{expires} (825 days after the device enrolled). Find its serial in a registry backup "
    "from before that day ('admin device list --json' on a restored copy: the device's "
    "current certificate there), then run 'admin device revoke {device} --earlier-serial "
    "SERIAL' (README, Device certificates and revocation).\n"
)


def _revoke_device(args: argparse.Namespace, server: ClinicServer, out: Output) -> None:
    """``admin device revoke ID [--earlier-serial SERIAL]...``: warns on stderr when a
    certificate of the device cannot be revoked (its serial is not known)."""
    device = server.revoke_device(args.id, args.earlier_serial)
    certificates = server.registry.issued_certificates(device.id)
    serials = [str(c.serial) for c in certificates if c.serial is not None]
    missing = _not_known(certificates)
    out.emit(
        device.__dict__ | {"revoked_serials": serials, "serials_not_known": len(missing)},
        f"Revoked device {device.id} and its {len(serials)} certificate(s) "
        f"(serials {', '.join(serials)}); it is refused from now on.",
    )
    if missing:
        enrolled = dt.datetime.fromisoformat(device.enrolled_at)
        expires = enrolled + dt.timedelta(days=certs.DEVICE_DAYS)
        sys.stderr.write(
            _NOT_KNOWN_WARNING.format(
                device=device.id, when=missing[0], expires=f"{expires:%Y-%m-%d}"
            )
        )


def _not_known(issued: list[IssuedCertificate]) -> list[str]:
    """When each earlier certificate whose serial is not known was replaced."""
    return [str(c.superseded_at) for c in issued if c.serial is None]


def _admin(args: argparse.Namespace, server: ClinicServer, out: Output) -> int:
    area, action = args.area, getattr(args, "action", None)
    if area == "clinic" and action == "create":
        clinic = server.create_clinic(args.name)
        out.emit(
            {"id": clinic.id, "name": clinic.name}, f"Created clinic {clinic.name} ({clinic.id})."
        )
    elif area == "clinic":
        rows = [{"id": c.id, "name": c.name} for c in server.registry.clinics()]
        out.emit(rows, "\n".join(f"{r['id']}  {r['name']}" for r in rows) or "No clinics.")
    elif area == "user":
        _admin_user(args, server, out)
    elif area == "enroll-code":
        clinic = server.registry.clinic(args.clinic)
        code, expires = server.registry.issue_enroll_code(clinic.id, args.ttl, args.uses)
        uses = "one use" if args.uses == 1 else f"{args.uses} uses"
        out.emit({"code": code, "clinic": clinic.id, "expires_at": expires, "uses": args.uses},
                 f"{code}\n({uses}, valid until {expires})")  # fmt: skip
    elif area == "device" and action == "list":
        clinic_id = server.registry.clinic(args.clinic).id if args.clinic else None
        devices = server.registry.devices(clinic_id)
        issued = {d.id: server.registry.issued_certificates(d.id) for d in devices}
        rows = [
            d.__dict__ | {"active": d.active,
                          "certificates": [c.to_dict() for c in issued[d.id]]}
            for d in devices
        ]  # fmt: skip
        # When each was enrolled: computers joined through the app are named after their
        # host name, so several can share a name, and the time tells them apart.
        lines = [
            f"{d.id}  {d.clinic_id}  {d.name}  enrolled {d.enrolled_at[:16].replace('T', ' ')}  "
            + ("active" if d.active else f"REVOKED {d.revoked_at}")
            + ("  (an earlier certificate not known)" if _not_known(issued[d.id]) else "")
            for d in devices
        ]
        out.emit(rows, "\n".join(lines) or "No devices.")
    elif area == "device":
        _revoke_device(args, server, out)
    elif area == "keys" and action == "reencrypt":
        result = server.reencrypt_replicas(args.clinic)
        out.emit(result, f"Re-encrypted {len(result['reencrypted'])} clinic replicas.")
    elif area == "keys" and action == "retire":
        result = server.retire_key_version(args.version)
        out.emit(result, f"Retired key version {args.version}.")
    elif area == "keys":
        result = server.rotate_keys()
        out.emit(result, f"Now on key version {result['key_version']}; "
                 f"re-wrapped {result['rewrapped']} data keys.")  # fmt: skip
    elif area == "quarantine":
        registry = server.registry
        clinics = [registry.clinic(args.clinic)] if args.clinic else registry.clinics()
        held: list[dict[str, object]] = [
            {"clinic": c.id, **q.to_dict()} for c in clinics for q in server.quarantined(c.id)
        ]
        lines = [
            f"{r['clinic']}  {r['origin']}:{r['seq']}  {r['record_type']}  by {r['author']}  "
            f"from {r['received_from']}  at {r['last_seen']}: {r['reason']}"
            for r in held
        ]
        out.emit(held, "\n".join(lines) or "Nothing quarantined.")
    elif area == "backup":
        server_backup.backup(args, server, out)
    elif area == "new-identity":
        renewed = server.take_new_identities()
        out.emit({"clinics": renewed},
                 f"{len(renewed)} clinic(s) will number the server's own ops under a new "
                 "identity.")  # fmt: skip
    elif area == "audit" and action == "list":
        clinic = server.registry.clinic(args.clinic)
        wanted = AuditFilter(args.patient, args.user, args.action_filter, args.since,
                             args.until, args.limit)  # fmt: skip
        entries = held_entries(
            server.audit_entries(clinic.id),
            server.device_audit_entries(clinic.id),
            wanted,
            args.device,
        )
        out.emit([e.to_dict() for e in entries],
                 "\n".join(e.line() for e in entries) or "No audit entries match.")  # fmt: skip
    elif area == "audit":
        report = server.audit_report()
        ok = all(r["ok"] for r in report.values())
        lines = [f"{name}: {'intact' if r['ok'] else 'FAILED'}" for name, r in report.items()]
        for name, r in report.items():
            lines += [f"  {name}: {p}" for p in r["problems"]]
        out.emit(report, "\n".join(lines))
        return EXIT_OK if ok else 4
    return EXIT_OK


def _admin_user(args: argparse.Namespace, server: ClinicServer, out: Output) -> None:
    """admin user add|list|role|deactivate|reactivate|reset-password (core/records/staff.py
    as the server's operator)."""
    action = args.action
    if action == "add":
        # The command has no --password-stdin: standard input is its only source.
        password = read_stdin_line("admin user add", "password")
        user = server.add_user(
            args.clinic, args.user, args.full_name or args.user, args.role, password
        )
        forced = " They must change this password at their first sign-in." * bool(
            user.must_change_password
        )
        out.emit({"id": user.id, "username": user.username, "role": user.role,
                  "must_change_password": user.must_change_password},
                 f"Added {user.username} ({user.role}).{forced}")  # fmt: skip
        return
    if action == "list":
        members = server.staff(args.clinic, lambda staff: staff.members())
        out.emit(
            [m.to_dict() for m in members],
            # As the workstation's ``user list`` says them (every role: "admin+clinician").
            "\n".join(member_line(m, None, 0.0) for m in members),
        )
        return
    if action == "reset-password":
        password = read_stdin_line("admin user reset-password", "new password")
        server.staff(args.clinic, lambda staff: staff.reset_password(args.user, password))
        out.emit(
            {"username": args.user, "must_change_password": True},
            f"Password reset for {args.user}; they must change it at their next sign-in.",
        )
        return
    work: dict[str, Callable[[Staff], StaffMember]] = {
        "role": lambda staff: staff.set_role(args.user, args.role),
        "deactivate": lambda staff: staff.deactivate(args.user),
        "reactivate": lambda staff: staff.reactivate(args.user),
    }
    member = server.staff(args.clinic, work[action])
    state = "active" if member.active else "deactivated"
    out.emit(member.to_dict(), f"{member.username}: {member.role}, {state}.")


COMMANDS: dict[str, Callable[[argparse.Namespace, dict[str, Any], Output], int]] = {
    "run": cmd_run,
    "admin": cmd_admin,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``careline-server``."""
    args = build_parser().parse_args(argv)
    disable_core_dumps()
    withhold_exception_messages()  # admin commands too: their stderr may reach journald
    out = Output(args.json)
    try:
        settings = load_server_settings(cli={"data_dir": args.data_dir})
        start_up(settings, serving=args.command == "run")
        return COMMANDS[args.command](args, settings, out)
    except ConfigError as exc:
        sys.stderr.write(f"careline-server: {plain_words(exc)}\n")
        return EXIT_USAGE
    except CarelineError as exc:
        # E.g. the key provider (unreachable KMS, a wrapped key for another tenant) or a
        # database that does not open (wrong key, damaged file).
        sys.stderr.write(f"careline-server: error: {plain_words(exc)}\n")
        return EXIT_ERROR
    except PermissionError as exc:
        sys.stderr.write(f"careline-server: error: {_permission_words(exc, args)}\n")
        return EXIT_ERROR
    except ValueError as exc:
        sys.stderr.write(f"careline-server: error: {exc}\n")
        return EXIT_ERROR


def _permission_words(exc: PermissionError, args: argparse.Namespace) -> str:
    """A file the server cannot read or write, who it runs as, and the usual fix (a restore
    or an admin command run as root leaves root's files in the service's data folder)."""
    import getpass

    where = exc.filename or "a file in the data folder"
    folder = args.data_dir or os.environ.get("CARELINE_DATA_DIR") or default_server_dir()
    return (
        f"permission denied on {where} (running as user {getpass.getuser()}). The data "
        "folder's files must belong to the user the server runs as: for the package, "
        f"'chown -R careline:careline {folder}' (and run admin commands as that user: "
        "sudo -u careline ...)"
    )


if __name__ == "__main__":
    sys.exit(main())
