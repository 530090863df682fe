"""The workstation's key file (``keyslots.json``): any bytes as its content.

``Keychain.load`` reads it at every start; then the slots it found are tried as an unlock
would (a password slot with cheap Argon2id parameters, a keyring slot with a raw secret,
the recovery slot). Contract (core.keys.keychain): a damaged file raises SlotFileError, a
wrong secret WrongSecretError or NoSlotError; nothing else, whatever the file holds.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from core.crypto.errors import DecryptionError
from core.crypto.keyslots import open_slot
from core.keys.errors import KeyError_
from core.keys.keychain import KEYSLOT_FILE_NAME, Keychain

# Argon2id costs a file may name are bounded (1 GiB, 64 passes) but still far too slow to
# try per input: slots costing more than this are parsed, not opened.
_CHEAP_KIB = 1024
_CHEAP_ITERATIONS = 2


class Target:
    """A key file path in a private temporary folder, rewritten for every input."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="careline-fuzz-keys-")
        self.path = Path(self._dir.name) / KEYSLOT_FILE_NAME

    def close(self) -> None:
        """Remove the temporary folder (and stop what uses it)."""
        self._dir.cleanup()

    def __call__(self, data: bytes) -> None:
        self.path.write_bytes(data)
        try:
            chain = Keychain.load(self.path)
        except KeyError_:
            return
        for slot in chain.slots:
            cheap = slot.params is None or (
                slot.params.memory_kib <= _CHEAP_KIB and slot.params.iterations <= _CHEAP_ITERATIONS
            )
            if not cheap:
                continue
            try:
                if slot.kind == "password":
                    chain.unlock_with_password(slot.label, "correct horse battery")
                elif slot.kind == "recovery":
                    chain.unlock_with_recovery_key("A" * 32)
                else:
                    open_slot(slot, chain.db_id, bytes(32))
            except (KeyError_, DecryptionError):
                pass
