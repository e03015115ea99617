"""TokenCache: single flight per (registry, scope), reuse until expiry, failures remembered."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from gate.errors import RegistryAuthError
from gate.registry_auth import Token
from gate.registry_tokens import TokenCache

KEY = ("ghcr.io", "repository:acme/app:pull")


class Service:
    """A token service that takes ``delay`` seconds and counts how often it is asked."""

    def __init__(self, delay: float = 0.0, lifetime: float = 300.0) -> None:
        self.delay, self.lifetime = delay, lifetime
        self.calls = 0
        self._lock = threading.Lock()

    def fetch(self) -> Token:
        with self._lock:
            self.calls += 1
            n = self.calls
        time.sleep(self.delay)
        return Token(f"tok-{n}", self.lifetime)


def test_32_threads_at_once_make_one_fetch() -> None:
    cache, service = TokenCache(), Service(delay=0.3)
    start = threading.Barrier(32)

    def get(_: int) -> str:
        start.wait(timeout=10)
        return cache.get(KEY, service.fetch)

    with ThreadPoolExecutor(32) as pool:
        assert set(pool.map(get, range(32))) == {"tok-1"}
    assert service.calls == 1
    assert cache.get(("ghcr.io", "repository:acme/db:pull"), service.fetch) == "tok-2"


def test_a_token_is_reused_until_it_expires() -> None:
    cache, service = TokenCache(), Service(lifetime=1.0)
    assert cache.get(KEY, service.fetch) == cache.get(KEY, service.fetch) == "tok-1"
    time.sleep(1.1)  # lifetime 1 s, renewed at 90% (at least 1 s)
    assert cache.get(KEY, service.fetch) == "tok-2"


def test_a_rejected_token_is_refetched_once_for_all_threads() -> None:
    cache, service = TokenCache(), Service()
    first = cache.get(KEY, service.fetch)
    with ThreadPoolExecutor(8) as pool:
        again = set(pool.map(lambda _: cache.get(KEY, service.fetch, rejected=first), range(8)))
    assert again == {"tok-2"} and service.calls == 2


def test_a_failure_is_answered_again_without_asking() -> None:
    cache = TokenCache()
    calls = []

    def refuse() -> Token:
        calls.append(1)
        raise RegistryAuthError("registry ghcr.io refused our credentials")

    for _ in range(5):
        with pytest.raises(RegistryAuthError, match="refused our credentials"):
            cache.get(KEY, refuse)
    assert len(calls) == 1
