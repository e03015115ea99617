"""Facts → one result (pure): which claims verify under the policy, and what that means.

``decide`` never touches the network or the disk; it imports nothing that
does (a test imports it with ``requests``, ``sqlite3`` and ``docker``
blocked). It reads as its checks, in order, each a named step that either
settles the verdict or hands on what it learned:

1. drift        the tag no longer points at the pinned digest
2. revocation   a revocation by a signer this rule trusts wins over any signature
3. signatures   which claims verify under a policy key, name this image, and are not from the future
4. threshold    enough distinct required signers
5. level        the best signer ranks high enough
6. age          the threshold still holds with signatures younger than ``max_age``
7. attestations every required attestation, signed by a required signer, for this image

Every claim is checked against every policy key, so a result can say who
signed even when that signer is not enough for this image's rule.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from gate import provenance, signatures
from gate.errors import PolicyFailureError, SealgateError
from gate.policy import Pinned, Platforms, Policy, Rule, TrustedSigner, Unsupported
from gate.refs import Reference
from gate.result import Result, Signer, Status
from gate.verify._evidence import Claim, ClaimKind, Evidence

CLOCK_SKEW = timedelta(minutes=5)
"""A signature dated later than now plus this does not count: no clock is that far off."""

SEVERITY = {
    Status.TRUSTED: 0,
    Status.UNSUPPORTED: 1,
    Status.UNKNOWN: 2,
    Status.UNTRUSTED: 3,
    Status.ERROR: 4,
}


@dataclass(frozen=True)
class Facts:
    """Everything known about one image before deciding."""

    ref: Reference
    """The name the image goes by (rules matched it; messages use it)."""
    digest: str
    evidence: Evidence
    tag_digest: str | None = None
    """What the tag points at now, when the reference had both tag and digest."""
    size: int | None = None
    aliases: frozenset[str] = frozenset()
    """Other digests that are provably the same image (image ID, proven manifest digests)."""
    image: str | None = None
    """How the result names the image; the reference when None."""


@dataclass(frozen=True)
class Valid:
    """A claim that verified under a policy key and names this image."""

    signer: TrustedSigner
    signed_at: datetime | None
    origin: str
    identity: str | None = None
    """For keyless signers: who the certificate names, and its OIDC issuer."""
    issuer: str | None = None


@dataclass
class _Findings:
    valid: list[Valid] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    unverified: int = 0


@dataclass
class _Run:
    """The state one decision builds up, step by step."""

    facts: Facts
    policy: Policy
    rule: Rule
    now: datetime
    warnings: list[str] = field(default_factory=list)
    found: _Findings = field(default_factory=_Findings)
    allowed: list[Valid] = field(default_factory=list)
    qualified: list[Valid] = field(default_factory=list)

    @property
    def digests(self) -> frozenset[str]:
        return frozenset({self.facts.digest, *self.facts.aliases})

    def result(self, status: Status, reason: str, **more: object) -> Result:
        best = _best(self.allowed)
        base = Result(
            self.facts.image or str(self.facts.ref),
            self.facts.digest,
            status,
            reason,
            signer=_signer(best) if best else None,
            signed_at=best.signed_at if best else None,
            level=best.signer.level if best else None,
            size=self.facts.size,
            warnings=tuple(dict.fromkeys(self.warnings)),
        )
        return replace(base, **more)  # type: ignore[arg-type]


# --- the steps, in order --------------------------------------------------------------------


def _drift(run: _Run) -> Result | None:
    tag_digest, digest = run.facts.tag_digest, run.facts.digest
    if tag_digest is None or tag_digest == digest:
        return None
    return run.result(
        Status.UNTRUSTED,
        f"the tag now points at {tag_digest[:19]}…, not the pinned digest (drift); "
        "check the new image, then pin it with `sealgate pin`",
    )


def _revocation(run: _Run) -> Result | None:
    """A revocation by a signer this rule trusts wins over any signature."""
    verdict: tuple[Status, str] | None = None
    for claim in run.facts.evidence.revocations:
        checked = _verify_claim(claim, run.policy, digests=sorted(run.digests))
        signer, payload = checked.signer, checked.payload
        if signer is None or payload is None:
            run.warnings.append(
                f"ignored a revocation ({claim.origin}) not signed by a trusted key"
            )
            continue
        try:
            statement = provenance.Statement.parse(payload)
        except SealgateError:
            run.warnings.append(f"ignored a malformed revocation by '{signer.name}'")
            continue
        if statement.predicate_type != provenance.REVOCATION_V1 or not any(
            map(statement.covers, run.digests)
        ):
            continue
        if signer.name not in run.rule.signers:
            run.warnings.append(
                f"ignored a revocation by '{signer.name}', who is not trusted for this image"
            )
            continue
        action = statement.predicate.get("action", "untrust")
        reason = statement.predicate.get("reason", "")
        reason = (reason.strip() if isinstance(reason, str) else "")[:500] or "no reason given"
        if action != "unsupport":  # an action we do not know is read as the stronger one
            return run.result(Status.UNTRUSTED, f"revoked by '{signer.name}': {reason}")
        verdict = (Status.UNSUPPORTED, f"marked unsupported by '{signer.name}': {reason}")
    if verdict is None:
        return None
    denied = run.rule.unsupported is Unsupported.DENY
    return run.result(verdict[0], verdict[1], unsupported_denied=denied)


def _signatures(run: _Run) -> Result | None:
    """Keep the claims that verify, name this image and are not from the future."""
    run.found = check_signatures(
        run.facts.evidence.signatures,
        run.facts.digest,
        run.policy,
        run.facts.aliases,
        run.now,
        tlog=run.rule.tlog,
    )
    run.allowed = [v for v in run.found.valid if v.signer.name in run.rule.signers]
    for v in run.found.valid:
        if v.signer.name not in run.rule.signers:
            run.warnings.append(
                f"signature by '{v.signer.name}' is valid "
                "but that signer is not required for this image"
            )
    if run.allowed or run.found.valid:
        run.warnings.extend(run.found.problems)
        return None
    if run.found.problems:
        run.warnings.extend(run.found.problems[1:])
        return run.result(Status.UNTRUSTED, run.found.problems[0])
    if run.found.unverified:
        return run.result(
            Status.UNTRUSTED,
            f"{_count(run.found.unverified, 'signature')} found but none verifies with a "
            "trusted key (tampered, or made by a signer the policy does not trust)",
        )
    return run.result(
        Status.UNKNOWN,
        "no signature found; sign it with `sealgate sign`",
    )


def _threshold(run: _Run, valid: Sequence[Valid], why: str = "") -> Result | None:
    names = sorted({v.signer.name for v in valid})
    if len(names) >= run.rule.threshold:
        return None
    missing = [n for n in run.rule.signers if n not in names]
    return run.result(
        Status.UNTRUSTED,
        f"{len(names)} of {run.rule.threshold} required signatures{why} "
        f"({', '.join(names) or 'none'}); missing: {', '.join(missing)}",
    )


def _level(run: _Run, valid: Sequence[Valid]) -> Result | None:
    # NOTE: the level is the image's, as vcn's was: that of its highest valid signer. A rule
    # can ask two signers of any level *and* one of level >= min_level (DESIGN.md's example).
    best = max(v.signer.level for v in valid)
    if run.rule.min_level is None or best >= run.rule.min_level:
        return None
    return run.result(
        Status.UNTRUSTED,
        f"no valid signature by a signer of level {run.rule.min_level} or higher (best: {best})",
    )


def _age(run: _Run) -> Result | None:
    """With ``max_age``, only signatures younger than it count, and they must still suffice."""
    run.qualified = run.allowed
    max_age = run.rule.max_age
    if max_age is None:
        return None
    fresh = [v for v in run.allowed if v.signed_at is not None and run.now - v.signed_at <= max_age]
    if not fresh:
        return run.result(
            Status.UNTRUSTED,
            f"every signature is older than {_days(max_age)} or has no signing time; sign again",
        )
    run.qualified = fresh
    return _threshold(run, fresh, f" younger than {_days(max_age)}") or _level(run, fresh)


def _attestations(run: _Run) -> Result:
    types, missing = _check_attestations(run)
    if missing:
        return run.result(Status.UNTRUSTED, missing, attestations=tuple(types))
    who = ", ".join(sorted({v.signer.name for v in run.qualified}))
    return run.result(Status.TRUSTED, f"signed by {who}", attestations=tuple(types))


def decide(facts: Facts, policy: Policy, rule: Rule, now: datetime) -> Result:
    """The one status for these facts under this rule."""
    run = _Run(facts, policy, rule, now)
    if rule.pinned is Pinned.WARN and not facts.ref.pinned:
        run.warnings.append("not pinned by digest; run `sealgate pin` to pin it")
    return (
        _drift(run)
        or _revocation(run)
        or _signatures(run)
        or _threshold(run, run.allowed)
        or _level(run, run.allowed)
        or _age(run)
        or _attestations(run)
    )


# --- several results into one ----------------------------------------------------------------


def worst(results: Sequence[Result]) -> Result:
    """The most severe result; a denied UNSUPPORTED is worse than a tolerated one."""
    return max(results, key=lambda r: (SEVERITY[r.status], r.unsupported_denied))


def decide_index(own: Result, platforms: Sequence[Result], rule: Rule) -> Result:
    """An index's verdict: the worst of its own and of the platforms that count against it.

    A platform that is merely unsigned is covered by the signed index naming its
    digest; one that is revoked, UNTRUSTED or unreadable fails the index. With
    ``platforms: each`` every platform must be TRUSTED on its own.
    """
    if rule.platforms is Platforms.EACH:
        counted = list(platforms)
    else:
        counted = [p for p in platforms if p.status is not Status.UNKNOWN]
    verdict = worst([own, *counted])
    if verdict is own:
        return replace(own, children=tuple(platforms))
    label = verdict.extra.get("platform") or verdict.digest or "?"
    return replace(
        own,
        status=verdict.status,
        reason=f"platform {label} ({(verdict.digest or '')[:19]}…): {verdict.reason}",
        unsupported_denied=verdict.unsupported_denied,
        children=tuple(platforms),
    )


# --- claims ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Checked:
    """Which policy signer verified a claim, over what, and when it provably signed."""

    signer: TrustedSigner | None
    payload: bytes | None = None
    time: datetime | None = None
    """The trusted signing time (the log's or a timestamp authority's), when one was checked."""
    why: str | None = None
    """Why no signer counted, when a keyless or transparency-log check said so."""
    identity: str | None = None
    """For keyless signers: the certificate's identity and OIDC issuer."""
    issuer: str | None = None


def _verify_claim(
    claim: Claim, policy: Policy, *, digests: Sequence[str] = (), tlog: bool = False
) -> _Checked:
    """The first policy signer whose key or identity verifies the claim.

    Key signers check the signature; when the claim carries a Rekor entry (or the
    rule says ``tlog: required``) the entry must verify too. Keyless signers check
    the Fulcio certificate, its SCT, the log entry or timestamp, and the identity,
    against the policy's trust roots. ``digests`` are the image's (a keyless
    bundle's statement must name one of them).
    """
    if claim.problem is not None:
        return _Checked(None)
    if (
        claim.kind is not ClaimKind.SIMPLE_SIGNING
        and claim.payload_type != signatures.INTOTO_PAYLOAD_TYPE
    ):
        return _Checked(None)  # NOTE: cosign pkg/cosign/verify.go rejects other DSSE payload types.
    why: str | None = None
    for signer in policy.signers.values():
        try:
            if signer.key is not None:
                checked = _by_key(claim, signer, policy, digests, tlog)
            elif signer.identity is not None:
                checked = _by_identity(claim, signer, policy, digests, tlog)
            else:
                continue
        except SealgateError as e:
            why = why or f"{claim.origin}: {e.message}"
            continue
        if checked is not None:
            return checked
    return _Checked(None, why=why)


def _by_key(
    claim: Claim, signer: TrustedSigner, policy: Policy, digests: Sequence[str], tlog: bool
) -> _Checked | None:
    assert signer.key is not None
    if not any(signer.key.verify(sig, claim.signed) for sig in claim.signatures):
        return None
    if claim.rekor_bundle is not None:
        # NOTE: cosign checks a key-signed layer's Rekor bundle (SET) whenever it is there.
        from gate.sigstore import verify_rekor_set

        verified = verify_rekor_set(
            claim.signed, claim.signatures[0], signer.key, claim.rekor_bundle, roots=policy.roots
        )
        return _Checked(signer, claim.payload, verified.signed_time)
    if not tlog:
        return _Checked(signer, claim.payload)
    if claim.bundle is None:
        raise KeylessTlogError(
            f"signature by '{signer.name}' has no transparency-log entry and the rule requires one"
        )
    from gate.sigstore import verify_bundle

    verified = verify_bundle(
        claim.bundle,
        _named(claim, digests),
        identity=None,
        key=signer.key,
        roots=policy.roots,
        require_tlog=True,
    )
    return _Checked(signer, claim.payload, verified.signed_time)


def _by_identity(
    claim: Claim, signer: TrustedSigner, policy: Policy, digests: Sequence[str], tlog: bool
) -> _Checked | None:
    assert signer.identity is not None
    from gate.sigstore import verify_bundle, verify_cosign_keyless

    if claim.certificate is not None and claim.signatures:
        verified = verify_cosign_keyless(
            claim.signed,
            claim.signatures[0],
            claim.certificate,
            claim.chain,
            claim.rekor_bundle,
            identity=signer.identity,
            roots=policy.roots,
            rfc3161_timestamp_json=claim.timestamp,
            require_tlog=tlog,
        )
        return _Checked(
            signer, claim.payload, verified.signed_time, None, verified.identity, verified.issuer
        )
    if claim.bundle is not None and _has_certificate(claim.bundle):
        verified = verify_bundle(
            claim.bundle,
            _named(claim, digests),
            identity=signer.identity,
            key=None,
            roots=policy.roots,
            require_tlog=tlog,
        )
        payload = verified.payload or claim.payload
        return _Checked(
            signer, payload, verified.signed_time, None, verified.identity, verified.issuer
        )
    return None


def _has_certificate(bundle: bytes) -> bool:
    """Whether a bundle is signed with a certificate (keyless) rather than a key."""
    try:
        material = json.loads(bundle).get("verificationMaterial") or {}
    except (ValueError, AttributeError, RecursionError):
        return False
    return isinstance(material, dict) and bool(
        material.get("certificate") or material.get("x509CertificateChain")
    )


def _named(claim: Claim, digests: Sequence[str]) -> str:
    """The image digest a DSSE claim's statement names (the first digest when unclear)."""
    try:
        statement = provenance.Statement.parse(claim.payload)
    except SealgateError:
        return digests[0] if digests else ""
    return next((d for d in digests if statement.covers(d)), digests[0] if digests else "")


class KeylessTlogError(PolicyFailureError):
    """A rule requires a transparency-log entry and the signature has none."""


def check_signatures(
    claims: Sequence[Claim],
    digest: str,
    policy: Policy,
    aliases: frozenset[str] = frozenset(),
    now: datetime | None = None,
    *,
    tlog: bool = False,
) -> _Findings:
    """Sort claims into valid ones, problems, and ones no trusted signer verifies."""
    found = _Findings()
    digests = (digest, *sorted(aliases))
    for claim in claims:
        if claim.problem is not None:
            found.problems.append(claim.problem)
            continue
        checked = _verify_claim(claim, policy, digests=digests, tlog=tlog)
        signer, payload = checked.signer, checked.payload
        if signer is None or payload is None:
            if checked.why is not None:
                found.problems.append(checked.why)
            else:
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
                covered = [d for d in digests if statement.covers(d)]
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
        signed_at = checked.time or signed_at  # a log's or a TSA's time beats the signer's word
        if now is not None and signed_at is not None and signed_at > now + CLOCK_SKEW:
            found.problems.append(
                f"signature by '{signer.name}' is dated {signed_at:%Y-%m-%d %H:%M} UTC, in the "
                "future; it does not count (check the signer's clock)"
            )
            continue
        found.valid.append(Valid(signer, signed_at, claim.origin, checked.identity, checked.issuer))
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
    except (ValueError, AttributeError, IndexError, TypeError, RecursionError):
        return None
    return signatures.timestamp_value(value)


def _check_attestations(run: _Run) -> tuple[list[str], str | None]:
    """Predicate types verified for this image, and why a required one is missing (or None)."""
    statements: list[tuple[provenance.Statement, str]] = []
    for claim in run.facts.evidence.attestations:
        checked = _verify_claim(claim, run.policy, digests=sorted(run.digests), tlog=run.rule.tlog)
        signer, payload = checked.signer, checked.payload
        if signer is None or payload is None or signer.name not in run.rule.signers:
            continue
        try:
            statement = provenance.Statement.parse(payload)
        except SealgateError:
            continue
        covered = [d for d in sorted(run.digests) if statement.covers(d)]
        if covered:
            statements.append((statement, covered[0]))
    types = sorted({s.predicate_type for s, _ in statements})
    for check in run.rule.attestations:
        reasons = [provenance.check_attestation(s, d, check) for s, d in statements]
        if not any(r is None for r in reasons):
            why = next(
                (r for r in reasons if r), f"no signed {check.predicate_type} attestation found"
            )
            return types, f"required attestation missing: {why}"
    return types, None


def _signer(valid: Valid) -> Signer:
    key = valid.signer.key
    return Signer(
        key.key_id if key is not None else None,
        valid.signer.name,
        identity=valid.identity,
        issuer=valid.issuer,
    )


def _best(valid: Sequence[Valid]) -> Valid | None:
    if not valid:
        return None
    return max(valid, key=lambda v: (v.signer.level, v.signed_at.timestamp() if v.signed_at else 0))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _days(age: timedelta) -> str:
    if age % timedelta(days=1) == timedelta(0):
        return _count(age.days, "day")
    return str(age)
