"""A revoked workstation and the clinic's attachments (issue #16): it can no longer fetch a
file from the server (nor get keys there), and files added after the others heard of the
revocation are wrapped under a new clinic attachment key it never receives; what it
already held stays readable to it, as README says."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest

from core.crypto.attachment_keys import ClinicAttachmentKey
from core.crypto.errors import DecryptionError
from core.records.workstation import Workstation
from core.store.blobs import get_attachment
from core.store.blobs.errors import BlobIntegrityError
from core.sync import blob_client
from core.sync.attachments import AttachmentProblem, Attachments, held_keys
from core.sync.enroll import ServerCredential, tls_trust
from core.sync.http_transport import DeviceRejectedError, HttpTransport
from core.sync.key_grants import exchange_keys
from core.sync.lan.identity import merge_revoked
from core.sync.session import sync
from tests.integration.server_fixtures import add_clinic, join_clinic, live_server


def sync_hearing_revocations(ws: Workstation, credential: ServerCredential) -> None:
    """A sync as the app and the CLI run it: revocations reach the LAN refusal list."""
    transport = HttpTransport(
        credential.server_url, credential.token, verify=tls_trust(credential.server_ca_pem)
    )
    try:
        sync(ws.database, transport, "admin",
             on_revoked=lambda serials: merge_revoked(ws.database, serials, "admin"))  # fmt: skip
    finally:
        transport.close()


def test_a_revoked_workstation_fetches_nothing_and_gets_no_new_key(tmp_path: Path) -> None:
    with live_server(tmp_path / "server") as live:
        clinic = add_clinic(live.server, "Riverside")
        desks = {
            name: join_clinic(live.server, live.url, live.ca_pem, clinic, tmp_path / name, name)
            for name in ("a", "b", "c")
        }
        (a, a_cred), (b, b_cred), (c, c_cred) = desks["a"], desks["b"], desks["c"]
        patient = a.records.add_patient("Okafor", "Ada", "1980-02-03").id
        letter = tmp_path / "letter.txt"
        letter.write_bytes(b"before the revocation " * 1000)
        on_a = Attachments(a.records, a.data_dir, credential=a_cred)
        before = on_a.add(patient, letter, title="Before")
        assert on_a.push_pending() == 1
        for ws, cred in ((a, a_cred), (b, b_cred), (c, c_cred)):
            sync_hearing_revocations(ws, cred)
        on_c = Attachments(c.records, c.data_dir, credential=c_cred)
        on_c.open_to(before.id, tmp_path / "c-before.txt")  # fetched, key granted: readable
        old_keys = held_keys(c.records)

        live.server.revoke_device(c_cred.device_id)

        # C's cached copy is dropped: the server no longer hands it out, nor keys.
        assert before.blob_id is not None
        on_c.cache.delete(before.blob_id)
        with pytest.raises(AttachmentProblem, match="refused this device") as refused:
            on_c.fetch(before.id)
        assert "Before" in str(refused.value)
        with pytest.raises(DeviceRejectedError, match="revoked"):
            blob_client.fetch(c_cred, before.blob_id, tmp_path / "c.blob", "0" * 64)
        with pytest.raises(DeviceRejectedError, match="revoked"):
            exchange_keys(c.records, c_cred)

        # A hears of the revocation at its next sync; its next file is under a new key,
        # sealed for B (still active) and never for C.
        sync_hearing_revocations(a, a_cred)
        after_file = tmp_path / "after.txt"
        after_file.write_bytes(b"after the revocation " * 1000)
        after = on_a.add(patient, after_file, title="After")
        assert on_a.push_pending() == 1
        sync_hearing_revocations(a, a_cred)
        new_key = set(held_keys(a.records)) - set(old_keys)
        assert (
            len(new_key) == 1
            and a.database.query(
                "SELECT count(*) FROM audit_log WHERE action = 'attachment_key.rotate'"
            )[0][0]
            == 1
        )
        sync_hearing_revocations(b, b_cred)
        on_b = Attachments(b.records, b.data_dir, credential=b_cred)
        on_b.open_to(after.id, tmp_path / "b-after.txt")
        assert (tmp_path / "b-after.txt").read_bytes() == after_file.read_bytes()
        assert new_key <= set(held_keys(b.records))

        # Even holding the new file's ciphertext (copied from B's cache, say from a stolen
        # backup), C cannot open it: it never got the key. What it already had, it reads.
        assert after.blob_id is not None
        target = on_c.cache.path_for(after.blob_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(on_b.cache.path_for(after.blob_id), target)
        for key_id, secret in old_keys.items():  # every key C ever held
            key = ClinicAttachmentKey(key_id, secret)
            with pytest.raises((DecryptionError, BlobIntegrityError)):
                get_attachment(on_c.cache, after.blob_id, io.BytesIO(), kek=key.kek,
                               aad=key.aad(), id_key=key.id_key)  # fmt: skip
        assert set(held_keys(c.records)) == set(old_keys)
        assert (tmp_path / "c-before.txt").read_bytes() == letter.read_bytes()
