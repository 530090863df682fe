"""Signatures on ops: what is signed, the per-origin hash chain, and the raw ECDSA calls.

Every op an origin makes carries ``prev`` (the chain value of the op before it, from the
same origin) and a signature over its own chain value::

    digest = SHA-256(tag | clinic | origin | seq | hlc | author | record | type | deps | update)
    chain  = SHA-256(tag | prev | digest)
    sig    = ECDSA-P256-SHA256(device key, chain)

Every field is length-prefixed, so no two different ops share a digest. ``clinic`` is the
SHA-256 of the clinic CA certificate: an op signed for one clinic never verifies in another.

The chain is what makes verification cheap: a run of consecutive ops of one origin whose
``prev`` values link up is proven by the signature on its *last* op, because that chain
value commits to every op before it in the run. A receiver checks one signature per
origin per batch and a SHA-256 per op; where the links do not hold (a batch cut mid-run,
a relay that altered an op) it falls back to checking each op's own signature, so the
first bad op is found and named. Every op still carries its own signature, since any op
may be the last one a replica receives.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

GENESIS = bytes(32)  # ``prev`` of an origin's first op
SIG_BYTES = 64  # r || s, 32 bytes each (P-256)
_DIGEST_TAG = b"careline-op-v1"
_CHAIN_TAG = b"careline-op-chain-v1"
_ECDSA = ec.ECDSA(hashes.SHA256())


def clinic_tag(ca_certificate_pem: str) -> bytes:
    """The clinic an op belongs to, as signed: SHA-256 of its CA certificate (PEM text)."""
    return hashlib.sha256(ca_certificate_pem.strip().encode("ascii")).digest()


def _field(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def digest(
    clinic: bytes,
    origin: str,
    seq: int,
    hlc: str,
    author: str,
    record_id: str,
    record_type: str,
    deps: bytes,
    update: bytes,
) -> bytes:
    """SHA-256 over everything that gives an op its meaning (see the module docstring)."""
    parts: Iterable[bytes] = (
        clinic,
        origin.encode(),
        str(seq).encode(),
        hlc.encode(),
        author.encode(),
        record_id.encode(),
        record_type.encode(),
        deps,
        update,
    )
    return hashlib.sha256(_DIGEST_TAG + b"".join(_field(p) for p in parts)).digest()


def chain(prev: bytes, op_digest: bytes) -> bytes:
    """The chain value an op's signature covers: its digest linked to the op before it."""
    return hashlib.sha256(_CHAIN_TAG + _field(prev) + op_digest).digest()


def sign(key: ec.EllipticCurvePrivateKey, chain_value: bytes) -> bytes:
    """Raw 64-byte ECDSA P-256 signature (r || s) over ``chain_value``."""
    r, s = decode_dss_signature(key.sign(chain_value, _ECDSA))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def verify(key: ec.EllipticCurvePublicKey, chain_value: bytes, signature: bytes) -> bool:
    """Whether ``signature`` (raw r || s) is ``key``'s signature over ``chain_value``.

    The comparison inside is OpenSSL's; nothing secret is compared here.
    """
    if len(signature) != SIG_BYTES:
        return False
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    if r == 0 or s == 0:
        return False
    try:
        key.verify(encode_dss_signature(r, s), chain_value, _ECDSA)
    except InvalidSignature:
        return False
    return True
