"""Child processes of the tests (``careline``, ``careline-server``, the desktop app, and a
previous release's commands) derive keys with Argon2id at ``FAST_PARAMS``.

Python imports ``sitecustomize`` at start-up from ``PYTHONPATH``; tests/cheap_kdf.py
explains when this folder is there and why.

``DEFAULT_PARAMS`` is bound as a default argument at import in many places, so the one
frozen instance is changed in place rather than the module attribute replaced. Stored
parameters are still read back from each slot and verifier, so data made with production
parameters (a release's golden data) opens as before. Test-only: nothing ships it.
"""

from __future__ import annotations

import dataclasses


def _cheap_kdf() -> None:
    try:
        from core.crypto import kdf
    except ModuleNotFoundError as exc:  # a child that is not careline (pip, moto_server)
        if exc.name not in ("core", "core.crypto", "core.crypto.kdf"):
            raise
        return
    for field in dataclasses.fields(kdf.DEFAULT_PARAMS):
        object.__setattr__(kdf.DEFAULT_PARAMS, field.name, getattr(kdf.FAST_PARAMS, field.name))


_cheap_kdf()
