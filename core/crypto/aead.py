"""AES-256-GCM with associated data.

Blobs are ``nonce (12 bytes) || ciphertext || tag (16 bytes)``. Nonces are random: with
96-bit random nonces a single key must not encrypt more than about 2**32 messages,
far above what a key slot or a record column sees.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core.crypto.errors import DecryptionError

KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16


def generate_key() -> bytes:
    """Return 32 random bytes from the OS CSPRNG."""
    return os.urandom(KEY_SIZE)


def encrypt(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt and authenticate ``plaintext``, binding ``aad`` to it."""
    if len(key) != KEY_SIZE:
        raise ValueError(f"AES-256-GCM needs a {KEY_SIZE}-byte key, got {len(key)} bytes")
    nonce = os.urandom(NONCE_SIZE)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def decrypt(key: bytes, blob: bytes, aad: bytes) -> bytes:
    """Decrypt a blob from :func:`encrypt`; raise DecryptionError if anything was altered."""
    if len(key) != KEY_SIZE:
        raise ValueError(f"AES-256-GCM needs a {KEY_SIZE}-byte key, got {len(key)} bytes")
    if len(blob) < NONCE_SIZE + TAG_SIZE:
        raise DecryptionError("ciphertext is too short to be an AES-GCM blob")
    try:
        return AESGCM(key).decrypt(blob[:NONCE_SIZE], blob[NONCE_SIZE:], aad)
    except InvalidTag as exc:
        raise DecryptionError("authentication failed: wrong key or altered data") from exc
