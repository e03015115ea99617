"""The pure decision: claims and a policy rule in, one status out."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from gate import dsse, keys, provenance, signatures
from gate.policy import Pinned, Policy, Rule, TrustedSigner, Unsupported
from gate.refs import parse
from gate.result import Status
from gate.verify import Claim, ClaimKind, Evidence, Facts, decide, dsse_claim, precheck

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
DIGEST = "sha256:" + "1" * 64
OTHER = "sha256:" + "2" * 64
REF = parse("127.0.0.1:5000/acme/app:1.0@" + DIGEST)

CI = keys.generate()
RELEASE = keys.generate("ed25519")
STRANGER = keys.generate()


def _policy(**rule: object) -> tuple[Policy, Rule]:
    signers = {
        "ci": TrustedSigner("ci", CI.public_key, 1, "ci"),
        "release": TrustedSigner("release", RELEASE.public_key, 2, "release"),
    }
    r = Rule("**", ("ci", "release"), **rule)  # type: ignore[arg-type]
    return Policy(signers, (r,), registries=("127.0.0.1:5000",)), r


def _sig(
    key: keys.PrivateKey, digest: str = DIGEST, at: datetime = NOW - timedelta(days=1)
) -> Claim:
    payload = signatures.make_payload(
        digest, "127.0.0.1:5000/acme/app", {"timestamp": int(at.timestamp())}
    )
    return Claim("test .sig", ClaimKind.SIMPLE_SIGNING, payload, payload, (key.sign(payload),))


def _bundle_sig(key: keys.PrivateKey, digest: str = DIGEST) -> Claim:
    statement = signatures.sign_statement(digest, {"timestamp": int(NOW.timestamp())})
    envelope = dsse.sign(statement, signatures.INTOTO_PAYLOAD_TYPE, key)
    return dsse_claim("referrer", envelope.to_dict())


def _revocation(key: keys.PrivateKey, action: str = "untrust") -> Claim:
    statement = provenance.revocation(
        "127.0.0.1:5000/acme/app", DIGEST, action, "CVE-2026-0001", time=NOW
    )  # type: ignore[arg-type]
    return dsse_claim("revocation", provenance.sign_statement(statement, key).to_dict())


def _decide(evidence: Evidence, ref=REF, tag_digest=None, **rule: object):
    pol, r = _policy(**rule)
    return decide(Facts(ref, DIGEST, evidence, tag_digest), pol, r, NOW)


def test_trusted_with_one_valid_signature() -> None:
    result = _decide(Evidence(signatures=(_sig(CI),)))
    assert result.status is Status.TRUSTED
    assert result.signer is not None and result.signer.name == "ci"
    assert result.signer.key_id == CI.public_key.key_id
    assert result.level == 1
    assert result.signed_at == NOW - timedelta(days=1) - timedelta(microseconds=0)


def test_cosign_v3_bundle_signature_counts() -> None:
    assert _decide(Evidence(signatures=(_bundle_sig(RELEASE),))).status is Status.TRUSTED


def test_no_signature_is_unknown() -> None:
    result = _decide(Evidence())
    assert result.status is Status.UNKNOWN
    assert "no signature found" in result.reason


def test_foreign_or_tampered_signature_is_untrusted() -> None:
    result = _decide(Evidence(signatures=(_sig(STRANGER),)))
    assert result.status is Status.UNTRUSTED
    assert "none verifies with a trusted key" in result.reason


@pytest.mark.parametrize("what", ["payload", "signature"])
def test_flipping_one_byte_turns_trusted_into_untrusted(what: str) -> None:
    good = _sig(CI)
    if what == "payload":
        flipped = bytearray(good.payload)
        flipped[40] ^= 1
        bad = dataclasses.replace(good, payload=bytes(flipped), signed=bytes(flipped))
    else:
        sig = bytearray(good.signatures[0])
        sig[-3] ^= 1
        bad = dataclasses.replace(good, signatures=(bytes(sig),))
    assert _decide(Evidence(signatures=(good,))).status is Status.TRUSTED
    assert _decide(Evidence(signatures=(bad,))).status is Status.UNTRUSTED


def test_signature_naming_another_digest_is_untrusted() -> None:
    result = _decide(Evidence(signatures=(_sig(CI, OTHER),)))
    assert result.status is Status.UNTRUSTED
    assert "names sha256:2222" in result.reason


def test_malformed_claim_is_untrusted_with_its_problem() -> None:
    claim = Claim("x", ClaimKind.SIMPLE_SIGNING, problem="layer blob does not match its digest")
    result = _decide(Evidence(signatures=(claim,)))
    assert result.status is Status.UNTRUSTED and "does not match" in result.reason


def test_threshold_needs_distinct_signers() -> None:
    one = Evidence(signatures=(_sig(CI), _sig(CI)))
    result = _decide(one, threshold=2)
    assert result.status is Status.UNTRUSTED
    assert "1 of 2 required signatures" in result.reason and "missing: release" in result.reason
    both = Evidence(signatures=(_sig(CI), _bundle_sig(RELEASE)))
    assert _decide(both, threshold=2).status is Status.TRUSTED


def test_min_level_and_max_age() -> None:
    assert _decide(Evidence(signatures=(_sig(CI),)), min_level=2).status is Status.UNTRUSTED
    assert _decide(Evidence(signatures=(_sig(RELEASE),)), min_level=2).status is Status.TRUSTED
    old = Evidence(signatures=(_sig(CI, at=NOW - timedelta(days=100)),))
    assert _decide(old, max_age=timedelta(days=90)).status is Status.UNTRUSTED
    assert _decide(old, max_age=timedelta(days=120)).status is Status.TRUSTED


def test_signer_outside_rule_is_not_enough() -> None:
    pol, _ = _policy()
    rule = Rule("**", ("release",))
    result = decide(Facts(REF, DIGEST, Evidence(signatures=(_sig(CI),))), pol, rule, NOW)
    assert result.status is Status.UNTRUSTED and "missing: release" in result.reason
    assert any("not required" in w for w in result.warnings)


def test_revocation_by_trusted_signer_wins() -> None:
    evidence = Evidence(signatures=(_sig(CI),), revocations=(_revocation(RELEASE),))
    result = _decide(evidence)
    assert result.status is Status.UNTRUSTED and "CVE-2026-0001" in result.reason


def test_unsupport_warns_or_denies() -> None:
    evidence = Evidence(signatures=(_sig(CI),), revocations=(_revocation(CI, "unsupport"),))
    warn = _decide(evidence)
    assert warn.status is Status.UNSUPPORTED and not warn.unsupported_denied
    deny = _decide(evidence, unsupported=Unsupported.DENY)
    assert deny.status is Status.UNSUPPORTED and deny.unsupported_denied


def test_revocation_by_untrusted_key_is_ignored_and_said() -> None:
    evidence = Evidence(signatures=(_sig(CI),), revocations=(_revocation(STRANGER),))
    result = _decide(evidence)
    assert result.status is Status.TRUSTED
    assert any("ignored a revocation" in w for w in result.warnings)


def test_tag_drift_is_untrusted() -> None:
    result = _decide(Evidence(signatures=(_sig(CI),)), tag_digest=OTHER)
    assert result.status is Status.UNTRUSTED and "drift" in result.reason


def test_required_attestation() -> None:
    check = provenance.AttestationCheck(
        provenance.SLSA_PROVENANCE_V1, builder="https://ci.example/builder"
    )
    missing = _decide(Evidence(signatures=(_sig(CI),)), attestations=(check,))
    assert missing.status is Status.UNTRUSTED and "required attestation missing" in missing.reason
    statement = provenance.Statement(
        (provenance.Subject("127.0.0.1:5000/acme/app", {"sha256": "1" * 64}),),
        provenance.SLSA_PROVENANCE_V1,
        {
            "buildDefinition": {"buildType": "x", "externalParameters": {}},
            "runDetails": {"builder": {"id": "https://ci.example/builder"}},
        },
    )
    att = dsse_claim("att", provenance.sign_statement(statement, CI).to_dict())
    ok = _decide(Evidence(signatures=(_sig(CI),), attestations=(att,)), attestations=(check,))
    assert ok.status is Status.TRUSTED
    assert ok.attestations == (provenance.SLSA_PROVENANCE_V1,)


def _precheck(ref, pol):
    return precheck((ref,), pol, image=str(ref), digest=ref.digest, pinned=ref.pinned)


def test_precheck_registry_pinning_and_default_deny() -> None:
    pol, _ = _policy(pinned=Pinned.REQUIRED)
    _, early = _precheck(parse("docker.io/library/nginx@" + DIGEST), pol)
    assert early is not None and "not allowed" in early.reason
    _, early = _precheck(parse("127.0.0.1:5000/acme/app:1.0"), pol)
    assert early is not None and "not pinned" in early.reason
    strict = Policy(pol.signers, (Rule("ghcr.io/**", ("ci",)),))
    _, early = _precheck(REF, strict)
    assert early is not None and "no rule" in early.reason
    _, early = _precheck(REF, pol)
    assert early is None
