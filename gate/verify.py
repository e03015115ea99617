"""Verify many images at once: resolve, gather evidence, decide.

Work is deduplicated before it is done: each distinct reference is resolved
once and each distinct (repository, digest) has its evidence gathered once,
on a bounded thread pool that shares one pooled HTTP session per registry.
The decision itself is ``decide.decide`` (pure).

Registry requests per image, in the common case: the manifest (1), the
``.sig`` manifest (1), and its payload blob (1). Referrers are read only
when the ``.sig`` tag does not settle it, attestations only when a rule or
the user asks for them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from gate import decide as decision
from gate import sources
from gate.errors import NotFoundError, SealgateError
from gate.policy import Policy, Rule
from gate.provenance import AttestationCheck
from gate.refs import Reference, Repository, Source, SourceKind, parse
from gate.registry import INDEX_MEDIA_TYPES, Manifest, RegistryClient
from gate.result import Location, Result, Status
from gate.sources import LocalImage
from gate.stores import Evidence, SignatureStore

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True)
class Target:
    """One image to verify, with every place it was found."""

    source: Source
    locations: tuple[Location, ...] = ()


@dataclass(frozen=True)
class Resolved:
    """What a reference resolved to, or why it could not be."""

    digest: str
    manifest: Manifest | None = None
    tag_digest: str | None = None


class Verifier:
    """Verifies targets against one policy using the given stores."""

    def __init__(
        self,
        policy: Policy,
        *,
        client: RegistryClient | None,
        stores: Sequence[SignatureStore],
        workers: int = 8,
        now: datetime | None = None,
        require_attestations: Sequence[AttestationCheck] = (),
        open_local: Callable[[Source], LocalImage] = sources.open_local,
    ) -> None:
        self.policy = policy
        self.client = client
        self.stores = stores
        self.workers = workers
        self.now = now or datetime.now(UTC)
        self.require_attestations = tuple(require_attestations)
        self.open_local = open_local

    def run(self, targets: Sequence[Target]) -> list[Result]:
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="verify") as pool:
            self._pool = pool
            return self._run(targets)

    # --- stages -----------------------------------------------------------------------------

    def _run(self, targets: Sequence[Target]) -> list[Result]:
        results: dict[int, Result] = {}
        pending: list[tuple[int, Reference, Rule]] = []
        local_targets: list[tuple[int, Target]] = []
        for i, target in enumerate(targets):
            if target.source.kind is not SourceKind.REGISTRY:
                local_targets.append((i, target))
                continue
            ref = target.source.reference
            assert ref is not None
            rule, early = decision.precheck(ref, self.policy)
            if early is not None or rule is None:
                results[i] = early or _error(str(ref), None, "no rule applies")
                continue
            pending.append((i, ref, self._with_required(rule)))

        resolved = self._map({ref: ref for _, ref, _ in pending}, self._resolve)
        keys: dict[tuple[Repository, str], tuple[Repository, str]] = {}
        for _, ref, _ in pending:
            r = resolved[ref]
            if isinstance(r, Resolved) and r.digest is not None:
                keys[(ref.repository, r.digest)] = (ref.repository, r.digest)
                keys.update(
                    {(ref.repository, d): (ref.repository, d) for d in _children(r.manifest)}
                )
        need_att = any(rule.attestations for _, _, rule in pending)
        evidence = self._map(keys, lambda key: self._gather(key, attestations=need_att))

        second: dict[tuple[Repository, str], tuple[Repository, str]] = {}
        for i, ref, rule in pending:
            r = resolved[ref]
            results[i] = self._decide(ref, rule, r, evidence)
            if (
                results[i].status is not Status.TRUSTED
                and isinstance(r, Resolved)
                and r.digest is not None
            ):
                key = (ref.repository, r.digest)
                if key in evidence and not isinstance(evidence[key], SealgateError):
                    second[key] = key
        if second:
            more = self._map(second, self._gather_more)
            for key, extra in more.items():
                base = evidence[key]
                evidence[key] = (
                    extra
                    if isinstance(extra, SealgateError) or isinstance(base, SealgateError)
                    else base + extra
                )
            for i, ref, rule in pending:
                r = resolved[ref]
                if isinstance(r, Resolved) and (ref.repository, r.digest) in second:
                    results[i] = self._decide(ref, rule, r, evidence)

        for i, target in local_targets:
            results[i] = self._local(target)
        return [
            dataclasses.replace(results[i], sources=target.locations)
            for i, target in enumerate(targets)
        ]

    def _with_required(self, rule: Rule) -> Rule:
        if not self.require_attestations:
            return rule
        return dataclasses.replace(rule, attestations=rule.attestations + self.require_attestations)

    def _map(self, items: dict[K, Any], fn: Callable[[Any], V]) -> dict[K, V | SealgateError]:
        """Run ``fn`` over distinct values concurrently; errors become values."""

        def guarded(value: Any) -> V | SealgateError:
            try:
                return fn(value)
            except SealgateError as e:
                return e

        keys = list(items)
        return dict(zip(keys, self._pool.map(guarded, [items[k] for k in keys]), strict=True))

    def _resolve(self, ref: Reference) -> Resolved:
        assert self.client is not None
        if ref.digest is not None and ref.tag is not None and self.policy.explicit:
            current = self.client.get_manifest(ref.repository, ref.tag)
            if current.digest != ref.digest:
                return Resolved(ref.digest, None, tag_digest=current.digest)
            return Resolved(ref.digest, current, tag_digest=current.digest)
        manifest = self.client.get_manifest(ref.repository, ref.identifier)
        return Resolved(manifest.digest, manifest)

    def _gather(self, key: tuple[Repository, str], *, attestations: bool) -> Evidence:
        repo, digest = key
        found = Evidence()
        for store in self.stores:
            found = found + store.signatures(repo, digest)
            if attestations:
                found = found + store.attestations(repo, digest)
        return found

    def _gather_more(self, key: tuple[Repository, str]) -> Evidence:
        repo, digest = key
        found = Evidence()
        for store in self.stores:
            found = found + store.more(repo, digest)
        return found

    def _decide(
        self,
        ref: Reference,
        rule: Rule,
        resolved: Resolved | SealgateError,
        evidence: dict[Any, Evidence | SealgateError],
    ) -> Result:
        if isinstance(resolved, SealgateError):
            return _error(str(ref), ref.digest, _unreadable(ref, resolved))
        digest = resolved.digest
        size = resolved.manifest.descriptor.size if resolved.manifest else None
        found = evidence.get((ref.repository, digest))
        if found is None and resolved.tag_digest not in (None, digest):
            found = Evidence()
        if isinstance(found, SealgateError):
            return _error(
                str(ref), digest, f"cannot read signatures for {ref.name}: {found.message}"
            )
        facts = decision.Facts(ref, digest, found or Evidence(), resolved.tag_digest, size)
        result = decision.decide(facts, self.policy, rule, self.now)
        children = []
        for child in _children(resolved.manifest):
            child_found = evidence.get((ref.repository, child))
            child_ref = Reference(ref.registry, ref.path, None, child)
            if isinstance(child_found, SealgateError) or child_found is None:
                children.append(
                    _error(str(child_ref), child, "cannot read signatures for this platform")
                )
                continue
            children.append(
                decision.decide(
                    decision.Facts(child_ref, child, child_found), self.policy, rule, self.now
                )
            )
        if children:
            result = dataclasses.replace(
                result, children=tuple(_label_platforms(resolved.manifest, children))
            )
        return result

    def _local(self, target: Target) -> Result:
        """docker://, oci: and docker-archive: images.

        Every digest they are known by, in every store.
        """
        try:
            image = self.open_local(target.source)
            ref = _local_reference(image)
            rule = self.policy.rule_for(ref)
            if rule is None:
                return Result(
                    image.text,
                    image.digest,
                    Status.UNTRUSTED,
                    f"no rule in {self.policy.source} matches {ref.name} and the default is deny",
                )
            rule = self._with_required(rule)
            found = Evidence()
            in_registry = {r.digest for r in image.repo_digests}
            for store in self.stores:
                for r in image.repo_digests:
                    found = found + store.signatures(r.repository, r.digest or "")
                    if rule.attestations:
                        found = found + store.attestations(r.repository, r.digest or "")
                for digest in image.digests - in_registry:
                    found = found + store.signatures(None, digest)
                    if rule.attestations:
                        found = found + store.attestations(None, digest)
        except SealgateError as e:
            return _error(target.source.text, None, e.message)
        facts = decision.Facts(ref, image.digest, found, size=image.size, aliases=image.aliases)
        result = decision.decide(facts, self.policy, rule, self.now)
        extra = {**image.extra, "tags": list(image.tags), "created": image.created}
        return dataclasses.replace(result, image=image.text, extra=extra)


def _local_reference(image: LocalImage) -> Reference:
    """The name policy rules match a local image by: its first tag, else a repo digest."""
    for tag in image.tags:
        try:
            return parse(tag)
        except SealgateError:
            continue
    if image.repo_digests:
        return image.repo_digests[0]
    return Reference("localhost", "local", None, image.digest)


def _children(manifest: Manifest | None) -> list[str]:
    if manifest is None or manifest.media_type not in INDEX_MEDIA_TYPES:
        return []
    try:
        return [
            m["digest"]
            for m in manifest.json().get("manifests", [])
            if isinstance(m, dict) and "digest" in m
        ]
    except SealgateError:
        return []


def _label_platforms(manifest: Manifest | None, children: Iterable[Result]) -> list[Result]:
    platforms = {}
    if manifest is not None:
        for m in manifest.json().get("manifests", []):
            p = m.get("platform") or {}
            platforms[m.get("digest")] = "/".join(
                x for x in (p.get("os"), p.get("architecture"), p.get("variant")) if x
            )
    return [
        dataclasses.replace(c, extra={**c.extra, "platform": platforms.get(c.digest, "")})
        for c in children
    ]


def _unreadable(ref: Reference, error: SealgateError) -> str:
    if isinstance(error, NotFoundError):
        return f"{ref} was not found in {ref.registry}: {error.message}"
    return error.message


def _error(image: str, digest: str | None, reason: str) -> Result:
    return Result(image, digest, Status.ERROR, reason)
