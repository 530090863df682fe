"""The clinic server vouching for unsigned ops with the clinic CA's key.

Two kinds of op reach the server unsigned: ops it held before ops were signed (an upgraded
server's replica, or ops a Careline 0.1.0 server process stored during a rolling upgrade
on PostgreSQL), and ops a workstation still running Careline 0.1.0 pushes over its
authenticated connection. The server signs them as ``clinic-ca``, never as the device: the
signature says "the clinic server accepted this op from an authenticated device", which is
all that can be said of an op made before signing. Callers audit each vouching.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from core.crypto import op_signature
from core.store import op_signer
from core.store.oplog import Op


def vouch(signer: op_signer.Signer, ops: Sequence[Op]) -> list[Op]:
    """``ops`` with every unsigned one signed by ``signer`` (the clinic CA). Consecutive
    ops of one origin are chained (core.crypto.op_signature), so a receiver checks one
    signature per run; each op carries its own signature too."""
    out: list[Op] = []
    chain: dict[str, tuple[int, bytes]] = {}  # origin -> (seq, chain value) of the last one
    for op in ops:
        if op.signer:
            out.append(op)
            continue
        last = chain.get(op.origin)
        prev = last[1] if last is not None and last[0] + 1 == op.seq else op_signature.GENESIS
        value = op_signer.op_chain(signer.clinic, op, prev)
        chain[op.origin] = (op.seq, value)
        sig = op_signature.sign(signer.key, value)
        out.append(dataclasses.replace(op, prev=prev, sig=sig, signer="clinic-ca"))
    return out
