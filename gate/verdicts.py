"""Verdicts by key, with TTLs, and one verification per key in flight.

One cache for both places that verify the same images over and over: the
admission webhook (keys: reference and policy version) and the watchdog
(keys: image ID and the policy/ledger version). Admission latency is what
users of other admission controllers complain about most, and a
Deployment's rollout asks about the same images once per ReplicaSet and pod;
a watchdog sees the same image in every container started from it.

So a verdict is kept for ``trusted_ttl`` seconds when the image passed and
``failure_ttl`` when it did not (short, so a fix shows up quickly); ERROR is
never kept, so a registry outage ends when the registry is back. Requests that
need a key another request is already verifying wait for that verification
instead of starting their own (single flight), and no request waits longer
than ``wait`` (default 8 s, inside the webhook configuration's
``timeoutSeconds: 10``), so a hung registry gets a clear ERROR from us rather
than the API server's timeout.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from gate.errors import SealgateError
from gate.result import Result, Status

log = logging.getLogger(__name__)
K = TypeVar("K", bound=Hashable)
MAX_ENTRIES = 50_000
"""Far beyond the distinct images of a cluster; bounds memory if references churn."""
_PASSING = (Status.TRUSTED, Status.UNSUPPORTED)


@dataclass
class _Flight:
    done: threading.Event = field(default_factory=threading.Event)
    result: Result | None = None


@dataclass(frozen=True)
class Lookup(Generic[K]):
    """What ``get_many`` found: a result per key, and how many came from the cache."""

    results: Mapping[K, Result]
    hits: int
    misses: int


class VerdictCache(Generic[K]):
    """Thread-safe; ``verify`` is called with the keys nobody else is verifying."""

    def __init__(
        self,
        *,
        trusted_ttl: float = 300.0,
        failure_ttl: float = 30.0,
        wait: float = 8.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.trusted_ttl = trusted_ttl
        self.failure_ttl = failure_ttl
        self.wait = wait
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[K, tuple[float, Result]] = {}
        self._flights: dict[K, _Flight] = {}
        self.verifications = 0
        """Keys actually verified (misses that did the work): what tests and the benchmark count."""

    def cached(self, keys: Sequence[K]) -> Lookup[K] | None:
        """Every key's result if all are cached and unexpired; else None (nothing started).

        What the event loop asks first: an answer it can give without waiting.
        """
        now = self._clock()
        out: dict[K, Result] = {}
        with self._lock:
            for key in keys:
                entry = self._entries.get(key)
                if entry is None or entry[0] <= now:
                    return None
                out[key] = entry[1]
        return Lookup(out, len(out), 0)

    def get_many(
        self,
        keys: Sequence[K],
        verify: Callable[[list[K]], Mapping[K, Result]],
        unavailable: Callable[[K, str], Result],
        *,
        wait: float | None = None,
    ) -> Lookup[K]:
        """A result for every key: cached, awaited from another request, or verified now.

        ``wait`` overrides ``self.wait`` for this call (what is left of the request's budget).

        Misses are verified in a background thread and awaited for at most
        ``wait`` seconds, so an answer (ERROR, made by ``unavailable(key,
        why)``) goes back before the API server's own timeout even when a
        registry hangs; the verification still finishes and fills the cache.
        """
        now = self._clock()
        out: dict[K, Result] = {}
        mine: list[K] = []
        waits: list[tuple[K, _Flight]] = []
        hits = 0
        with self._lock:
            for key in dict.fromkeys(keys):
                entry = self._entries.get(key)
                if entry is not None and entry[0] > now:
                    out[key] = entry[1]
                    hits += 1
                    continue
                flight = self._flights.get(key)
                if flight is None:
                    flight = self._flights[key] = _Flight()
                    mine.append(key)
                waits.append((key, flight))
        if mine:
            threading.Thread(
                target=self._verify, args=(mine, verify, unavailable), name="verdict", daemon=True
            ).start()
        budget = self.wait if wait is None else wait
        deadline = time.monotonic() + budget
        for key, flight in waits:
            if (
                flight.done.wait(max(0.0, deadline - time.monotonic()))
                and flight.result is not None
            ):
                out[key] = flight.result
            else:
                why = f"the verification did not finish within {budget:.3g} s"
                out[key] = unavailable(key, why)
        return Lookup(out, hits, len(out) - hits)

    def _verify(
        self,
        mine: list[K],
        verify: Callable[[list[K]], Mapping[K, Result]],
        unavailable: Callable[[K, str], Result],
    ) -> None:
        """Verify ``mine``, then publish: to the cache (per TTL) and to everyone waiting."""
        found: Mapping[K, Result] = {}
        failure = "the verification did not finish"
        try:
            found = verify(mine)
        except SealgateError as e:  # an expected failure: its sentence, no traceback
            log.warning("verifying %d image(s) failed: %s", len(mine), e.message)
            failure = e.message
        except Exception as e:  # one error boundary: waiters get ERROR, never a hang
            log.exception("verifying %d image(s) failed", len(mine))
            failure = f"the verification failed: {e}"
        expires = self._clock()
        with self._lock:
            self.verifications += len(mine)
            for key in mine:
                result = found.get(key) or unavailable(key, failure)
                ttl = self._ttl(result)
                if ttl > 0:
                    self._entries.pop(key, None)
                    self._entries[key] = (expires + ttl, result)
                flight = self._flights.pop(key)
                flight.result = result
                flight.done.set()
            while len(self._entries) > MAX_ENTRIES:
                del self._entries[next(iter(self._entries))]  # the oldest first

    def _ttl(self, result: Result) -> float:
        if result.status is Status.ERROR:
            return 0.0
        return self.trusted_ttl if result.status in _PASSING else self.failure_ttl

    def forget(self, key: K) -> None:
        """Drop one verdict (the watchdog: an image was re-tagged or pulled)."""
        with self._lock:
            self._entries.pop(key, None)

    def prune(self) -> int:
        """Drop expired verdicts (nobody asked again within the TTL); returns how many."""
        now = self._clock()
        with self._lock:
            stale = [key for key, (expires, _) in self._entries.items() if expires <= now]
            for key in stale:
                del self._entries[key]
        return len(stale)

    def next_expiry(self) -> float | None:
        """The clock time the first kept verdict expires, or None when nothing is kept."""
        with self._lock:
            return min((expires for expires, _ in self._entries.values()), default=None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
