"""Server-side key providers behind one interface (:class:`KeyProvider`).

``local`` (key file, systemd credential or MASTER_ENCRYPTION_KEY), ``aws-kms`` (boto3) and
``vault-transit`` (hvac). Build the configured one with :func:`provider_from_settings`;
cache its data keys with :class:`core.keys.data_keys.DataKeyCache`. The AWS and Vault
modules (and so boto3 and hvac) are imported only when used.
"""

from core.keys.providers.base import DataKey, KeyProvider, WrappedKey
from core.keys.providers.errors import (
    KeyProviderError,
    KeyVersionError,
    MasterKeyFileError,
    ProviderAccessError,
    ProviderUnavailableError,
    ReadOnlyKeySourceError,
    TamperedWrappedKeyError,
    WrappedKeyMismatchError,
)
from core.keys.providers.factory import (
    PROVIDERS,
    SERVER_KEY_SETTINGS,
    check_server_key_settings,
    provider_from_settings,
)
from core.keys.providers.local import LocalKeyProvider

__all__ = [
    "PROVIDERS",
    "SERVER_KEY_SETTINGS",
    "DataKey",
    "KeyProvider",
    "KeyProviderError",
    "KeyVersionError",
    "LocalKeyProvider",
    "MasterKeyFileError",
    "ProviderAccessError",
    "ProviderUnavailableError",
    "ReadOnlyKeySourceError",
    "TamperedWrappedKeyError",
    "WrappedKey",
    "WrappedKeyMismatchError",
    "check_server_key_settings",
    "provider_from_settings",
]
