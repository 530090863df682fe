"""The OS keyring (``keyring``) holding one random secret per workstation database.

``keyring`` returns secrets as ``str``: that copy is immutable and cannot be wiped from
Python's heap. Headless Linux usually has no keyring at all (``NoKeyringError`` or the
``fail`` backend); we say so plainly and the password slots still open the database.
Nothing ever falls back to storing a secret in plaintext.
"""

from __future__ import annotations

import base64

import keyring
import keyring.errors

from core.keys.errors import KeyringUnavailableError

SERVICE = "careline"

NO_KEYRING_MESSAGE = (
    "no OS keyring is available on this machine (common on headless Linux); "
    "unlock with a staff password or the recovery key instead"
)


# Only backends that keep secrets encrypted by the OS. keyrings.alt's plaintext or
# file-based backends, the 'null' and 'fail' backends are refused: a key in a plain file
# next to the database would make the encryption pointless.
TRUSTED_BACKENDS = (
    "keyring.backends.SecretService",
    "keyring.backends.libsecret",
    "keyring.backends.kwallet",
    "keyring.backends.macOS",
    "keyring.backends.Windows",
)


def _trusted(backend: object) -> bool:
    module = type(backend).__module__
    if module.startswith("keyring.backends.chainer"):
        children = getattr(backend, "backends", [])
        return bool(children) and all(_trusted(child) for child in children)
    return module.startswith(TRUSTED_BACKENDS)


def _check_backend() -> None:
    backend = keyring.get_keyring()
    if type(backend).__module__.startswith(("keyring.backends.fail", "keyring.backends.null")):
        raise KeyringUnavailableError(NO_KEYRING_MESSAGE)
    if not _trusted(backend):
        raise KeyringUnavailableError(
            f"the configured keyring backend {type(backend).__module__}.{type(backend).__name__} "
            "does not store secrets encrypted by the operating system; refusing to use it"
        )


def store_secret(account: str, secret: bytes) -> None:
    """Save ``secret`` for ``account`` in the OS keyring."""
    _check_backend()
    try:
        keyring.set_password(SERVICE, account, base64.b64encode(secret).decode("ascii"))
    except keyring.errors.NoKeyringError as exc:
        raise KeyringUnavailableError(NO_KEYRING_MESSAGE) from exc
    except keyring.errors.KeyringError as exc:
        raise KeyringUnavailableError(f"the OS keyring refused to store the secret: {exc}") from exc


def load_secret(account: str) -> bytes | None:
    """Return the secret for ``account``, or None if the keyring holds none."""
    _check_backend()
    try:
        text = keyring.get_password(SERVICE, account)
    except keyring.errors.NoKeyringError as exc:
        raise KeyringUnavailableError(NO_KEYRING_MESSAGE) from exc
    except keyring.errors.KeyringError as exc:
        raise KeyringUnavailableError(f"the OS keyring could not be read: {exc}") from exc
    if text is None:
        return None
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        return None


def delete_secret(account: str) -> None:
    """Remove the secret for ``account``; a missing entry is not an error."""
    _check_backend()
    try:
        keyring.delete_password(SERVICE, account)
    except keyring.errors.PasswordDeleteError:
        pass
    except keyring.errors.KeyringError as exc:
        raise KeyringUnavailableError(f"the OS keyring could not delete the secret: {exc}") from exc
