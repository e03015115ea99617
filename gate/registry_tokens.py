"""Bearer tokens shared by every thread of a run: one fetch per (registry, scope).

When 32 verifications need the same token at once, one asks the token
service and the others wait for its answer (single flight); the token is then
reused until shortly before it expires. A failure is remembered briefly, so
the threads queued behind a stuck or refusing token service fail with it
instead of each asking again (and refused credentials are not tried once per
thread, which is how accounts get locked).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn

from gate.errors import RegistryError
from gate.registry_auth import Token

FAILURE_MEMORY = 30.0
"""Seconds a failed ping or token request is answered again without asking."""

Key = tuple[str, str]
"""(registry, scope)"""


@dataclass(frozen=True)
class Failure:
    """A registry error to answer again until ``until`` (``time.monotonic()``)."""

    until: float
    error: RegistryError

    @classmethod
    def of(cls, error: RegistryError) -> Failure:
        return cls(time.monotonic() + FAILURE_MEMORY, error)

    def fresh(self) -> bool:
        return time.monotonic() < self.until

    def again(self) -> NoReturn:
        raise type(self.error)(self.error.message, hint=self.error.hint)


@dataclass(frozen=True)
class _Cached:
    value: str = field(repr=False)
    expires: float


class TokenCache:
    """Thread-safe; ``get`` is the only way in."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._locks: dict[Key, threading.Lock] = {}
        self._tokens: dict[Key, _Cached] = {}
        self._failures: dict[Key, Failure] = {}

    def get(self, key: Key, fetch: Callable[[], Token], *, rejected: str | None = None) -> str:
        """The cached token for ``key``, or the one ``fetch`` gets (called by one thread).

        ``rejected`` is a token the registry just refused: fetch a new one,
        unless another thread already has.
        """
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            cached = self._tokens.get(key)
            if (
                cached is not None
                and cached.value != rejected
                and cached.expires > time.monotonic()
            ):
                return cached.value
            failed = self._failures.get(key)
            if failed is not None and failed.fresh():
                failed.again()
            try:
                token = fetch()
            except RegistryError as e:
                self._failures[key] = Failure.of(e)
                raise
            self._failures.pop(key, None)
            # Renew a little early so a token does not expire in flight.
            self._tokens[key] = _Cached(
                token.value, time.monotonic() + max(token.lifetime * 0.9, 1.0)
            )
            return token.value
