"""Child process for the interrupted-import test: imports a FHIR bundle into a clinic
database and kills itself (SIGKILL, as a power cut or a task manager would) once
``argv[3]`` patients' charts are committed.

Reads the database key (hex) on stdin; ``argv[1]`` the database, ``argv[2]`` the bundle."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from core.crypto.kdf import FAST_PARAMS
from core.crypto.secure_memory import SecureMemory
from core.records.clinic import ClinicRecords
from core.records.fhir.importer import import_bundle
from core.store.database import Database


def main() -> None:
    """Import until killed."""
    key = bytes.fromhex(sys.stdin.readline().strip())
    db = Database.open(Path(sys.argv[1]), SecureMemory.from_bytes(bytearray(key)))
    stop_after = int(sys.argv[3])

    def progress(done: int, _total: int) -> None:
        if done == stop_after:  # this chart's transaction has committed
            os.kill(os.getpid(), signal.SIGKILL)

    import_bundle(ClinicRecords(db, "admin", FAST_PARAMS), Path(sys.argv[2]).read_bytes(), progress)


if __name__ == "__main__":
    main()
