"""The verdict cache: TTLs per outcome, ERROR never kept, one verification per key in flight."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

from gate.result import Result, Status
from gate.verdicts import VerdictCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _result(key: str, status: Status) -> Result:
    return Result(key, "sha256:" + "a" * 64, status, "because")


def _unavailable(key: str, why: str) -> Result:
    return Result(key, None, Status.ERROR, why)


def test_passing_and_failing_verdicts_expire_at_their_own_ttl_and_errors_are_not_kept() -> None:
    clock = Clock()
    cache: VerdictCache[str] = VerdictCache(trusted_ttl=100, failure_ttl=10, clock=clock)
    statuses = {"ok": Status.TRUSTED, "bad": Status.UNKNOWN, "err": Status.ERROR}
    calls: list[list[str]] = []

    def verify(keys: list[str]) -> Mapping[str, Result]:
        calls.append(sorted(keys))
        return {k: _result(k, statuses[k]) for k in keys}

    first = cache.get_many(["ok", "bad", "err", "ok"], verify, _unavailable)
    assert (first.hits, first.misses, calls) == (0, 3, [["bad", "err", "ok"]])
    clock.now = 5
    again = cache.get_many(["ok", "bad", "err"], verify, _unavailable)
    assert (again.hits, calls[-1]) == (2, ["err"])
    clock.now = 50
    cache.get_many(["ok", "bad"], verify, _unavailable)
    assert calls[-1] == ["bad"]
    clock.now = 200
    cache.get_many(["ok"], verify, _unavailable)
    assert calls[-1] == ["ok"]
    assert cache.verifications == 6


def test_concurrent_lookups_of_one_key_wait_for_one_verification() -> None:
    cache: VerdictCache[str] = VerdictCache()
    started, release = threading.Event(), threading.Event()
    calls: list[list[str]] = []

    def verify(keys: list[str]) -> Mapping[str, Result]:
        calls.append(keys)
        started.set()
        release.wait(10)
        return {k: _result(k, Status.TRUSTED) for k in keys}

    answers: list[Status] = []

    def lookup() -> None:
        answers.append(cache.get_many(["img"], verify, _unavailable).results["img"].status)

    first = threading.Thread(target=lookup)
    first.start()
    assert started.wait(10)
    others = [threading.Thread(target=lookup) for _ in range(5)]
    for t in others:
        t.start()
    release.set()
    for t in [first, *others]:
        t.join(10)
    assert calls == [["img"]]
    assert answers == [Status.TRUSTED] * 6


def test_a_verification_that_raises_gives_error_and_leaves_nothing_in_flight() -> None:
    cache: VerdictCache[str] = VerdictCache()

    def boom(keys: list[str]) -> Mapping[str, Result]:
        raise RuntimeError("registry client bug")

    failed = cache.get_many(["img"], boom, _unavailable).results["img"]
    assert failed.status is Status.ERROR and "registry client bug" in failed.reason
    later = cache.get_many(
        ["img"], lambda ks: {k: _result(k, Status.TRUSTED) for k in ks}, _unavailable
    )
    assert later.results["img"].status is Status.TRUSTED  # nothing stuck in flight, nothing cached


def test_a_slow_verification_answers_error_in_time_and_still_fills_the_cache() -> None:
    cache: VerdictCache[str] = VerdictCache(wait=0.2)
    release, finished = threading.Event(), threading.Event()

    def slow(keys: list[str]) -> Mapping[str, Result]:
        release.wait(10)
        finished.set()
        return {k: _result(k, Status.TRUSTED) for k in keys}

    started = time.monotonic()
    first = cache.get_many(["img"], slow, _unavailable).results["img"]
    assert time.monotonic() - started < 2
    assert first.status is Status.ERROR and "did not finish within 0.2 s" in first.reason
    release.set()
    assert finished.wait(10)
    for _ in range(100):  # published just after verify returns
        if len(cache):
            break
        time.sleep(0.01)
    hit = cache.get_many(["img"], slow, _unavailable)
    assert (hit.hits, hit.results["img"].status) == (1, Status.TRUSTED)


def test_forget_prune_and_next_expiry_for_the_watchdog() -> None:
    clock = Clock()
    cache: VerdictCache[str] = VerdictCache(trusted_ttl=60, failure_ttl=60, clock=clock)
    verified: list[str] = []

    def verify(keys: list[str]) -> Mapping[str, Result]:
        verified.extend(keys)
        return {k: _result(k, Status.TRUSTED) for k in keys}

    assert cache.next_expiry() is None
    cache.get_many(["a"], verify, _unavailable)
    clock.now = 30.0
    cache.get_many(["b"], verify, _unavailable)
    assert cache.next_expiry() == 60.0  # a's
    cache.forget("b")
    cache.get_many(["b"], verify, _unavailable)  # re-verified after forget
    assert verified == ["a", "b", "b"]
    clock.now = 61.0
    assert cache.prune() == 1 and len(cache) == 1
    assert cache.next_expiry() == 90.0


def test_cached_answers_only_when_every_key_is_fresh_and_starts_nothing() -> None:
    """What the event loop asks before handing a request to a worker: all or None."""
    clock = Clock()
    cache: VerdictCache[str] = VerdictCache(trusted_ttl=100, failure_ttl=10, clock=clock)
    statuses = {"ok": Status.TRUSTED, "bad": Status.UNKNOWN, "err": Status.ERROR}

    def verify(keys: list[str]) -> Mapping[str, Result]:
        return {k: _result(k, statuses[k]) for k in keys}

    assert cache.cached(["ok"]) is None and cache.verifications == 0  # nothing started
    cache.get_many(["ok", "bad", "err"], verify, _unavailable)
    both = cache.cached(["ok", "bad", "ok"])
    assert both is not None and (both.hits, both.misses) == (2, 0)
    assert both.results["bad"].status is Status.UNKNOWN
    assert cache.cached(["ok", "err"]) is None  # ERROR is never kept, so it must be verified
    clock.now = 50
    assert cache.cached(["ok", "bad"]) is None  # the failure expired at 10 s
    assert cache.cached(["ok"]) is not None
    clock.now = 150
    assert cache.cached(["ok"]) is None
    assert cache.verifications == 3
