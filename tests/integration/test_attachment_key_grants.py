"""Attachment key grants another enrolled device could forge (a security review's finding).

Any device of a clinic may seal a grant for any other: the server relays it and cannot
check it. Before key ids committed to their secrets, a front-desk workstation sealed a
random secret under the clinic key's real id for a new workstation; that one kept it,
could not open the clinic's files, and wrapped its own new files under it, so nobody else
could open them. Real server over TLS, real workstations.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from core.crypto import certs
from core.crypto.key_grant import seal
from core.records.workstation import Workstation
from core.sync.attachments import Attachments, current_key, held_keys
from core.sync.enroll import ServerCredential, tls_trust
from core.sync.key_grants import exchange_keys, grant_aad
from tests.integration.server_fixtures import (
    Live,
    add_clinic,
    join_clinic,
    live_server,
    sync_at,
)


def _seal_for(attacker: ServerCredential, target: str, key_id: str, secret: bytes) -> int:
    """``attacker`` (an enrolled device) seals ``secret`` as key ``key_id`` for ``target``;
    the server's answer."""
    with httpx.Client(
        base_url=attacker.server_url,
        verify=tls_trust(attacker.server_ca_pem),
        headers={"Authorization": f"Bearer {attacker.token}"},
    ) as client:
        devices = client.get("/v1/attachment-keys/devices").json()
        entry = next(d for d in devices if d["device_id"] == target)
        public = certs.load_certificate(entry["certificate"]).public_key()
        sealed = seal(public, secret, grant_aad(target, key_id))  # type: ignore[arg-type]
        answer = client.put(
            f"/v1/attachment-keys/grants/{target}/{key_id}",
            json={"sealed": base64.b64encode(sealed).decode()},
        )
        return answer.status_code


Desk = tuple[Workstation, ServerCredential]


def _clinic(live: Live, folder: Path) -> tuple[str, Desk, Desk, Callable[[], Desk]]:
    """A clinic with workstation A and another enrolled device M (the one that forges),
    and how to join a third, V, later."""
    clinic = add_clinic(live.server, "Riverside")

    def desk(name: str) -> Desk:
        return join_clinic(live.server, live.url, live.ca_pem, clinic, folder / name, name)

    return clinic, desk("a"), desk("m"), lambda: desk("v")


def _add_file(ws: Workstation, credential: ServerCredential, patient: str, folder: Path) -> str:
    path = folder / f"{ws.data_dir.name}-letter.txt"
    path.write_bytes(b"referral letter " * 500)
    on = Attachments(ws.records, ws.data_dir, credential=credential)
    item = on.add(patient, path, title=f"Letter from {ws.data_dir.name}")
    assert on.push_pending() == 1
    sync_at(ws, credential)
    return item.id


def test_a_forged_grant_is_refused_and_the_real_key_arrives(
    tmp_path: Path, no_keyring: None
) -> None:
    with live_server(tmp_path / "server") as live:
        clinic, (a, a_cred), (m, m_cred), v_desk = _clinic(live, tmp_path)
        patient = a.records.add_patient("Okafor", "Ada", "1980-02-03").id
        from_a = _add_file(a, a_cred, patient, tmp_path)
        [key_id] = held_keys(a.records)
        v, v_cred = v_desk()
        assert exchange_keys(a.records, a_cred).granted >= 1  # A seals the key for V ...
        # ... and M replaces V's grant with a secret of its own under the real key's id.
        assert _seal_for(m_cred, v_cred.device_id, key_id, secrets.token_bytes(32)) == 204

        sync_at(v, v_cred)
        first = exchange_keys(v.records, v_cred)
        assert key_id not in held_keys(v.records)
        assert first.received == []
        assert any("not that key's" in s and "asked for again" in s for s in first.skipped)
        # The server's audit names who sealed the grant and who gave it back.
        entries = [(e[2], e[3], e[5]) for e in live.server.audit_entries(clinic)]
        assert (f"device:{m_cred.device_id}", "attachment_key.grant", v_cred.device_id) in entries
        refused = (f"device:{v_cred.device_id}", "attachment_key.grant_refused", v_cred.device_id)
        assert refused in entries

        # A, holding the real key, sees V lacking it and seals it again.
        assert exchange_keys(a.records, a_cred).granted >= 1
        second = exchange_keys(v.records, v_cred)
        assert second.received == [key_id]
        assert held_keys(v.records)[key_id] == held_keys(a.records)[key_id]
        on_v = Attachments(v.records, v.data_dir, credential=v_cred)
        assert on_v.read(from_a) == b"referral letter " * 500

        # V's own files are under the clinic's real key, so A opens them.
        from_v = _add_file(v, v_cred, patient, tmp_path)
        sync_at(a, a_cred)
        on_a = Attachments(a.records, a.data_dir, credential=a_cred)
        assert on_a.read(from_v) == b"referral letter " * 500
        for ws in (a, m, v):
            ws.lock()


def test_a_secret_under_an_id_that_cannot_vouch_never_wraps_files(
    tmp_path: Path, no_keyring: None
) -> None:
    with live_server(tmp_path / "server") as live:
        _, (a, a_cred), (m, m_cred), v_desk = _clinic(live, tmp_path)
        patient = a.records.add_patient("Okafor", "Ada", "1980-02-03").id
        sync_at(a, a_cred)
        v, v_cred = v_desk()
        # M gives V a key under an id of the older, random kind, which V cannot check.
        older_id = "00000000000000ff"
        assert _seal_for(m_cred, v_cred.device_id, older_id, secrets.token_bytes(32)) == 204
        sync_at(v, v_cred)
        assert exchange_keys(v.records, v_cred).received == [older_id]
        # V keeps it (an older file might need it) but wraps its own files under its own
        # key, which it seals for the others: A opens V's file.
        assert current_key(v.records).key_id != older_id
        from_v = _add_file(v, v_cred, patient, tmp_path)
        exchange_keys(v.records, v_cred)
        exchange_keys(a.records, a_cred)
        sync_at(a, a_cred)
        on_a = Attachments(a.records, a.data_dir, credential=a_cred)
        assert on_a.read(from_v) == b"referral letter " * 500
        # ... and never passes the unchecked one on.
        assert older_id not in held_keys(a.records)
        for ws in (a, m, v):
            ws.lock()


@pytest.mark.parametrize("key_id", ["0123", "0123456789ABCDEF"])
def test_a_grant_is_given_back_only_by_its_own_device_and_id(
    tmp_path: Path, no_keyring: None, key_id: str
) -> None:
    with live_server(tmp_path / "server") as live:
        clinic = add_clinic(live.server, "Riverside")
        a, a_cred = join_clinic(live.server, live.url, live.ca_pem, clinic, tmp_path / "a", "a")
        with httpx.Client(
            base_url=live.url,
            verify=tls_trust(a_cred.server_ca_pem),
            headers={"Authorization": f"Bearer {a_cred.token}"},
        ) as client:
            assert client.delete(f"/v1/attachment-keys/grants/{key_id}").status_code in (400, 404)
            assert client.delete("/v1/attachment-keys/grants/0123456789abcdef").status_code == 404
        with httpx.Client(base_url=live.url, verify=tls_trust(a_cred.server_ca_pem)) as anonymous:
            answer = anonymous.delete("/v1/attachment-keys/grants/0123456789abcdef")
            assert answer.status_code == 401
        a.lock()
