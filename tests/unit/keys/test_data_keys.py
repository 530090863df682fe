"""DataKeyCache: reuse, max age, max uses, eviction, zeroing, thread safety."""

from __future__ import annotations

import base64
import os
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.crypto.secure_memory import SecureMemory
from core.keys.data_keys import DataKeyCache
from core.keys.providers import (
    DataKey,
    KeyProviderError,
    LocalKeyProvider,
    WrappedKeyMismatchError,
)

T, P = "tenant-a", "records"


class RecordingProvider(LocalKeyProvider):
    """A real local provider that remembers the keys it handed out."""

    generated: list[DataKey]
    unwrapped: list[SecureMemory]

    def generate_data_key(self, tenant: str, purpose: str) -> DataKey:
        dk = super().generate_data_key(tenant, purpose)
        self.generated.append(dk)
        return dk

    def unwrap(self, tenant: str, purpose: str, wrapped: bytes, version: str) -> SecureMemory:
        key = super().unwrap(tenant, purpose, wrapped, version)
        self.unwrapped.append(key)
        return key


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[RecordingProvider]:
    provider = RecordingProvider.from_key_file(tmp_path / "master-keys.json")
    provider.generated, provider.unwrapped = [], []
    yield provider
    provider.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_reuses_key_until_max_uses_then_zeroes_it(
    provider: RecordingProvider, clock: FakeClock
) -> None:
    with DataKeyCache(provider, max_age_s=60, max_uses=3, max_entries=10, clock=clock) as cache:
        results = [cache.key_for_encrypt(T, P) for _ in range(4)]
        assert len(provider.generated) == 2
        first, second = provider.generated
        assert [r.wrapped for r in results] == [first.wrapped] * 3 + [second.wrapped]
        assert results[0].key.read() == results[2].key.read() != results[3].key.read()
        assert first.key.closed and not second.key.closed
        # What the caller got are copies: still readable after the cache zeroed its own.
        assert len(results[0].key.read()) == 32
        current = results[3].key.read()
        for r in results:
            r.key.close()
        # Another tenant gets its own key.
        with cache.key_for_encrypt("tenant-b", P).key as other:
            assert other.read() != current
        assert len(provider.generated) == 3
        assert cache.stats()["encrypt_keys"] == 2
    assert all(dk.key.closed for dk in provider.generated)


def test_max_age_replaces_and_zeroes(provider: RecordingProvider, clock: FakeClock) -> None:
    cache = DataKeyCache(provider, max_age_s=30, max_uses=1000, max_entries=10, clock=clock)
    a = cache.key_for_encrypt(T, P)
    clock.now += 29.9
    b = cache.key_for_encrypt(T, P)
    assert a.wrapped == b.wrapped and len(provider.generated) == 1
    clock.now += 0.1
    c = cache.key_for_encrypt(T, P)
    assert c.wrapped != a.wrapped and len(provider.generated) == 2
    assert provider.generated[0].key.closed
    # Idle expiry: purge closes without waiting for another call.
    clock.now += 30
    assert cache.purge_expired() == 1
    assert provider.generated[1].key.closed
    assert cache.stats() == {"encrypt_keys": 0, "decrypt_keys": 0}
    cache.close()


def test_rotation_switches_to_new_version(provider: RecordingProvider, clock: FakeClock) -> None:
    cache = DataKeyCache(provider, max_age_s=60, max_uses=1000, max_entries=10, clock=clock)
    before = cache.key_for_encrypt(T, P)
    new_version = provider.rotate()
    after = cache.key_for_encrypt(T, P)
    assert before.version != after.version == new_version
    assert provider.generated[0].key.closed
    with cache.key_for_decrypt(T, P, before.wrapped, before.version) as key:
        assert key.read() == before.key.read()
    cache.close()


def test_decrypt_cache_max_age_and_zeroing(provider: RecordingProvider, clock: FakeClock) -> None:
    with provider.generate_data_key(T, P) as dk:
        cache = DataKeyCache(provider, max_age_s=10, max_uses=5, max_entries=10, clock=clock)
        for _ in range(3):
            with cache.key_for_decrypt(T, P, dk.wrapped, dk.version) as key:
                assert key.read() == dk.key.read()
        assert len(provider.unwrapped) == 1
        clock.now += 10
        with cache.key_for_decrypt(T, P, dk.wrapped, dk.version) as key:
            assert key.read() == dk.key.read()
        assert len(provider.unwrapped) == 2
        assert provider.unwrapped[0].closed and not provider.unwrapped[1].closed
        # The provider's refusals come through the cache unchanged.
        with pytest.raises(WrappedKeyMismatchError):
            cache.key_for_decrypt("tenant-b", P, dk.wrapped, dk.version)
        cache.close()
        assert provider.unwrapped[1].closed
        with pytest.raises(KeyProviderError, match=r"cache has been closed"):
            cache.key_for_decrypt(T, P, dk.wrapped, dk.version)


def test_decrypt_of_current_key_needs_no_unwrap(
    provider: RecordingProvider, clock: FakeClock
) -> None:
    cache = DataKeyCache(provider, max_age_s=10, max_uses=5, max_entries=10, clock=clock)
    enc = cache.key_for_encrypt(T, P)
    with cache.key_for_decrypt(T, P, enc.wrapped, enc.version) as key:
        assert key.read() == enc.key.read()
    assert provider.unwrapped == []
    cache.close()


def test_max_entries_evicts_oldest_and_zeroes(
    provider: RecordingProvider, clock: FakeClock
) -> None:
    cache = DataKeyCache(provider, max_age_s=60, max_uses=100, max_entries=2, clock=clock)
    for tenant in ("t1", "t2", "t3"):
        cache.key_for_encrypt(tenant, P).key.close()
        clock.now += 1
    assert [dk.key.closed for dk in provider.generated] == [True, False, False]
    assert cache.stats()["encrypt_keys"] == 2
    wrapped = [provider.generate_data_key(t, P) for t in ("t1", "t2", "t3")]
    for t, dk in zip(("t1", "t2", "t3"), wrapped, strict=True):
        cache.key_for_decrypt(t, P, dk.wrapped, dk.version).close()
        dk.close()
    assert [k.closed for k in provider.unwrapped] == [True, False, False]
    cache.close()
    assert all(k.closed for k in provider.unwrapped)


def test_threads_never_exceed_max_uses(tmp_path: Path) -> None:
    secret = base64.b64encode(os.urandom(32)).decode()
    provider = LocalKeyProvider.from_env_value(secret)
    cache = DataKeyCache(provider, max_age_s=60, max_uses=7, max_entries=10)
    uses: Counter[bytes] = Counter()
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(40):
                result = cache.key_for_encrypt(T, P)
                with lock:
                    uses[result.wrapped] += 1
                result.key.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(uses.values()) == 320
    assert max(uses.values()) <= 7
    assert len(uses) >= 320 // 7
    cache.close()
    provider.close()


def test_rejects_bad_limits(provider: RecordingProvider) -> None:
    with pytest.raises(ValueError, match=r"max_age_s"):
        DataKeyCache(provider, max_age_s=0, max_uses=1, max_entries=1)
    with pytest.raises(ValueError, match=r"max_uses"):
        DataKeyCache(provider, max_age_s=1, max_uses=0, max_entries=1)
    with pytest.raises(ValueError, match=r"max_entries"):
        DataKeyCache(provider, max_age_s=1, max_uses=1, max_entries=0)
