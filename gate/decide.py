"""Facts → one result (pure): which claims verify under the policy, and what that means.

``decide`` never touches the network or disk. It checks every claim against
every key the policy knows, so the result can say who signed even when that
signer is not enough for this image's rule.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from gate import provenance, signatures
from gate.errors import SealgateError
from gate.policy import Pinned, Policy, Rule, TrustedSigner, Unsupported
from gate.refs import Reference
from gate.result import Result, Signer, Status
from gate.stores import Claim, ClaimKind, Evidence


@dataclass(frozen=True)
class Valid:
    """A claim that verified under a policy key and names this digest."""

    signer: TrustedSigner
    signed_at: datetime | None
    origin: str


@dataclass
class _Findings:
    valid: list[Valid] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    unverified: int = 0


def _verify_claim(claim: Claim, policy: Policy) -> tuple[TrustedSigner | None, bytes | None]:
    """The first policy signer whose key verifies the claim, and the verified payload."""
    if claim.problem is not None:
        return None, None
    if (
        claim.kind is not ClaimKind.SIMPLE_SIGNING
        and claim.payload_type != signatures.INTOTO_PAYLOAD_TYPE
    ):
        return None, None  # NOTE: cosign pkg/cosign/verify.go rejects other DSSE payload types.
    for signer in policy.signers.values():
        if any(signer.key.verify(sig, claim.signed) for sig in claim.signatures):
            return signer, claim.payload
    return None, None


def check_signatures(
    claims: Sequence[Claim], digest: str, policy: Policy, aliases: frozenset[str] = frozenset()
) -> _Findings:
    found = _Findings()
    for claim in claims:
        if claim.problem is not None:
            found.problems.append(claim.problem)
            continue
        signer, payload = _verify_claim(claim, policy)
        if signer is None or payload is None:
            found.unverified += 1
            continue
        try:
            if claim.kind is ClaimKind.SIMPLE_SIGNING:
                parsed = signatures.parse_payload(payload)
                named, signed_at = parsed.digest, parsed.signed_at
            else:
                statement = provenance.Statement.parse(payload)
                if statement.predicate_type != signatures.COSIGN_SIGN_PREDICATE:
                    continue  # a valid attestation of something else, not a signature
                covered = [d for d in (digest, *aliases) if statement.covers(d)]
                named = covered[0] if covered else _first_digest(statement)
                signed_at = _subject_time(statement)
        except SealgateError as e:
            found.problems.append(
                f"{claim.origin}: signature by '{signer.name}' is malformed: {e.message}"
            )
            continue
        if named != digest and named not in aliases:
            found.problems.append(
                f"signature by '{signer.name}' names {named[:19]}…, not {digest[:19]}…"
            )
            continue
        found.valid.append(Valid(signer, signed_at, claim.origin))
    return found


def _first_digest(statement: provenance.Statement) -> str:
    for subject in statement.subjects:
        if "sha256" in subject.digest:
            return "sha256:" + subject.digest["sha256"]
    return "(no sha256 subject)"


def _subject_time(statement: provenance.Statement) -> datetime | None:
    """cosign v3 carries ``-a`` annotations, and our signing time, in the subject annotations."""
    try:
        subjects = json.loads(statement.raw or b"{}").get("subject", [])
        value = subjects[0].get("annotations", {}).get(signatures.TIMESTAMP_KEY)
    except (ValueError, AttributeError, IndexError, TypeError):
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    return None


@dataclass(frozen=True)
class Facts:
    """Everything known about one image reference before deciding."""

    ref: Reference
    digest: str
    evidence: Evidence
    tag_digest: str | None = None
    """What the tag points at now, when the reference had both tag and digest."""
    size: int | None = None
    aliases: frozenset[str] = frozenset()
    """Other digests of the same image (a local image's ID and repo digests)."""


def precheck(ref: Reference, policy: Policy) -> tuple[Rule | None, Result | None]:
    """Rules that need no I/O: registry allow-list, a matching rule, pinning."""
    rule = policy.rule_for(ref)
    image = str(ref)
    if not policy.registry_allowed(ref):
        allowed = ", ".join(policy.registries or ())
        return rule, Result(
            image,
            ref.digest,
            Status.UNTRUSTED,
            f"registry {ref.registry} is not allowed by the policy (allowed: {allowed})",
        )
    if rule is None:
        return None, Result(
            image,
            ref.digest,
            Status.UNTRUSTED,
            f"no rule in {policy.source} matches {ref.name} and the default is deny",
        )
    if rule.pinned is Pinned.REQUIRED and not ref.pinned:
        return rule, Result(
            image,
            None,
            Status.UNTRUSTED,
            f"{image} is not pinned by digest; run `sealgate pin` to pin it",
        )
    return rule, None


def decide(facts: Facts, policy: Policy, rule: Rule, now: datetime) -> Result:
    """The one status for these facts under this rule."""
    ref, digest = facts.ref, facts.digest
    base = Result(str(ref), digest, Status.UNKNOWN, "", size=facts.size)
    warnings: list[str] = []
    if rule.pinned is Pinned.WARN and not ref.pinned:
        warnings.append(f"{ref} is not pinned by digest")

    if facts.tag_digest is not None and facts.tag_digest != digest:
        return _with(
            base,
            Status.UNTRUSTED,
            f"tag {ref.tag} now points at {facts.tag_digest[:19]}…, "
            f"not the pinned {digest[:19]}… (drift)",
            warnings,
        )

    every = frozenset({digest, *facts.aliases})
    revoked = _revocation(facts.evidence.revocations, every, policy, rule, warnings)
    found = check_signatures(facts.evidence.signatures, digest, policy, facts.aliases)
    allowed = [v for v in found.valid if v.signer.name in rule.signers]
    for v in found.valid:
        if v.signer.name not in rule.signers:
            warnings.append(
                f"signature by '{v.signer.name}' is valid "
                f"but that signer is not required for {ref.name}"
            )
    best = _best(allowed)
    signer = Signer(best.signer.key.key_id, best.signer.name) if best else None
    base = Result(
        base.image,
        digest,
        base.status,
        "",
        signer=signer,
        signed_at=best.signed_at if best else None,
        level=best.signer.level if best else None,
        size=facts.size,
    )

    if revoked is not None:
        status, reason = revoked
        denied = status is Status.UNSUPPORTED and rule.unsupported is Unsupported.DENY
        return _with(base, status, reason, warnings, unsupported_denied=denied)

    if not found.valid and not allowed:
        if found.problems:
            return _with(base, Status.UNTRUSTED, found.problems[0], warnings + found.problems[1:])
        if found.unverified:
            return _with(
                base,
                Status.UNTRUSTED,
                f"{found.unverified} signature(s) found but none verifies with a trusted key "
                "(tampered, or made by a signer the policy does not trust)",
                warnings,
            )
        return _with(
            base,
            Status.UNKNOWN,
            f"no signature found for {digest[:19]}…; sign it with `sealgate sign`",
            warnings,
        )
    warnings.extend(found.problems)

    qualified = allowed
    if rule.max_age is not None:
        fresh = [
            v for v in qualified if v.signed_at is not None and now - v.signed_at <= rule.max_age
        ]
        if not fresh:
            return _with(
                base,
                Status.UNTRUSTED,
                f"every signature is older than {rule.max_age.days} days "
                "or has no signing time; sign again",
                warnings,
            )
        qualified = fresh
    names = sorted({v.signer.name for v in qualified})
    if len(names) < rule.threshold:
        missing = [n for n in rule.signers if n not in names]
        return _with(
            base,
            Status.UNTRUSTED,
            f"{len(names)} of {rule.threshold} required signatures ({', '.join(names) or 'none'}); "
            f"missing: {', '.join(missing)}",
            warnings,
        )
    # NOTE: the level is the image's, as vcn's was: that of its highest valid signer. A rule
    # can ask two signers of any level *and* one of level >= min_level (DESIGN.md's example).
    best_level = max(v.signer.level for v in qualified)
    if rule.min_level is not None and best_level < rule.min_level:
        return _with(
            base,
            Status.UNTRUSTED,
            f"no valid signature by a signer of level {rule.min_level} or higher "
            f"(best: {best_level})",
            warnings,
        )

    verified_types, missing_att = _attestations(facts.evidence.attestations, every, policy, rule)
    base = Result(
        base.image,
        digest,
        base.status,
        "",
        signer=base.signer,
        signed_at=base.signed_at,
        level=base.level,
        size=facts.size,
        attestations=tuple(verified_types),
    )
    if missing_att:
        return _with(base, Status.UNTRUSTED, missing_att, warnings)
    who = ", ".join(names)
    return _with(base, Status.TRUSTED, f"signed by {who}", warnings)


def _with(
    base: Result,
    status: Status,
    reason: str,
    warnings: list[str],
    *,
    unsupported_denied: bool = False,
) -> Result:
    """``base`` with a decision; every base here is undenied, so the default changes nothing."""
    return replace(
        base,
        status=status,
        reason=reason,
        warnings=tuple(dict.fromkeys(warnings)),
        unsupported_denied=unsupported_denied,
    )


def _best(valid: Sequence[Valid]) -> Valid | None:
    if not valid:
        return None
    return max(valid, key=lambda v: (v.signer.level, v.signed_at.timestamp() if v.signed_at else 0))


def _revocation(
    claims: Sequence[Claim],
    digests: frozenset[str],
    policy: Policy,
    rule: Rule,
    warnings: list[str],
) -> tuple[Status, str] | None:
    """A revocation by a signer this rule trusts wins over any signature."""
    verdict: tuple[Status, str] | None = None
    for claim in claims:
        signer, payload = _verify_claim(claim, policy)
        if signer is None or payload is None:
            warnings.append(f"ignored a revocation ({claim.origin}) not signed by a trusted key")
            continue
        try:
            statement = provenance.Statement.parse(payload)
        except SealgateError:
            warnings.append(f"ignored a malformed revocation by '{signer.name}'")
            continue
        if statement.predicate_type != provenance.REVOCATION_V1 or not any(
            map(statement.covers, digests)
        ):
            continue
        if signer.name not in rule.signers:
            warnings.append(
                f"ignored a revocation by '{signer.name}', who is not trusted for this image"
            )
            continue
        action = str(statement.predicate.get("action", "untrust"))
        reason = str(statement.predicate.get("reason", "")).strip() or "no reason given"
        if action == "untrust":
            return Status.UNTRUSTED, f"revoked by '{signer.name}': {reason}"
        verdict = (Status.UNSUPPORTED, f"marked unsupported by '{signer.name}': {reason}")
    return verdict


def _attestations(
    claims: Sequence[Claim], digests: frozenset[str], policy: Policy, rule: Rule
) -> tuple[list[str], str | None]:
    """Predicate types verified for this digest, and why a required one is missing (or None)."""
    statements: list[tuple[provenance.Statement, str]] = []
    for claim in claims:
        signer, payload = _verify_claim(claim, policy)
        if signer is None or payload is None or signer.name not in rule.signers:
            continue
        try:
            statement = provenance.Statement.parse(payload)
        except SealgateError:
            continue
        covered = [d for d in digests if statement.covers(d)]
        if covered:
            statements.append((statement, covered[0]))
    types = sorted({s.predicate_type for s, _ in statements})
    for check in rule.attestations:
        reasons = [provenance.check_attestation(s, d, check) for s, d in statements]
        if not any(r is None for r in reasons):
            why = next(
                (r for r in reasons if r), f"no signed {check.predicate_type} attestation found"
            )
            return types, f"required attestation missing: {why}"
    return types, None
