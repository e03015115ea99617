"""Verify many images at once: subject → precheck → gather → decide, one path for all.

Work is deduplicated before it is done: each distinct source is opened once,
each (store, place) is read once however many images share it, and every
read goes out as soon as the subject that needs it is known, on one bounded
pool; nothing waits on an unrelated image. For a registry image the critical
path is three round trips: the manifest, then the ``.sig`` manifest and the
referrers list side by side, then the signature blobs.

Every image has one error boundary: whatever its source, registry or store
throws at it becomes that image's ERROR with one sentence, never a traceback,
and never stops the other images.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gate import sources
from gate.errors import SealgateError
from gate.policy import Policy, Rule
from gate.provenance import AttestationCheck
from gate.refs import Reference, Source, SourceKind
from gate.registry import RegistryClient
from gate.result import Location, Result, Status
from gate.sources import LocalImage
from gate.verify._decide import Facts, decide, decide_index, worst
from gate.verify._evidence import Evidence, Place
from gate.verify._precheck import precheck
from gate.verify._stores import SignatureStore
from gate.verify._subjects import Platform, Subject, reader_table

log = logging.getLogger(__name__)
DEFAULT_WORKERS = 32


@dataclass(frozen=True)
class Target:
    """One image to verify, with every place it was found."""

    source: Source
    locations: tuple[Location, ...] = ()


class Verifier:
    """Verifies targets against one policy using the given stores."""

    def __init__(
        self,
        policy: Policy,
        *,
        client: RegistryClient | None,
        stores: Sequence[SignatureStore],
        workers: int = DEFAULT_WORKERS,
        now: datetime | None = None,
        require_attestations: Sequence[AttestationCheck] = (),
        open_local: Callable[[Source], LocalImage] = sources.open_local,
    ) -> None:
        self.policy = policy
        self.client = client
        self.stores = tuple(stores)
        self.workers = max(1, workers)
        self.now = now
        self.require_attestations = tuple(require_attestations)
        self.open_local = open_local
        rules = [*policy.rules, *([policy.default] if policy.default else [])]
        self.attestations = bool(self.require_attestations) or any(r.attestations for r in rules)

    def run(self, targets: Sequence[Target]) -> list[Result]:
        distinct = {t.source.text: t.source for t in targets}
        now = self.now or datetime.now(UTC)
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="verify") as pool:
            results = _Job(self, pool, now).run(list(distinct.values()))
        return [dataclasses.replace(results[t.source.text], sources=t.locations) for t in targets]

    def with_required(self, rule: Rule) -> Rule:
        if not self.require_attestations:
            return rule
        return dataclasses.replace(rule, attestations=rule.attestations + self.require_attestations)


@dataclass
class _Waiting:
    """A subject whose reads are still out."""

    subject: Subject
    rules: tuple[Rule, ...]
    reads: dict[Place, list[Future[Evidence]]]
    left: int


@dataclass
class _Job:
    """One run's event loop: futures in flight, and what to do when each completes."""

    verifier: Verifier
    pool: ThreadPoolExecutor
    now: datetime
    results: dict[str, Result] = field(default_factory=dict)
    _then: dict[Future[Any], list[Callable[[Future[Any]], None]]] = field(default_factory=dict)
    _reads: dict[tuple[int, Place], list[Future[Evidence]]] = field(default_factory=dict)
    _done: queue.SimpleQueue[Future[Any]] = field(default_factory=queue.SimpleQueue)
    """Futures as they complete, pushed by the workers: the loop wakes once per completion."""

    def run(self, found: Sequence[Source]) -> dict[str, Result]:
        readers = reader_table(
            self.verifier.client,
            self.verifier.open_local,
            check_drift=self.verifier.policy.explicit,
        )
        for source in found:
            if source.kind is SourceKind.REGISTRY and source.reference is not None:
                ref = source.reference
                _, early = precheck(
                    (ref,), self.verifier.policy, image=str(ref), digest=ref.digest,
                    pinned=ref.pinned,
                )  # fmt: skip
                if early is not None:
                    self.results[source.text] = early
                    continue
            reader = readers[source.kind]
            self._submit(
                lambda s=source, r=reader: r(s),  # type: ignore[misc]
                lambda f, s=source: self._on_subject(s, f),  # type: ignore[misc]
            )
        while self._then:
            future = self._done.get()
            for callback in self._then.pop(future):
                callback(future)
        return self.results

    def _submit(self, fn: Callable[[], Any], then: Callable[[Future[Any]], None]) -> Future[Any]:
        future = self.pool.submit(fn)
        self._then.setdefault(future, []).append(then)
        future.add_done_callback(self._done.put)  # runs at once if it is already done
        return future

    # --- subject and precheck -----------------------------------------------------------------

    def _on_subject(self, source: Source, future: Future[Subject]) -> None:
        try:
            subject = future.result()
        except Exception as e:
            self.results[source.text] = _error(_image(source), None, _unreadable(source, e))
            return
        rules, early = precheck(
            subject.names,
            self.verifier.policy,
            image=subject.image,
            digest=subject.digest,
            pinned=subject.reference.pinned if subject.reference else True,
        )
        if early is not None:
            self.results[source.text] = dataclasses.replace(early, extra=subject.extra)
            return
        rules = tuple(self.verifier.with_required(rule) for rule in rules)
        places = [*subject.places, *(p for pl in subject.platforms for p in pl.places)]
        if subject.tag_digest not in (None, subject.digest):
            places = []  # drift settles it
        waiting = _Waiting(subject, rules, {}, 0)
        for place in dict.fromkeys(places):
            waiting.reads[place] = self._read(place)
        # A read another image started may already be done and handled: count only open ones.
        open_reads = [f for fs in waiting.reads.values() for f in fs if f in self._then]
        waiting.left = len(open_reads)
        if waiting.left == 0:
            self._decide(source, waiting)
            return

        def counted(_: Future[Any]) -> None:
            self._on_read(source, waiting)

        for f in open_reads:
            self._then[f].append(counted)

    # --- gather --------------------------------------------------------------------------------

    def _read(self, place: Place) -> list[Future[Evidence]]:
        """Every store's reads for ``place``, started once per run and shared."""
        out: list[Future[Evidence]] = []
        for index, store in enumerate(self.verifier.stores):
            key = (index, place)
            if key not in self._reads:
                self._reads[key] = [
                    self._submit(read, lambda _f: None)
                    for read in store.reads(place, attestations=self.verifier.attestations)
                ]
            out += self._reads[key]
        return out

    def _on_read(self, source: Source, waiting: _Waiting) -> None:
        waiting.left -= 1
        if waiting.left == 0:
            self._decide(source, waiting)

    # --- decide --------------------------------------------------------------------------------

    def _decide(self, source: Source, waiting: _Waiting) -> None:
        subject = waiting.subject
        try:
            result = self._decide_subject(subject, waiting)
        except Exception as e:
            log.debug("deciding %s failed", subject.image, exc_info=True)
            result = _error(subject.image, subject.digest, _unreadable(source, e))
        self.results[source.text] = dataclasses.replace(
            result, extra={**subject.extra, **result.extra}
        )

    def _decide_subject(self, subject: Subject, waiting: _Waiting) -> Result:
        evidence = _evidence(waiting, subject.places)
        if isinstance(evidence, str):
            return _error(
                subject.image,
                subject.digest,
                f"cannot read signatures: {evidence}",
            )
        facts = Facts(
            _name_ref(subject),
            subject.digest,
            evidence,
            subject.tag_digest,
            subject.size,
            subject.aliases,
            image=subject.image,
        )
        verdicts = []
        for rule in waiting.rules:
            own = decide(facts, self.verifier.policy, rule, self.now)
            if subject.platforms:
                children = [
                    self._decide_platform(subject, p, rule, waiting) for p in subject.platforms
                ]
                own = decide_index(own, children, rule)
            verdicts.append(own)
        return worst(verdicts)

    def _decide_platform(
        self, subject: Subject, platform: Platform, rule: Rule, waiting: _Waiting
    ) -> Result:
        name = _name_ref(subject)
        ref = Reference(name.registry, name.path, None, platform.digest)
        evidence = _evidence(waiting, platform.places)
        if isinstance(evidence, str):
            result = _error(
                str(ref), platform.digest, f"cannot read signatures for this platform: {evidence}"
            )
        else:
            facts = Facts(ref, platform.digest, evidence)
            result = decide(facts, self.verifier.policy, rule, self.now)
        return dataclasses.replace(result, extra={**result.extra, "platform": platform.label})


def _evidence(waiting: _Waiting, places: Sequence[Place]) -> Evidence | str:
    """Everything read for ``places``, or the first reason a read failed."""
    total = Evidence()
    for place in places:
        for future in waiting.reads.get(place, []):
            error = future.exception()
            if error is not None:
                return _message(error)
            total = total + future.result()
    return total


def _name_ref(subject: Subject) -> Reference:
    """The name results and messages use: the reference, else the first name, pinned."""
    if subject.reference is not None:
        return subject.reference
    if subject.names:
        first = subject.names[0]
        return Reference(first.registry, first.path, None, subject.digest)
    return Reference("localhost", "local", None, subject.digest)


def _image(source: Source) -> str:
    return str(source.reference) if source.reference is not None else source.text


def _message(error: BaseException) -> str:
    """The sentence for the row, which names the image already."""
    if isinstance(error, SealgateError):
        return error.brief
    log.debug("unexpected error", exc_info=error)
    return f"unexpected {type(error).__name__} while reading it (malformed data?)"


def _unreadable(source: Source, error: BaseException) -> str:
    """Why the image could not be opened; a local source's path is the row's image already."""
    message = _message(error)
    if source.path and source.kind in _LOCAL_WHAT:
        root = source.path if Path(source.path).exists() else source.path.rpartition(":")[0]
        for path in dict.fromkeys(p for p in (source.path, root) if p):
            message = message.replace(path, _LOCAL_WHAT[source.kind])
    return message


_LOCAL_WHAT = {SourceKind.OCI: "the layout", SourceKind.DOCKER_ARCHIVE: "the archive"}


def _error(image: str, digest: str | None, reason: str) -> Result:
    return Result(image, digest, Status.ERROR, reason)
