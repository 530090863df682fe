"""core.errors: one root for Careline's expected errors and one translator to plain words,
used by the command line and (through app.messages) by every screen."""

from __future__ import annotations

import errno
import importlib
import inspect
import logging
import pkgutil

import pytest

import core
from core.cli.context import EXIT_AUTH, CliError
from core.config.settings import ConfigError
from core.crypto.certs import CertificateError
from core.crypto.errors import DecryptionError
from core.errors import UNEXPECTED, CarelineError, describe_error, plain_words
from core.keys.errors import KeyringUnavailableError, SlotFileError, WrongSecretError
from core.keys.providers.errors import ProviderUnavailableError
from core.records.errors import AuthenticationError, NotFoundError, ValidationError
from core.records.workstation import NotAllowedError, WorkstationLockedError
from core.server.registry import RegistryError
from core.server.service import ServerError
from core.store.blobs.errors import BlobNotFoundError
from core.store.errors import DamagedDatabaseError, DatabaseMissingError, WrongKeyError
from core.sync.enroll import EnrollmentError
from core.sync.http_transport import DeviceRejectedError
from core.sync.join import FirstSyncError, NoAccountError
from core.sync.lan.identity import LanIdentityError
from core.sync.lan.pairing import PairingError
from core.sync.protocol import ProtocolError
from core.sync.session import SyncError
from core.sync.transport import TransportError

FAMILIES: list[tuple[CarelineError, str]] = [
    # records: the message already names the field or the problem
    (ValidationError("birth_date", "is in the future"), "birth_date: is in the future"),
    (NotFoundError("no patient 'p-1'"), "no patient 'p-1'"),
    (AuthenticationError("wrong user name or password"), "wrong user name or password"),
    (NotAllowedError("only an administrator can re-key"), "only an administrator can re-key"),
    # store
    (
        DamagedDatabaseError("/d/clinic.db is damaged"),
        "the clinic database reported a problem: /d/clinic.db is damaged",
    ),
    (WrongKeyError("the key file belongs to another clinic"), "cannot unlock: the key file"),
    (DatabaseMissingError("no clinic database at /d"), "no clinic database at /d"),
    (WorkstationLockedError("nobody is signed in"), "nobody is signed in"),
    (BlobNotFoundError("ab" * 32, "not stored"), "the attachment store reported a problem: blob"),
    # keys
    (WrongSecretError("no slot opens"), "the clinic database could not be unlocked: no slot"),
    (KeyringUnavailableError("no secret service"), "the OS keyring cannot be used: no secret"),
    (SlotFileError("bad json"), "this workstation's key file cannot be read: bad json"),
    (ProviderUnavailableError("KMS timed out"), "the key service failed: KMS timed out"),
    # crypto and configuration
    (DecryptionError("authentication failed"), "authentication failed"),
    (CertificateError("expired"), "expired"),
    (ConfigError("CARELINE_AUTO_LOCK_MINUTES: not a number"), "configuration: CARELINE_AUTO"),
    # sync
    (SyncError("the other side refused"), "sync stopped: the other side refused"),
    (TransportError("cannot reach the server: refused"), "cannot reach the server: refused"),
    (DeviceRejectedError("revoked"), "the server no longer accepts this workstation (revoked)"),
    (EnrollmentError("the code has expired"), "the code has expired"),
    (PairingError("the peer refused pairing"), "the peer refused pairing"),
    (LanIdentityError("no clinic CA here"), "no clinic CA here"),
    (ProtocolError("bad-message", "unknown kind"), "unknown kind"),
    (NoAccountError("ghost"), "the clinic has no account ghost with this password"),
    (FirstSyncError("enrolled, but the first sync failed"), "enrolled, but the first sync"),
    # server and command line
    (ServerError("no clinic 'x'"), "no clinic 'x'"),
    (RegistryError("code already used"), "code already used"),
    (CliError("this workstation is not enrolled"), "this workstation is not enrolled"),
]


@pytest.mark.parametrize(("exc", "words"), FAMILIES, ids=lambda v: type(v).__name__)
def test_each_family_in_plain_words(exc: CarelineError, words: str) -> None:
    assert plain_words(exc).startswith(words)
    sentence = describe_error(exc)
    assert sentence[0].isupper() and sentence.endswith(".")
    assert sentence[1:].startswith(words[1:])


def test_braces_in_a_message_are_not_a_template() -> None:
    assert plain_words(SyncError("refused {op} {0}")) == "sync stopped: refused {op} {0}"


def test_an_unexpected_error_is_never_shown_raw_but_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    try:
        {"patient": "Mensah"}["mrn"]
    except KeyError as exc:
        bug = exc
    with caplog.at_level(logging.ERROR, logger="core.errors"):
        shown = describe_error(bug)
    assert "mrn" not in shown and "KeyError" not in shown and "Mensah" not in shown
    assert shown.startswith("Something went wrong that Careline did not expect")
    assert shown.endswith("please try again.")
    [record] = caplog.records
    assert record.exc_info is not None and record.exc_info[1] is bug


def test_a_disk_refusing_a_write_is_named_not_called_unexpected(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A full disk is something a person can act on: said in the system's words (the
    file's name, which may name a patient's document, stays in the log), still logged."""
    full = OSError(errno.ENOSPC, "No space left on device", "/data/letters/Mensah.pdf")
    with caplog.at_level(logging.ERROR, logger="core.errors"):
        shown = describe_error(full)
    assert shown == (
        "This computer's disk refused to write (No space left on device). Your last change "
        "may not have been saved; please try again."
    )
    assert "Mensah" not in shown
    [record] = caplog.records
    assert record.exc_info is not None and record.exc_info[1] is full
    # A failing disk (EIO) comes from reads as well as writes: not called a refusal to write.
    failing = describe_error(OSError(errno.EIO, "Input/output error"))
    assert failing.startswith(
        "This computer's disk could not be read or written (Input/output error): it may be"
    )
    # Other OS errors are still bugs to the person: a missing file here is unexpected.
    assert describe_error(FileNotFoundError(2, "No such file")).startswith("Something went")


def test_errors_keep_their_old_families() -> None:
    # Code that catches the old bases keeps working.
    assert isinstance(ConfigError("x"), ValueError)
    assert isinstance(ProtocolError("c", "x"), ValueError)
    assert isinstance(BlobNotFoundError("", "x"), KeyError)
    assert isinstance(DeviceRejectedError("x"), TransportError)
    assert isinstance(NoAccountError("x"), AuthenticationError)
    assert CliError("x", EXIT_AUTH).code == EXIT_AUTH


# Raised and caught inside core (turned into a refusal, a SyncError or a quarantine), never
# shown to a person as they are.
INTERNAL = {
    "core.records.replication.ApplyError",
    "core.records.replication.SnapshotRequiredError",
    "core.records.materialize.MalformedRecordError",
    "core.records.crdt.InvalidUpdateError",
    "core.records.changes.RecordTypeMismatchError",
    "core.store.oplog.GapError",
    "core.server.postgres.columns.SealedValueError",
    # Control flow inside the FHIR reader: caught there and reported as a skipped resource.
    "core.records.fhir.observation.NotAVitalSign",
    # A balancer connection's bad PROXY header: caught where it is read, logged, dropped.
    "core.server.proxy_protocol.ProxyHeaderError",
}


def test_every_public_error_class_in_core_has_the_root() -> None:
    missing = []
    for info in pkgutil.walk_packages(core.__path__, "core."):
        module = importlib.import_module(info.name)
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if (
                cls.__module__ == info.name
                and issubclass(cls, Exception)
                and not issubclass(cls, Warning)
                and not name.startswith("_")
                and f"{info.name}.{name}" not in INTERNAL
                and not issubclass(cls, CarelineError)
            ):
                missing.append(f"{info.name}.{name}")
    assert missing == []


def test_a_bugs_traceback_is_logged_without_the_value_its_message_quotes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import io

    from core.config.logs import JsonFormatter, withhold_exception_messages

    withhold_exception_messages()  # as every entry point does (app, CLI, server)
    typed = "Jane Roe 1970-03-12"
    try:
        try:
            int(typed)
        except ValueError as exc:
            raise KeyError(typed) from exc
    except KeyError as bug:
        with caplog.at_level(logging.ERROR):
            said = plain_words(bug)
        record = caplog.records[-1]
    assert said == UNEXPECTED
    # Where and what: the frames and both exceptions' types, for a bug report.
    assert "int(typed)" in caplog.text and "ValueError" in caplog.text
    assert "KeyError" in caplog.text
    assert typed not in caplog.text
    # The server's JSON lines, and the last-resort handler the app and CLI log to stderr.
    assert typed not in JsonFormatter().format(record)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.handle(record)
    assert "KeyError" in stream.getvalue() and typed not in stream.getvalue()


def test_a_peers_refusal_reaches_the_person_but_only_its_code_the_log() -> None:
    from core.errors import for_log
    from core.sync.session import SyncSession
    from core.sync.transport import LocalTransport
    from tests.unit.sync.replicas import new_replica

    class OlderPeer:
        """A peer of an older release, whose refusal quotes what it refused."""

        def handle(self, request: bytes) -> bytes:
            return (
                b'{"protocol": "careline-sync", "v": 2, "type": "error", "code": "refused", '
                b'"message": "invalid literal for int() with base 10: \'Jane Roe\'"}'
            )

    desk = new_replica("ann")
    desk.add_patient("Local", "Change", "1980-01-01")
    with pytest.raises(SyncError) as caught:
        SyncSession(desk.db, LocalTransport(OlderPeer()), "ann").run()  # type: ignore[arg-type]
    assert "Jane Roe" in describe_error(caught.value)  # the person at the screen
    assert "Jane Roe" not in for_log(caught.value)  # app/sync/controller.py logs this
    assert "refused" in for_log(caught.value)
