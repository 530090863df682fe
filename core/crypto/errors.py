"""Errors raised by the crypto layer."""


class CryptoError(Exception):
    """Base class for crypto failures."""


class DecryptionError(CryptoError):
    """Ciphertext failed authentication: wrong key, wrong associated data, or tampering."""
