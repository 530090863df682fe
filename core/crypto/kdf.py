"""Argon2id key derivation and password verifiers (from ``cryptography``).

Parameters are stored beside what they protect, so they can be raised later without
breaking old slots. Stored parameters are bounded on load: a hostile or corrupted slot
file must not make an unlock allocate gigabytes or spin for minutes.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from typing import Any

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

SALT_SIZE = 16
MAX_MEMORY_KIB = 1024 * 1024  # 1 GiB
MAX_ITERATIONS = 64
MAX_LANES = 16


@dataclass(frozen=True)
class Argon2Params:
    """Argon2id cost parameters (memory in KiB)."""

    iterations: int = 3
    lanes: int = 4
    memory_kib: int = 64 * 1024

    def validate(self) -> Argon2Params:
        """Return self if the parameters are within sane bounds, else raise ValueError."""
        if not 1 <= self.iterations <= MAX_ITERATIONS:
            raise ValueError(f"Argon2id iterations {self.iterations} out of range 1..64")
        if not 1 <= self.lanes <= MAX_LANES:
            raise ValueError(f"Argon2id lanes {self.lanes} out of range 1..16")
        if not 8 * self.lanes <= self.memory_kib <= MAX_MEMORY_KIB:
            raise ValueError(f"Argon2id memory {self.memory_kib} KiB out of range")
        return self

    def to_dict(self) -> dict[str, int]:
        """Serialisable form, stored with the slot or verifier."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Argon2Params:
        """Parse and validate stored parameters."""
        if not isinstance(data, dict):
            raise ValueError("Argon2id parameters must be an object")
        try:
            params = cls(
                iterations=int(data["iterations"]),
                lanes=int(data["lanes"]),
                memory_kib=int(data["memory_kib"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"Argon2id parameters are malformed: {exc}") from exc
        return params.validate()


# Tests and benchmarks only (nothing in core or app derives a key with it; a clinic's slots
# and verifiers use DEFAULT_PARAMS): as cheap as Argon2id sensibly goes, 0.5 ms a derivation
# here against 21 ms at OWASP's minimum profile (2 passes, 19 MiB), which the suite's
# thousands of sign-ins paid for nothing a test checks.
FAST_PARAMS = Argon2Params(iterations=1, lanes=1, memory_kib=1024)
DEFAULT_PARAMS = Argon2Params()


def new_salt() -> bytes:
    """Random salt for a new slot or verifier."""
    return os.urandom(SALT_SIZE)


def derive_key(secret: bytes, salt: bytes, params: Argon2Params, length: int = 32) -> bytes:
    """Derive ``length`` bytes from ``secret`` with Argon2id."""
    params.validate()
    kdf = Argon2id(
        salt=salt,
        length=length,
        iterations=params.iterations,
        lanes=params.lanes,
        memory_cost=params.memory_kib,
    )
    return kdf.derive(secret)


def hash_password(password: str, params: Argon2Params = DEFAULT_PARAMS) -> str:
    """Return a PHC-encoded Argon2id verifier for ``password``."""
    params.validate()
    kdf = Argon2id(
        salt=new_salt(),
        length=32,
        iterations=params.iterations,
        lanes=params.lanes,
        memory_cost=params.memory_kib,
    )
    return kdf.derive_phc_encoded(password.encode("utf-8"))


_PHC = re.compile(
    r"^\$argon2id\$v=19\$m=(\d{1,8}),t=(\d{1,3}),p=(\d{1,3})\$[A-Za-z0-9+/]{11,}\$[A-Za-z0-9+/]{16,}$"
)


def verify_password(password: str, verifier: str) -> bool:
    """Check ``password`` against a PHC verifier; the final comparison is ``cryptography``'s.

    Verifiers arrive through sync, so their cost parameters are bounded before use.
    """
    match = _PHC.match(verifier)
    if match is None:
        raise ValueError("stored password verifier is malformed (not an Argon2id PHC string)")
    memory, iterations, lanes = (int(g) for g in match.groups())
    Argon2Params(iterations=iterations, lanes=lanes, memory_kib=memory).validate()
    try:
        Argon2id.verify_phc_encoded(password.encode("utf-8"), verifier)
    except InvalidKey:
        return False
    except ValueError as exc:
        raise ValueError(f"stored password verifier is malformed: {exc}") from exc
    return True
