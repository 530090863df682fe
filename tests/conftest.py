"""Fixtures shared by every test package."""

from __future__ import annotations

import compileall
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import keyring
import keyring.backends.fail
import keyring.backends.SecretService
import pytest

from core.crypto.kdf import FAST_PARAMS
from core.records import authorize, op_trust
from core.records.workstation import Workstation
from tests import faketime as libfaketime
from tests.cheap_kdf import with_cheap_kdf, without_cheap_kdf
from tests.postgres_tls import TlsPostgres, start_tls_postgres
from tests.secret_service import (
    secret_service_available,
    start_secret_service,
    stop_secret_service,
)
from tests.services import (
    Service,
    create_postgres_database,
    drop_postgres_database,
    start_moto,
    start_openbao,
)

PASSWORD = "correct horse battery"


REPO = Path(__file__).resolve().parents[1]


def pytest_sessionstart(session: pytest.Session) -> None:
    """Byte-compile the project's code once, before any test starts a process.

    The tests start hundreds of ``careline``, ``careline-server`` and desktop-app
    processes; where bytecode is not written (``PYTHONDONTWRITEBYTECODE``, as on the CI
    machine: a clean clone there had no ``__pycache__`` at all), each compiled the
    modules it imports from source again, about 0.1 s of CPU per command. Python reads
    existing bytecode whatever that setting says; compiling the whole tree takes under
    a second. xdist's workers leave it to the controller. Nothing here can fail a run:
    a read-only tree just keeps compiling at import, as before."""
    if hasattr(session.config, "workerinput"):
        return
    for package in ("core", "app", "tests"):
        compileall.compile_dir(REPO / package, quiet=2)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests marked ``slow`` (tens of seconds each) run first, in their order: xdist's
    workers then finish together on short tests instead of one core running a long test
    alone at the end of ``make test`` (each worker takes a slice of this order and steals
    the other's queued tests when it runs out)."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session", autouse=True)
def cheap_kdf() -> Iterator[None]:
    """Every process the tests start derives keys at FAST_PARAMS (see tests.cheap_kdf).
    Set here, in the process running the tests, not at import: xdist's workers start from
    the controller's environment and must keep the real ``DEFAULT_PARAMS`` themselves."""
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = with_cheap_kdf(before)
    yield
    if before is None:
        del os.environ["PYTHONPATH"]
    else:
        os.environ["PYTHONPATH"] = before


@pytest.fixture
def production_kdf(monkeypatch: pytest.MonkeyPatch) -> None:
    """Processes started by this test derive keys at the production parameters
    (``DEFAULT_PARAMS``), as a clinic's do: tests/cheap_kdf_site is taken off ``PYTHONPATH``."""
    rest = without_cheap_kdf(os.environ.get("PYTHONPATH"))
    if rest is None:
        monkeypatch.delenv("PYTHONPATH", raising=False)
    else:
        monkeypatch.setenv("PYTHONPATH", rest)


@pytest.fixture(autouse=True)
def any_author(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process sync tests write as made-up people ("ann", "bob") who have no staff
    account, so the author check of op verification is relaxed for them; everything else
    (signatures, certificates, revocation, Yjs clients) is verified as in production.
    Tests marked ``strict_authors``, and every test that runs real processes, check authors
    exactly as a clinic does."""
    if request.node.get_closest_marker("strict_authors") is None:
        monkeypatch.setattr(op_trust, "author_problem", _any_author)


def _any_author(op: object, trust: object) -> None:
    return None


# In-process tests written before authorization act as whoever they like (a test clinic's
# admin writes notes, made-up authors sync): permission checks (the write gate, read checks
# and remote-apply authorization, core/records/authorize.py) are off in this process,
# module-scoped fixtures included. Tests marked ``strict_authz`` turn them on, and every
# test that runs real processes (the CLI, the app's worker, the server) enforces exactly as
# a clinic does.
authorize.ENFORCING = False


@pytest.fixture(autouse=True)
def any_permission(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """``strict_authz`` tests enforce permissions in-process (see ``authorize.ENFORCING``
    above)."""
    if request.node.get_closest_marker("strict_authz") is not None:
        monkeypatch.setattr(authorize, "ENFORCING", True)


@pytest.fixture(autouse=True)
def _mdns_to_itself(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Every mDNS announcement on 127.0.0.1 reaches every process on this machine: a test
    that floods it with fake peers (marked ``mdns_flood``) filled the discovery of LAN
    tests running beside it on other workers, whose real peer then went unseen. A flood
    runs alone among tests that announce or browse (marked ``mdns``), which run together:
    a shared lock for those, an exclusive one for floods, on a file all of this run's
    workers see (their temporary folders' parent)."""
    flood = request.node.get_closest_marker("mdns_flood") is not None
    if not flood and request.node.get_closest_marker("mdns") is None:
        yield
        return
    path = tmp_path_factory.getbasetemp().parent / "careline-mdns.lock"
    with path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if flood else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture
def no_keyring() -> Iterator[None]:
    """The real 'no keyring here' backend, as on a headless Linux workstation."""
    previous = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.fail.Keyring())  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        keyring.set_keyring(previous)


@pytest.fixture
def workstation(tmp_path: Path, no_keyring: None) -> Iterator[Workstation]:
    """A new clinic, signed in as its admin, with cheap Argon2id parameters."""
    ws = Workstation(tmp_path / "data", kdf_params=FAST_PARAMS)
    ws.init("Riverside Clinic", "admin", "Ada Admin", PASSWORD)
    ws.sign_in("admin", PASSWORD)
    try:
        yield ws
    finally:
        ws.lock()


@pytest.fixture
def secret_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A real OS keyring: gnome-keyring's Secret Service on a private D-Bus.

    Yields the environment a subprocess needs to reach it. CI sets
    CARELINE_REQUIRE_SECRET_SERVICE=1 so a missing daemon fails instead of skipping.
    """
    reason = secret_service_available()
    if reason is not None:
        if os.environ.get("CARELINE_REQUIRE_SECRET_SERVICE") == "1":
            pytest.fail(f"Secret Service required but unavailable: {reason}")
        pytest.skip(reason)
    env = start_secret_service(tmp_path / "secret-service")
    previous = keyring.get_keyring()
    try:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        keyring.set_keyring(keyring.backends.SecretService.Keyring())  # type: ignore[no-untyped-call]
        yield env
    finally:
        keyring.set_keyring(previous)
        stop_secret_service(env)


@pytest.fixture(scope="session")
def faketime() -> Callable[[str], dict[str, str]]:
    """``faketime("+2h")``: environment variables that run a program with its clock that
    far off (libfaketime preloaded; see tests.faketime). CI sets CARELINE_REQUIRE_FAKETIME=1
    so a missing or ineffective libfaketime fails instead of skipping."""
    reason = libfaketime.faketime_problem()
    if reason is not None:
        if os.environ.get("CARELINE_REQUIRE_FAKETIME") == "1":
            pytest.fail(f"libfaketime required but unusable: {reason}")
        pytest.skip(reason)
    return libfaketime.shifted


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A real moto_server (S3 and AWS KMS APIs) for the whole session."""
    service = start_moto(tmp_path_factory.mktemp("moto"))
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def openbao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A real OpenBao dev server (Vault API) for the whole session; ``token`` is root."""
    service = start_openbao(tmp_path_factory.mktemp("openbao"))
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A throwaway database on the local PostgreSQL (127.0.0.1:5432), dropped afterwards."""
    url = create_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(url)


@pytest.fixture(scope="session")
def tls_postgres() -> Iterator[TlsPostgres]:
    """A private PostgreSQL accepting only TLS, its certificate from a test CA (see
    tests.postgres_tls); stopped when the session ends."""
    server = start_tls_postgres()
    try:
        yield server
    finally:
        server.stop()
