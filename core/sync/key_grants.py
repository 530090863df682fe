"""The clinic attachment key, carried between workstations through the server sealed.

Each workstation, when it syncs with the server (:func:`exchange_keys`):

* opens the grants sealed for its own device certificate key and keeps the keys in them
  (:func:`core.sync.attachments.keep_key`), except a secret the key's id refuses (any
  enrolled device may seal a grant for another): that grant is given back to the server,
  so the devices holding the real key seal it again;
* seals every attachment key it may pass on for each other active device of the clinic that
  lacks it, after checking that device's certificate was issued by the clinic CA (the one
  pinned at enrollment) and is in date: ``PUT /v1/attachment-keys/grants/{device}/{key}``.

So a workstation enrolled today can open files added by another last week as soon as
that one has synced once since. The server stores grants it cannot open (it never holds a
device's private key). What this does not protect against, stated plainly: the server
holds the clinic CA, so a server under an attacker's control could enroll a device of its
own and be granted the key at the next sync, just as such a device would receive every
record; the protection is against the stored data (disks, S3, backups), not against the
CA itself. Revoked devices are no longer listed, so they get no new keys: they keep what
they had, and a workstation that learns of a revocation wraps its next files under a new
key (:func:`core.sync.attachments.current_key`), which only the active devices receive.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import httpx
from cryptography.hazmat.primitives.asymmetric import ec

from core.crypto import certs
from core.crypto.attachment_keys import ClinicAttachmentKey
from core.crypto.errors import DecryptionError
from core.crypto.key_grant import open_sealed, seal
from core.records.clinic import ClinicRecords
from core.sync.attachments import KEPT, REFUSED, grantable_keys, keep_key, needs_key
from core.sync.attachments_client import TIMEOUT, AttachmentError, _client, _refusal
from core.sync.enroll import ServerCredential
from core.sync.lan.identity import revoked_serials
from core.sync.lan.server import device_id_of
from core.sync.lan.transport import LanTransport


@dataclass(frozen=True)
class Exchanged:
    """What one exchange did: keys received for this device, grants sealed for others,
    and devices skipped (with why)."""

    received: list[str]
    granted: int
    skipped: list[str]


def grant_aad(device_id: str, key_id: str) -> bytes:
    """What a grant of key ``key_id`` for device ``device_id`` is bound to."""
    return f"careline/attachment-key-grant|{device_id}|{key_id}".encode()


def exchange_keys(
    records: ClinicRecords, credential: ServerCredential, timeout: httpx.Timeout = TIMEOUT
) -> Exchanged:
    """Take the keys sealed for this device; seal the keys held here for the others.
    ``timeout``: how long a silent server is waited for (the prefetch waits less)."""
    received: list[str] = []
    skipped: list[str] = []
    granted = 0
    try:
        with _client(credential, timeout) as client:
            mine = client.get("/v1/attachment-keys/grants")
            if mine.status_code != 200:
                raise _refusal(mine, "attachment key grants")
            private = certs.load_private_key(credential.private_key_pem.encode("ascii"))
            for key_id, sealed in dict(mine.json()).items():
                if not needs_key(records, key_id):
                    continue
                try:
                    secret = open_sealed(
                        private, base64.b64decode(sealed), grant_aad(credential.device_id, key_id)
                    )
                    outcome = keep_key(records, ClinicAttachmentKey(key_id, secret))
                except (DecryptionError, ValueError):
                    skipped.append(f"grant of key {key_id} for this device did not open")
                    continue
                if outcome == KEPT:
                    received.append(key_id)
                elif outcome == REFUSED:
                    skipped.append(_refuse_grant(client, key_id))
            held = grantable_keys(records)
            if not held:
                return Exchanged(received, granted, skipped)
            devices = client.get("/v1/attachment-keys/devices")
            if devices.status_code != 200:
                raise _refusal(devices, "the clinic's devices")
            revoked = revoked_serials(records.db)
            for entry in devices.json():
                device_id, certificate = str(entry["device_id"]), str(entry["certificate"])
                missing = sorted(set(held) - set(entry["granted"]))
                if device_id == credential.device_id or not missing:
                    continue
                try:
                    certs.verify_device(certificate, credential.ca_certificate, revoked)
                    public = certs.load_certificate(certificate).public_key()
                except certs.CertificateError as exc:
                    skipped.append(f"device {device_id}: {exc}")
                    continue
                if not isinstance(public, ec.EllipticCurvePublicKey):
                    skipped.append(f"device {device_id}: not an elliptic-curve key")
                    continue
                for key_id in missing:
                    sealed = seal(public, held[key_id], grant_aad(device_id, key_id))
                    put = client.put(
                        f"/v1/attachment-keys/grants/{device_id}/{key_id}",
                        json={"sealed": base64.b64encode(sealed).decode("ascii")},
                    )
                    if put.status_code != 204:
                        raise _refusal(put, f"attachment key grant for device {device_id}")
                    granted += 1
    except httpx.HTTPError as exc:
        raise AttachmentError(
            f"attachment key exchange with {credential.server_url}: {exc}"
        ) from exc
    return Exchanged(received, granted, skipped)


def _refuse_grant(client: httpx.Client, key_id: str) -> str:
    """Give back a grant whose secret key ``key_id``'s id refuses, so that the devices
    holding the real key seal it for this one again (they skip a device the server lists
    as granted); what to report."""
    what = (
        f"grant of key {key_id} for this device holds a secret that is not that key's "
        "(sealed wrongly, or by a device that should not have): refused"
    )
    answer = client.delete(f"/v1/attachment-keys/grants/{key_id}")
    if answer.status_code == 204:
        return f"{what}, and asked for again"
    # A server of an earlier release keeps the grant: the key comes from a LAN peer, or
    # through ``careline attachment key import``.
    return f"{what}; the server ({answer.status_code}) cannot drop it, so it stays missing here"


def keys_from_peer(records: ClinicRecords, peer: LanTransport) -> list[str]:
    """Take the attachment keys a LAN peer sealed for this device (over mutual TLS);
    returns the ids of those kept (one its id refuses is not: ``keep_key``)."""
    private = certs.load_private_key(peer.identity.private_key_pem.encode("ascii"))
    me = device_id_of(peer.identity.certificate)
    kept: list[str] = []
    for key_id, sealed in peer.attachment_keys().items():
        if not needs_key(records, key_id):
            continue
        try:
            secret = open_sealed(private, base64.b64decode(sealed), grant_aad(me, key_id))
            outcome = keep_key(records, ClinicAttachmentKey(key_id, secret))
        except (DecryptionError, ValueError):
            continue
        if outcome == KEPT:
            kept.append(key_id)
    return kept
