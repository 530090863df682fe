"""Per-tenant data keys from a key provider, cached with a maximum age and use count.

:class:`DataKeyCache` keeps, per (tenant, purpose), one *current* data key for
encryption, replaced by a fresh one from the provider when it is older than
``max_age_s``, has been handed out ``max_uses`` times, or the provider's current master
key version changed (after ``rotate``). Unwrapped keys for decryption are cached too, for
``max_age_s``, so reading many records does not call KMS or Vault for each one.

Memory: cached keys live in :class:`SecureMemory` and are closed (zeroed) as soon as they
expire, are used up, are evicted (oldest first, beyond ``max_entries`` per kind), or the
cache is cleared or closed. Every call returns a *new* SecureMemory copy that the caller
owns and should close (a context manager) when done; copying goes through ``read()``,
an immutable ``bytes`` Python cannot wipe, just like the ``read()`` every AES-GCM call
makes. A key stays cached after its master key version is retired until it expires:
call :meth:`DataKeyCache.clear` after ``retire``.

Thread-safe: one lock guards the cache; calls to the provider (network round trips for
KMS and Vault) are made outside it, so a slow KMS does not stall cache hits.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, Self, TypeVar

from core.crypto.secure_memory import SecureMemory
from core.keys.providers.base import KeyProvider, check_binding
from core.keys.providers.errors import KeyProviderError


class EncryptionKey(NamedTuple):
    """A data key to encrypt with: plaintext copy (caller closes it), wrapped form, version."""

    key: SecureMemory
    wrapped: bytes
    version: str


@dataclass
class _Entry:
    key: SecureMemory
    wrapped: bytes
    version: str
    created: float
    uses: int = 0


_EncKey = tuple[str, str]
_DecKey = tuple[str, str, str, bytes]
_K = TypeVar("_K", _EncKey, _DecKey)


def _copy(key: SecureMemory) -> SecureMemory:
    return SecureMemory.from_bytes(bytearray(key.read()))


class DataKeyCache:
    """Caches a provider's data keys; see the module docstring for the rules."""

    def __init__(
        self,
        provider: KeyProvider,
        max_age_s: float = 300.0,
        max_uses: int = 1_000_000,
        max_entries: int = 1024,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``max_uses`` bounds encryptions per data key (AES-GCM random nonces allow about
        2**32 per key; stay far below). ``max_entries`` bounds each of the two caches."""
        if not max_age_s > 0:
            raise ValueError("max_age_s must be positive")
        if max_uses < 1:
            raise ValueError("max_uses must be at least 1")
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._provider = provider
        self._max_age = float(max_age_s)
        self._max_uses = max_uses
        self._max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._enc: OrderedDict[_EncKey, _Entry] = OrderedDict()
        self._dec: OrderedDict[_DecKey, _Entry] = OrderedDict()
        self._closed = False

    # ----- public API -----------------------------------------------------------------

    def key_for_encrypt(self, tenant: str, purpose: str) -> EncryptionKey:
        """The current data key for ``tenant``/``purpose`` (a copy the caller closes), its
        wrapped form to store beside the ciphertext, and its master key version."""
        check_binding(tenant, purpose)
        slot = (tenant, purpose)
        with self._lock:
            self._check_open()
            hit = self._take_locked(slot, self._clock())
            if hit is not None:
                return hit
        fresh = self._provider.generate_data_key(tenant, purpose)
        with self._lock:
            if self._closed:
                fresh.close()
                self._check_open()
            now = self._clock()
            hit = self._take_locked(slot, now)  # another thread may have been quicker
            if hit is not None:
                fresh.close()
                return hit
            self._enc[slot] = _Entry(fresh.key, fresh.wrapped, fresh.version, now)
            self._evict_locked(self._enc)
            result = self._take_locked(slot, now)
            assert result is not None
            return result

    def key_for_decrypt(
        self, tenant: str, purpose: str, wrapped: bytes, version: str
    ) -> SecureMemory:
        """The plaintext of ``wrapped`` (a copy the caller closes), unwrapped by the provider
        at most once per ``max_age_s``. Provider errors (wrong tenant, tampering) pass
        through unchanged."""
        check_binding(tenant, purpose)
        slot = (tenant, purpose, version, bytes(wrapped))
        with self._lock:
            self._check_open()
            hit = self._find_locked(slot, self._clock())
            if hit is not None:
                return hit
        key = self._provider.unwrap(tenant, purpose, wrapped, version)
        with self._lock:
            if self._closed:
                key.close()
                self._check_open()
            now = self._clock()
            hit = self._find_locked(slot, now)
            if hit is not None:
                key.close()
                return hit
            self._dec[slot] = _Entry(key, slot[3], version, now)
            self._evict_locked(self._dec)
            return _copy(key)

    def purge_expired(self) -> int:
        """Close every expired entry now; returns how many were closed. (Expired entries
        are also purged on every call, so this is only needed when the cache sits idle.)"""
        with self._lock:
            return self._purge_locked(self._clock())

    def clear(self) -> None:
        """Close every cached key (for example after retiring a master key version)."""
        with self._lock:
            for cache in (self._enc, self._dec):
                for entry in cache.values():
                    entry.key.close()
                cache.clear()

    def stats(self) -> dict[str, int]:
        """How many encryption and decryption keys are cached."""
        with self._lock:
            return {"encrypt_keys": len(self._enc), "decrypt_keys": len(self._dec)}

    def close(self) -> None:
        """Zero every cached key; the cache cannot be used afterwards. Does not close the
        provider."""
        self.clear()
        with self._lock:
            self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- internals (call with the lock held) ----------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise KeyProviderError("the data key cache has been closed")

    def _expired(self, entry: _Entry, now: float) -> bool:
        return now - entry.created >= self._max_age

    def _take_locked(self, slot: _EncKey, now: float) -> EncryptionKey | None:
        """Use the current encryption key of ``slot`` once, if it is still usable."""
        self._purge_locked(now)
        entry = self._enc.get(slot)
        if entry is None:
            return None
        if entry.version != self._provider.current_version() or entry.uses >= self._max_uses:
            del self._enc[slot]
            entry.key.close()
            return None
        entry.uses += 1
        result = EncryptionKey(_copy(entry.key), entry.wrapped, entry.version)
        if entry.uses >= self._max_uses:
            # Used up: zero it now rather than at the next call.
            del self._enc[slot]
            entry.key.close()
        return result

    def _find_locked(self, slot: _DecKey, now: float) -> SecureMemory | None:
        self._purge_locked(now)
        entry = self._dec.get(slot)
        if entry is not None:
            return _copy(entry.key)
        current = self._enc.get(slot[:2])
        if current is not None and current.wrapped == slot[3] and current.version == slot[2]:
            return _copy(current.key)
        return None

    def _purge_locked(self, now: float) -> int:
        return self._purge_one(self._enc, now) + self._purge_one(self._dec, now)

    def _purge_one(self, cache: OrderedDict[_K, _Entry], now: float) -> int:
        # Entries are never moved, so the dict is in creation order: expired ones are first.
        closed = 0
        while cache:
            slot = next(iter(cache))
            if not self._expired(cache[slot], now):
                break
            cache.pop(slot).key.close()
            closed += 1
        return closed

    def _evict_locked(self, cache: OrderedDict[_K, _Entry]) -> None:
        while len(cache) > self._max_entries:
            _, entry = cache.popitem(last=False)
            entry.key.close()
