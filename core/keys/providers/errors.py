"""Errors from server-side key providers.

Every failure a provider can meet (a wrapped key for another tenant, a retired master key
version, an altered blob, an unreachable KMS) surfaces as one of these, with a message that
names the problem. Library exceptions (botocore, hvac, requests) are translated, never
passed through.
"""

from __future__ import annotations

from core.keys.errors import KeyError_


class KeyProviderError(KeyError_):
    """Base class for key-provider failures."""

    plain_template = "the key service failed: {detail}"


class WrappedKeyMismatchError(KeyProviderError):
    """The wrapped data key belongs to another tenant, purpose or provider."""


class KeyVersionError(KeyProviderError):
    """The master key version is wrong for this blob, unknown, or retired."""


class TamperedWrappedKeyError(KeyProviderError):
    """The wrapped data key is malformed or fails authentication (altered or damaged)."""


class ProviderUnavailableError(KeyProviderError):
    """The key service (AWS KMS, Vault) cannot be reached or answered with an error."""


class ProviderAccessError(KeyProviderError):
    """The key service refused our credentials or their permissions."""


class MasterKeyFileError(KeyProviderError):
    """The local master key file is unsafe (permissions), missing or malformed."""


class ReadOnlyKeySourceError(KeyProviderError):
    """The master key comes from a source Careline cannot change (environment, credential)."""
