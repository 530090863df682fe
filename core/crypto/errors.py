"""Errors raised by the crypto layer."""

from core.errors import CarelineError


class CryptoError(CarelineError):
    """Base class for crypto failures."""


class DecryptionError(CryptoError):
    """Ciphertext failed authentication: wrong key, wrong associated data, or tampering."""
