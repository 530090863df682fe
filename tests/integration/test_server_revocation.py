"""Revoking a device revokes every certificate the clinic CA ever issued it.

Regression test of a security review finding: a device enrolled as Careline 0.1.0 enrolled
(a certificate request naming no replica) and then re-certified (``POST /v1/certify``, what
``ensure_bound`` does at its first sync) held two certificates, and the registry kept only
the second, so ``admin device revoke`` revoked only that one. With the first, the revoked
device passed mutual TLS with LAN peers, pulled records added after the revocation and was
sealed every attachment key, new ones included.

Real server over TLS (embedded SQLCipher registry and PostgreSQL), real LAN peer servers
over mutual TLS on 127.0.0.1, real ``careline-server`` processes for the admin commands.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.crypto import certs
from core.crypto.kdf import FAST_PARAMS
from core.records import op_trust
from core.records.workstation import Workstation
from core.sync.attachments import current_key, held_keys
from core.sync.certify import ensure_bound
from core.sync.enroll import ServerCredential, adopt_credential, enroll, tls_trust
from core.sync.http_transport import DeviceRejectedError, HttpTransport
from core.sync.key_grants import keys_from_peer
from core.sync.lan import identity as lan_id
from core.sync.lan.identity import LanIdentity
from core.sync.lan.server import PeerServer
from core.sync.lan.transport import LanTransport, PeerRejectedError, RefusedByPeerError
from core.sync.session import SyncReport, sync
from core.sync.transport import TransportError
from tests.conftest import PASSWORD
from tests.integration.server_fixtures import (
    Live,
    add_clinic,
    join_clinic,
    live_server,
    make_server,
)
from tests.integration.server_process import REPO, ServerProcess, child_env
from tests.integration.test_cli import careline
from tests.services import (
    create_postgres_database,
    drop_postgres_database,
    free_port,
    free_port_pair,
)

pytestmark = [
    pytest.mark.strict_authors,
    pytest.mark.strict_authz,
    pytest.mark.database_url_in_env,
]


def _sync(ws: Workstation, credential: ServerCredential) -> SyncReport:
    """A sync with the server that keeps the revoked serials it is told, as the app's and
    ``careline sync`` do."""
    transport = HttpTransport(
        credential.server_url, credential.token, verify=tls_trust(credential.server_ca_pem)
    )
    try:
        return sync(
            ws.database,
            transport,
            "admin",
            on_revoked=lambda serials: lan_id.merge_revoked(ws.database, serials, "admin"),
        )
    finally:
        transport.close()


def _enrolled_as_0_1_0(
    live: Live, clinic: str, folder: Path
) -> tuple[Workstation, ServerCredential]:
    """A workstation enrolled as Careline 0.1.0 enrolled: a certificate bound to nothing
    (still accepted for 0.1.0 workstations), synced and signed in."""
    ws = Workstation(folder, FAST_PARAMS)
    ws.prepare_join("admin", PASSWORD)
    code, _ = live.server.registry.issue_enroll_code(clinic, 10)
    credential = enroll(live.url, code, live.ca_pem, folder.name)
    assert certs.binding_of(certs.load_certificate(credential.certificate)) is None
    adopt_credential(ws.database, credential, "admin")
    _sync(ws, credential)
    ws.lock()
    ws.sign_in("admin", PASSWORD)
    return ws, credential


def _lan(credential: ServerCredential) -> LanIdentity:
    """What a workstation holding ``credential`` presents to LAN peers."""
    return LanIdentity(
        credential.device_id,
        credential.certificate,
        credential.private_key_pem,
        credential.ca_certificate,
    )


def _logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    """The peer server logs from its own thread: give it a moment."""
    deadline = time.monotonic() + 3
    while text not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.02)
    return text in caplog.text


def test_the_server_refuses_to_recertify_a_bound_device(live: Live, tmp_path: Path) -> None:
    # Why only a certificate bound to nothing is ever replaced (and revoked at once).
    clinic = add_clinic(live.server, "Bound Clinic")
    desk, cred = join_clinic(live.server, live.url, live.ca_pem, clinic, tmp_path / "d", "d")
    key = certs.load_private_key(cred.private_key_pem.encode("ascii"))
    csr = certs.make_csr(key, cred.device_id, op_trust.binding_for(desk.database))
    response = httpx.post(
        f"{live.url}/v1/certify",
        json={"csr": csr},
        headers={"Authorization": f"Bearer {cred.token}"},
        verify=tls_trust(cred.server_ca_pem),
    )
    assert response.status_code == 400
    assert [c.current for c in live.server.registry.issued_certificates(cred.device_id)] == [True]
    desk.lock()


def test_a_revoked_device_is_refused_on_the_lan_with_its_first_certificate_too(
    live: Live, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clinic = add_clinic(live.server, "Revoking Clinic")
    b, cred_b = join_clinic(live.server, live.url, live.ca_pem, clinic, tmp_path / "b", "b")
    m, first = _enrolled_as_0_1_0(live, clinic, tmp_path / "m")
    bound = ensure_bound(m.database, first, "admin")  # what `careline sync` does first
    s0, s1 = certs.serial_of(first.certificate), certs.serial_of(bound.certificate)
    # The first certificate is revoked as soon as it is replaced (its key was replaced too).
    assert live.server.registry.revoked_serials(clinic) == [s0]

    live.server.revoke_device(first.device_id)
    assert sorted(live.server.registry.revoked_serials(clinic)) == sorted([s0, s1])
    crl = live.server.crl(clinic)
    assert crl is not None
    assert {s0, s1} <= set(certs.read_crl(crl, first.ca_certificate).revoked)
    with pytest.raises(DeviceRejectedError, match="revoked"):
        _sync(m, bound)  # the server refuses the device's token

    b.records.add_patient("AfterRevocation", "Secret", "1971-01-01")
    _sync(b, cred_b)  # B hears of the revocation: both serials
    assert {s0, s1} <= lan_id.revoked_serials(b.database)
    new_key = current_key(b.records)  # made after B heard of it
    ident_b = lan_id.load_identity(b.database)
    assert ident_b is not None
    caplog.set_level(logging.WARNING, logger="core.sync.lan.server")
    with PeerServer(b.database, ident_b) as peer_b:
        address = f"127.0.0.1:{peer_b.port}"
        for credential in (first, bound):
            # Refused in the handshake, with the TLS alert: the clinic's revocation list
            # came with B's sync and names both.
            with (
                LanTransport(address, _lan(credential)) as t,
                pytest.raises(RefusedByPeerError) as refused,
            ):
                sync(m.database, t, "admin")
            assert refused.value.revoked
            with LanTransport(address, _lan(credential)) as t, pytest.raises(TransportError):
                keys_from_peer(m.records, t)
        # (Refusals are logged once per address every few seconds: the first is.)
        assert _logged(caplog, "TLS handshake failed (certificate revoked)")
    assert [p.family for p in m.records.list_patients(50)] == []
    assert new_key.key_id not in held_keys(m.records)
    m.lock()
    b.lock()


def test_a_recertified_device_keeps_syncing_with_lan_peers(live: Live, tmp_path: Path) -> None:
    """Its old certificate is revoked at re-certification: a LAN server it started before
    takes up the new one, and peers that heard of the revocation accept it again."""
    clinic = add_clinic(live.server, "Upgrading Clinic")
    b, cred_b = join_clinic(live.server, live.url, live.ca_pem, clinic, tmp_path / "b", "b")
    m, first = _enrolled_as_0_1_0(live, clinic, tmp_path / "m")
    before = lan_id.load_identity(m.database)
    assert before == _lan(first)  # a server enrollment's certificate is its LAN identity
    ident_b = lan_id.load_identity(b.database)
    assert ident_b is not None
    with PeerServer(m.database, before) as peer_m, PeerServer(b.database, ident_b) as peer_b:
        bound = ensure_bound(m.database, first, "admin")
        m.records.add_patient("Recertified", "Rae", "1980-02-02")
        _sync(m, bound)
        _sync(b, cred_b)  # B now refuses the first certificate
        revoked_b = lan_id.revoked_serials(b.database)
        assert certs.serial_of(first.certificate) in revoked_b

        at_m = f"127.0.0.1:{peer_m.port}"
        with LanTransport(at_m, ident_b, revoked_b) as t, pytest.raises(PeerRejectedError):
            t.hello()  # M's server still presents the certificate replaced
        assert peer_m.refresh_identity()  # what `careline serve` does every few seconds
        assert not peer_m.refresh_identity()
        with LanTransport(at_m, ident_b, revoked_b) as t:
            sync(b.database, t, "admin")
        assert "Recertified" in [p.family for p in b.records.list_patients(50)]

        at_b = f"127.0.0.1:{peer_b.port}"
        after = lan_id.load_identity(m.database)
        assert after == _lan(bound)
        b.records.add_patient("FromB", "Bo", "1981-03-03")
        with LanTransport(at_b, after, lan_id.revoked_serials(m.database)) as t:
            sync(m.database, t, "admin")
        assert "FromB" in [p.family for p in m.records.list_patients(50)]
        with LanTransport(at_b, _lan(first)) as t, pytest.raises(TransportError):
            t.hello()  # the certificate replaced is refused, though the device is not
    m.lock()
    b.lock()


@pytest.mark.mdns
def test_careline_serve_takes_up_the_certificate_careline_sync_got(
    tmp_path: Path, no_keyring: None
) -> None:
    """``careline serve`` started before the workstation's first sync after the upgrade
    serves with the bound certificate that sync got (the old one is revoked)."""
    with live_server(tmp_path / "server") as live:
        clinic = add_clinic(live.server, "Headless Clinic")
        b, cred_b = join_clinic(live.server, live.url, live.ca_pem, clinic, tmp_path / "b", "b")
        m, first = _enrolled_as_0_1_0(live, clinic, tmp_path / "m")
        m.lock()
        port = free_port_pair()
        env = {**os.environ, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
        serve = subprocess.Popen(
            [sys.executable, "-m", "app.entry", "--data-dir", str(tmp_path / "m"), "--json",
             "--password-stdin", "serve", "--host", "127.0.0.1", "--port", str(port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env, cwd=REPO,
        )  # fmt: skip
        try:
            assert serve.stdin is not None and serve.stdout is not None
            serve.stdin.write(PASSWORD + "\n")
            serve.stdin.flush()
            assert json.loads(serve.stdout.readline() or "null") is not None
            synced = careline(
                tmp_path / "m", "--json", "--password-stdin", "sync", "--once",
                stdin=PASSWORD + "\n",
            )  # fmt: skip
            assert synced.returncode == 0, synced.stderr
            _sync(b, cred_b)
            revoked = lan_id.revoked_serials(b.database)
            assert certs.serial_of(first.certificate) in revoked
            ident_b = lan_id.load_identity(b.database)
            assert ident_b is not None
            deadline = time.monotonic() + 20
            while True:  # refused while serve still presents the first certificate
                try:
                    with LanTransport(f"127.0.0.1:{port}", ident_b, revoked) as peer:
                        assert peer.hello()["device_id"] == first.device_id
                    break
                except PeerRejectedError:
                    assert time.monotonic() < deadline, "serve kept the revoked certificate"
                    time.sleep(0.5)
        finally:
            serve.send_signal(signal.SIGTERM)
            _, err = serve.communicate(timeout=20)
        assert serve.returncode == 0, err
        assert "LAN peer server now presents certificate serial" in err
        b.lock()


# ----- registries written before the registry kept earlier certificates -------------------


# The last commit before this fix: its registry (embedded 3, PostgreSQL schema 6) overwrote
# the certificate a re-certification replaced. No release holds that code (0.1.0 could not
# re-certify), so the test runs that commit's own server, extracted from this repository.
PRE_FIX_COMMIT = "2bdbab1e3d16bb20d05c8f209448b0676b40caf0"


@pytest.fixture(scope="module")
def pre_fix_server(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment in which ``python -P -m core.cli.server`` is :data:`PRE_FIX_COMMIT`'s
    ``careline-server``: its ``core`` package first on ``PYTHONPATH`` (``-P``: not this
    checkout's from the working directory); the libraries are this environment's."""
    folder = tmp_path_factory.mktemp("pre-fix")
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", PRE_FIX_COMMIT, "core"],
        capture_output=True, check=False,
    )  # fmt: skip
    if archive.returncode != 0:
        pytest.skip(f"commit {PRE_FIX_COMMIT} is not in this clone: {archive.stderr!r}")
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    inherited = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(folder), inherited) if p)}


PRE_FIX_PROGRAM = (sys.executable, "-P", "-m", "core.cli.server")


def _admin(data: Path, env: Mapping[str, str], *args: str) -> tuple[Any, str]:
    """This release's ``careline-server --json admin ARGS``: its JSON and its stderr."""
    result = subprocess.run(
        [sys.executable, "-m", "core.cli.server", "--data-dir", str(data), "--json", "admin",
         *args],
        capture_output=True, text=True, cwd=REPO, env={**child_env(), **env}, timeout=120,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), result.stderr


@pytest.fixture(params=["embedded", "postgres"])
def backend(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """Server settings for the embedded registry ({}), or for PostgreSQL."""
    if request.param == "embedded":
        yield {}
        return
    url = create_postgres_database()
    try:
        yield {"DATABASE_URL": url, "DATABASE_SSL_MODE": "disable"}
    finally:
        drop_postgres_database(url)


def test_a_device_recertified_before_the_upgrade_is_named_and_its_serial_can_be_added(
    backend: dict[str, str], pre_fix_server: dict[str, str], tmp_path: Path, no_keyring: None
) -> None:
    data = tmp_path / "server"
    old = ServerProcess(data, free_port(), PRE_FIX_PROGRAM, {**backend, **pre_fix_server})
    made = old.run("--json", "admin", "clinic", "create", "Early Clinic")
    assert made.returncode == 0, made.stderr
    clinic = json.loads(made.stdout)["id"]
    assert old.run("admin", "user", "add", clinic, "admin", "--role", "admin").returncode == 0
    issued = old.run("--json", "admin", "enroll-code", clinic)
    old.start()
    try:
        m = Workstation(tmp_path / "m", FAST_PARAMS)
        m.prepare_join("admin", PASSWORD)
        first = enroll(old.url, json.loads(issued.stdout)["code"], old.ca_pem, "m")
        adopt_credential(m.database, first, "admin")
        _sync(m, first)
        m.lock()
        m.sign_in("admin", PASSWORD)
        old.stop()
        if not backend:
            shutil.copytree(data, tmp_path / "backup")  # a backup of the server, taken then
        old.start()
        bound = ensure_bound(m.database, first, "admin")  # the pre-fix server re-certifies
    finally:
        old.stop()
    m.lock()
    s0, s1 = certs.serial_of(first.certificate), certs.serial_of(bound.certificate)

    # This release migrates the registry, lists what it knows and does not, revokes what
    # it can and says plainly what it cannot.
    [listed], _ = _admin(data, backend, "device", "list")
    assert [(c["serial"], c["current"]) for c in listed["certificates"]] == [
        (None, False), (str(s1), True)
    ]  # fmt: skip
    revoked, warning = _admin(data, backend, "device", "revoke", first.device_id)
    assert revoked["revoked_serials"] == [str(s1)]
    assert revoked["serials_not_known"] == 1
    assert "its serial is not known and that certificate is NOT revoked" in warning
    assert f"admin device revoke {first.device_id} --earlier-serial SERIAL" in warning

    if not backend:
        # README's remedy: the serial is the device's current one in a backup from then.
        [then], _ = _admin(tmp_path / "backup", backend, "device", "list")
        assert [(c["serial"], c["current"]) for c in then["certificates"]] == [(str(s0), True)]
    revoked, warning = _admin(
        data, backend, "device", "revoke", first.device_id, "--earlier-serial", str(s0)
    )
    assert sorted(revoked["revoked_serials"]) == sorted([str(s0), str(s1)])
    assert revoked["serials_not_known"] == 0 and warning == ""
    refused = subprocess.run(
        [sys.executable, "-m", "core.cli.server", "--data-dir", str(data), "admin", "device",
         "revoke", first.device_id, "--earlier-serial", str(s1)],
        capture_output=True, text=True, cwd=REPO, env={**child_env(), **backend}, timeout=120,
        check=False,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "current certificate, not an earlier one" in refused.stderr

    server = make_server(data, backend)
    try:
        assert set(server.registry.revoked_serials(clinic)) == {s0, s1}
        crl = server.crl(clinic)
        assert crl is not None
        assert set(certs.read_crl(crl, first.ca_certificate).revoked) == {s0, s1}
    finally:
        server.close()
