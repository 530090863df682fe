"""Child process for the crash test: syncs a target replica from a source until killed.

Reads two hex keys on stdin (source, target), then runs one real sync session
(``core.sync.session.SyncSession`` over the in-process transport to a ``Responder`` on the
source database) that pulls ops in batches of ``argv[3]``. After each committed batch it
prints the target's version vector, so the parent knows what was committed before it kills
us; ``done`` once the session has finished.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from core.crypto.secure_memory import SecureMemory
from core.store.database import Database
from core.store.oplog import version_vector
from core.sync.responder import Responder
from core.sync.session import SyncReport, SyncSession
from core.sync.transport import LocalTransport


def main() -> None:
    """Run the session, reporting every committed batch on stdout."""
    source_key, target_key = (bytes.fromhex(line.strip()) for line in sys.stdin.readlines()[:2])
    source = Database.open(Path(sys.argv[1]), SecureMemory.from_bytes(bytearray(source_key)))
    target = Database.open(Path(sys.argv[2]), SecureMemory.from_bytes(bytearray(target_key)))

    def committed(_report: SyncReport) -> None:
        # Called after each batch's transaction has committed: what we print is durable.
        print(json.dumps(version_vector(target)), flush=True)

    transport = LocalTransport(Responder(source, "crash-source"))
    batch = int(sys.argv[3])
    SyncSession(target, transport, "crash-test", batch=batch, on_progress=committed).run()
    print("done", flush=True)


if __name__ == "__main__":
    main()
