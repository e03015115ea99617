"""The decision for one admission request: scope, images, verdicts, message and JSON Patch.

The same policy file and the same verifier as ``sealgate gate``; what is
added here is only what admission needs: which objects are in scope, a
message a person can act on, warnings, and pinning each tag to the digest
that was verified so the tag cannot move between admission and pull.

In enforce mode anything that fails the policy denies, and ERROR (the
registry could not be read) denies too: admission fails closed. Audit mode
allows everything and says in ``warnings`` what enforce would have denied.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from gate import manifests, policy, refs
from gate.admission._pull import PodAccess, PullSecrets
from gate.admission._review import Request, pointer
from gate.errors import ManifestError, SealgateError
from gate.manifests import Finding, Pointer
from gate.policy import Pinned, Policy
from gate.registry import RegistryClient
from gate.report import printable
from gate.result import FailOn, Result, Status, fails
from gate.verdicts import Lookup, VerdictCache
from gate.verify import Target, Verifier

log = logging.getLogger(__name__)

Key = tuple[str, str, bool, Hashable, tuple[int, ...], str | None]
"""(reference, policy digest, pinning relaxed because /mutate pins, store freshness, the rules
that apply in the namespace, who can read the image: ``PodAccess.scope``)."""


class Mode(StrEnum):
    ENFORCE = "enforce"
    AUDIT = "audit"


class PolicySource:
    """The policy file, reloaded when it changes (a ConfigMap update), looked at once a second.

    A reload that fails keeps the policy that was working and logs why: a typo
    in a ConfigMap must not turn into a cluster that admits nothing. It is
    tried again each look until it loads: the key file a new policy names may
    arrive later (a Secret synced after the ConfigMap), and nothing stamped
    would say so. The stamp is taken before reading, so a file that changes
    while the policy loads is read again at the next look.
    """

    def __init__(self, path: str, *, every: float = 1.0) -> None:
        self.path = path
        self.every = every
        self._lock = threading.Lock()
        self._stamp = policy.stamp(path, None)
        self._policy = policy.load(path)
        self._failed: str | None = None
        """Why the file's policy does not load (logged once per reason), while it does not."""
        self._checked = time.monotonic()

    def current(self) -> Policy:
        now = time.monotonic()
        if now - self._checked < self.every:
            return self._policy
        with self._lock:
            self._checked = now
            stamp = policy.stamp(self.path, self._policy)
            # A policy file that is gone (a ConfigMap being swapped) keeps the last one.
            if stamp[0][0] != "missing" and (stamp != self._stamp or self._failed):
                self._stamp = stamp
                try:
                    loaded = policy.load(self.path)
                except SealgateError as e:
                    if str(e) != self._failed:
                        log.error(
                            "policy %s not reloaded, keeping the last good one: %s", self.path, e
                        )
                    self._failed = str(e)
                    return self._policy
                self._failed = None
                if loaded.version != self._policy.version:  # not a second look at new files
                    log.warning("policy %s reloaded", self.path)
                self._policy = loaded
            return self._policy


@dataclass(frozen=True)
class Verdict:
    """The answer to one request, and what it was based on."""

    allowed: bool
    outcome: str
    """For metrics: ``allowed``, ``denied``, ``audited`` (would deny) or ``skipped``."""
    message: str | None = None
    warnings: tuple[str, ...] = ()
    patch: tuple[Mapping[str, Any], ...] = ()
    results: tuple[Result, ...] = ()
    hits: int = 0
    misses: int = 0


def relaxed(pol: Policy) -> Policy:
    """``pinned: required`` as ``warn``: for /mutate, whose patch pins every tag it allows."""

    def loosen(rule: policy.Rule) -> policy.Rule:
        return (
            dataclasses.replace(rule, pinned=Pinned.WARN)
            if rule.pinned is Pinned.REQUIRED
            else rule
        )

    default = loosen(pol.default) if pol.default is not None else None
    return dataclasses.replace(pol, rules=tuple(loosen(r) for r in pol.rules), default=default)


class Admitter:
    """Answers requests; ``verifier(policy, client)`` builds the gate's Verifier for one batch
    of images, with ``client`` the registry client of a pod's pull secrets (None: the shared one).
    """

    def __init__(
        self,
        policies: PolicySource,
        verifier: Callable[[Policy, RegistryClient | None], Verifier],
        cache: VerdictCache[Key],
        *,
        mode: Mode = Mode.ENFORCE,
        mutate: bool = False,
        freshness: Callable[[], Hashable] = lambda: 0,
        freshness_every: float = 1.0,
        pull_secrets: PullSecrets | None = None,
    ) -> None:
        self.policies = policies
        self.verifier = verifier
        self.pull_secrets = pull_secrets
        self.cache = cache
        self.mode = mode
        self.mutate = mutate
        self._freshness = freshness
        self._freshness_every = freshness_every
        self._fresh: tuple[float, Hashable] | None = None

    def review(self, request: Request, *, mutating: bool = False) -> Verdict:
        """The verdict for ``request``; ``mutating`` is /mutate with ``--mutate`` on."""
        verdict = self._review(request, mutating, cached_only=False)
        assert verdict is not None  # only a cached-only review gives up
        return verdict

    def review_cached(self, request: Request, *, mutating: bool = False) -> Verdict | None:
        """The verdict if every image's verdict is cached; else None, without waiting.

        Nothing is started: the caller asks ``review`` next, where it may wait.
        """
        return self._review(request, mutating, cached_only=True)

    def _review(self, request: Request, mutating: bool, *, cached_only: bool) -> Verdict | None:
        pol = self.policies.current()
        if request.operation not in ("CREATE", "UPDATE") or request.object is None:
            return Verdict(True, "skipped")
        if not pol.scope.covers(request.namespace, request.labels):
            return Verdict(True, "skipped")
        try:
            found = manifests.find_object_images(request.object, name=request.label)
        except ManifestError as e:
            return self._fail(request, [e.message], [])
        view = applicable(pol, request.namespace)
        pol = pol.in_namespace(request.namespace)
        access, wait = PodAccess(), None
        if self.pull_secrets is not None and found:
            if cached_only:
                return None  # reading pull secrets may wait on the Kubernetes API
            started = time.monotonic()
            access = self.pull_secrets.access(request.namespace, request.object, request.kind)
            # The API's time comes out of the verification's, so the answer still beats
            # the webhook's timeoutSeconds.
            spent = time.monotonic() - started
            wait = max(min(0.5, self.cache.wait), self.cache.wait - spent)
        fresh = self.freshness()
        lookup = self._verify(
            pol,
            found,
            relax=mutating,
            fresh=fresh,
            view=view,
            access=access,
            wait=wait,
            cached_only=cached_only,
        )
        if lookup is None:
            return None
        problems: list[str] = []
        warnings: list[str] = []
        patch: list[Mapping[str, Any]] = []
        results: list[Result] = []
        for finding, at in found:
            if finding.reference is None:
                problems.append(f"{finding.context}: image '{finding.text}' {finding.problem}")
                continue
            result = lookup.results[_key(pol, finding, mutating, fresh, view, access)]
            results.append(result)
            self._judge(finding, at, result, mutating, problems, warnings, patch)
        # kubectl shows these to a person, and the log keeps them: a registry's error text
        # in a reason must not recolour or move the cursor, or start a line of its own.
        problems = [printable(p) for p in problems]
        warnings = [printable(w) for w in warnings]
        if problems:
            verdict = self._fail(request, problems, warnings)
        else:
            verdict = Verdict(True, "allowed", warnings=tuple(warnings), patch=tuple(patch))
        return dataclasses.replace(
            verdict, results=tuple(results), hits=lookup.hits, misses=lookup.misses
        )

    def freshness(self) -> Hashable:
        """The stores' version (e.g. the ledger's size), asked at most once per interval.

        A revocation written to the ledger takes effect within ``freshness_every``
        seconds; asking on every request would cost more than the cached answer.
        """
        now = time.monotonic()
        seen = self._fresh
        if seen is None or now - seen[0] >= self._freshness_every:
            seen = (now, self._freshness())
            self._fresh = seen
        return seen[1]

    def _judge(
        self,
        finding: Finding,
        at: Pointer,
        result: Result,
        mutating: bool,
        problems: list[str],
        warnings: list[str],
        patch: list[Mapping[str, Any]],
    ) -> None:
        """Add what one image contributes: a problem, warnings, or a pinning patch."""
        what = f"{finding.context}: image {finding.text} is {result.status.value}"
        if fails(result.status, FailOn.UNKNOWN, unsupported_denied=result.unsupported_denied):
            problems.append(f"{what}: {result.reason}")
            return
        if result.status is Status.UNSUPPORTED:
            warnings.append(f"{what}: {result.reason}")
        assert finding.reference is not None
        if mutating and finding.reference.digest is None and result.digest is not None:
            value = f"{finding.text}@{result.digest}"
            patch.append({"op": "replace", "path": pointer(at), "value": value})
            return  # pinned now, so "not pinned" warnings no longer apply
        warnings.extend(f"{finding.context}: {w}" for w in result.warnings)

    def _fail(self, request: Request, problems: Sequence[str], warnings: Sequence[str]) -> Verdict:
        head = f"sealgate: {request.label} fails the image policy"
        if self.mode is Mode.AUDIT:
            notes = tuple(f"sealgate (audit mode, allowed): {p}" for p in problems)
            log.warning("audit: would deny %s: %s", request.label, "; ".join(problems))
            return Verdict(True, "audited", warnings=(*warnings, *notes))
        message = head + ":\n" + "\n".join(f"- {p}" for p in problems)
        log.warning("denied %s: %s", request.label, "; ".join(problems))
        return Verdict(False, "denied", message=message, warnings=tuple(warnings))

    def _verify(
        self,
        pol: Policy,
        found: Sequence[tuple[Finding, Pointer]],
        *,
        relax: bool,
        fresh: Hashable,
        view: tuple[int, ...],
        access: PodAccess,
        wait: float | None,
        cached_only: bool = False,
    ) -> Lookup[Key] | None:
        keys = [
            _key(pol, f, relax, fresh, view, access) for f, _ in found if f.reference is not None
        ]
        if access.error is not None:  # never cached: the next request asks the API again
            why = f"{access.error}; admission fails closed"
            results = {k: Result(k[0], None, Status.ERROR, why) for k in keys}
            return Lookup(results, 0, len(results))
        if cached_only:
            return self.cache.cached(keys)
        effective = relaxed(pol) if relax else pol

        def verify(todo: list[Key]) -> dict[Key, Result]:
            targets = [Target(refs.parse_source(key[0])) for key in todo]
            verifier = self.verifier(effective, access.client)
            return dict(zip(todo, verifier.run(targets), strict=True))

        return self.cache.get_many(keys, verify, _unavailable, wait=wait)


def applicable(pol: Policy, namespace: str) -> tuple[int, ...]:
    """Which rules apply in ``namespace`` (indexes; -1 the default): part of the cache key,
    so namespaces where the same rules apply share verdicts and others do not."""
    picked = [
        i for i, r in enumerate(pol.rules) if r.namespaces is None or r.namespaces.covers(namespace)
    ]
    default = pol.default
    if default is not None and (default.namespaces is None or default.namespaces.covers(namespace)):
        picked.append(-1)
    return tuple(picked)


def _key(
    pol: Policy,
    finding: Finding,
    relax: bool,
    fresh: Hashable,
    view: tuple[int, ...],
    access: PodAccess,
) -> Key:
    assert finding.reference is not None
    scope = access.scope(finding.reference.registry)
    version = pol.version or pol.digest or pol.source
    return (str(finding.reference), version, relax, fresh, view, scope)


def _unavailable(key: Key, why: str) -> Result:
    return Result(key[0], None, Status.ERROR, f"could not verify: {why}; admission fails closed")
