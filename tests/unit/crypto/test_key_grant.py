"""Key grants: only the device whose certificate key a secret was sealed for opens it, and
only under the same associated data; a changed byte is refused."""

from __future__ import annotations

import pytest

from core.crypto import certs
from core.crypto.errors import DecryptionError
from core.crypto.key_grant import open_sealed, seal


def test_only_the_recipient_opens_a_grant() -> None:
    device, other = certs.new_private_key(), certs.new_private_key()
    sealed = seal(device.public_key(), b"k" * 32, b"grant|d1|key")
    assert open_sealed(device, sealed, b"grant|d1|key") == b"k" * 32
    with pytest.raises(DecryptionError, match="sealed for another device, or altered"):
        open_sealed(other, sealed, b"grant|d1|key")
    with pytest.raises(DecryptionError):
        open_sealed(device, sealed, b"grant|d2|key")  # moved to another device's slot
    altered = bytearray(sealed)
    altered[-1] ^= 1
    with pytest.raises(DecryptionError):
        open_sealed(device, bytes(altered), b"grant|d1|key")
    with pytest.raises(DecryptionError, match="not a Careline key grant"):
        open_sealed(device, b"\x02" + sealed[1:], b"grant|d1|key")
