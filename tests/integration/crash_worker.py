"""Child process for the crash test: applies sync batches until killed.

Reads two hex keys on stdin (source, target), then pulls ops from the source replica into
the target replica in small batches, printing the target's version vector after each
committed batch so the parent knows what was committed before it kills us.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from core.crypto.secure_memory import SecureMemory
from core.records.replication import apply_ops, ops_for
from core.store.database import Database
from core.store.oplog import version_vector


def main() -> None:
    source_key, target_key = (bytes.fromhex(line.strip()) for line in sys.stdin.readlines()[:2])
    source = Database.open(Path(sys.argv[1]), SecureMemory.from_bytes(bytearray(source_key)))
    target = Database.open(Path(sys.argv[2]), SecureMemory.from_bytes(bytearray(target_key)))
    batch = int(sys.argv[3])
    while True:
        ops = ops_for(source, version_vector(target), batch)
        if not ops:
            break
        apply_ops(target, ops, "crash-test")
        print(json.dumps(version_vector(target)), flush=True)
    print("done", flush=True)


if __name__ == "__main__":
    main()
