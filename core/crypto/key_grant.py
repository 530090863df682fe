"""Sealing a secret for one device's certificate key (ECIES on P-256), so that a relay
that stores the sealed form (the clinic server) cannot open it.

``seal(public_key, secret, aad)`` makes an ephemeral P-256 key, derives an AES-256-GCM key
from the ECDH shared secret with HKDF-SHA256 (bound to ``aad`` and both public keys), and
encrypts. Only the holder of the device's private key opens it (:func:`open_sealed`); a
changed byte, another device's key or another ``aad`` fails with DecryptionError.

Format: version (1) | ephemeral public key, uncompressed point (65) | nonce (12) | AES-GCM.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from core.crypto.errors import DecryptionError

_VERSION = b"\x01"
_POINT = 65
_NONCE = 12
_INFO = b"careline/key-grant/v1"


def _point(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def _key(shared: bytes, ephemeral: bytes, recipient: bytes, aad: bytes) -> bytes:
    info = _INFO + len(aad).to_bytes(4, "big") + aad + ephemeral + recipient
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(shared)


def seal(recipient: ec.EllipticCurvePublicKey, secret: bytes, aad: bytes) -> bytes:
    """``secret`` sealed for the holder of ``recipient``'s private key."""
    if not isinstance(recipient.curve, ec.SECP256R1):
        raise ValueError("key grants are sealed for P-256 device keys only")
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    ephemeral_point = _point(ephemeral.public_key())
    key = _key(ephemeral.exchange(ec.ECDH(), recipient), ephemeral_point, _point(recipient), aad)
    nonce = os.urandom(_NONCE)
    return _VERSION + ephemeral_point + nonce + AESGCM(key).encrypt(nonce, secret, aad)


def open_sealed(private: ec.EllipticCurvePrivateKey, sealed: bytes, aad: bytes) -> bytes:
    """The secret in ``sealed``; DecryptionError names why it does not open."""
    if len(sealed) < 1 + _POINT + _NONCE + 16 or sealed[:1] != _VERSION:
        raise DecryptionError("not a Careline key grant (too short or unknown version)")
    ephemeral_point = sealed[1 : 1 + _POINT]
    nonce = sealed[1 + _POINT : 1 + _POINT + _NONCE]
    try:
        ephemeral = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), ephemeral_point)
        key = _key(
            private.exchange(ec.ECDH(), ephemeral), ephemeral_point,
            _point(private.public_key()), aad,
        )  # fmt: skip
        return AESGCM(key).decrypt(nonce, sealed[1 + _POINT + _NONCE :], aad)
    except (InvalidTag, ValueError) as exc:
        raise DecryptionError(
            "the key grant did not open: sealed for another device, or altered"
        ) from exc
