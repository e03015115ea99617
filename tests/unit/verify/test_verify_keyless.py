"""Keyless signers and transparency-log rules in the image decision, on real cosign signatures.

The claims are what the registry store makes of real ``.sig`` layers
(INDEX.md: ``fulcio-rekor``, a cosign keyless signature with its Rekor bundle;
``key-rekor``, a key signature with one), decided against policies that
name a keyless identity or require a log entry.
"""

from __future__ import annotations

import base64
import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gate import keys, policy
from gate.refs import parse
from gate.result import Status
from gate.verify import Claim, ClaimKind, Evidence, Facts, decide

DIGEST = "sha256:0489474da8ea22426ece86ace6c1c0026ab2fd3cdfbbd62b7e94650266c37d9a"
REF = parse("127.0.0.1:5000/cosign-signed/fulcio-rekor-1@" + DIGEST)
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _claim(vectors: Path, name: str, *, keyless: bool) -> Claim:
    extracted = vectors / "cosign-containers-image" / "extracted"
    payload = (extracted / f"{name}.payload").read_bytes()
    return Claim(
        f"{name} .sig layer",
        ClaimKind.SIMPLE_SIGNING,
        payload,
        payload,
        (base64.b64decode((extracted / f"{name}.sig.b64").read_bytes()),),
        certificate=(extracted / f"{name}.cert.pem").read_bytes() if keyless else None,
        chain=(extracted / f"{name}.chain.pem").read_bytes() if keyless else None,
        rekor_bundle=(extracted / f"{name}.rekor-bundle.json").read_bytes(),
    )


def _keyless_policy(subject: str, issuer: str = "https://github.com/login/oauth") -> policy.Policy:
    return policy.loads(
        (
            "version: 1\n"
            "signers:\n"
            "  - name: release\n"
            f"    keyless: {{issuer: '{issuer}', subject: '{subject}'}}\n"
            "    level: 2\n"
            "rules:\n  - match: '**'\n    tlog: required\n"
        ).encode()
    )


def test_a_cosign_keyless_signature_is_trusted_for_its_identity(vectors: Path) -> None:
    pol = _keyless_policy("mitr@redhat.com")
    evidence = Evidence(signatures=(_claim(vectors, "fulcio-rekor", keyless=True),))
    result = decide(Facts(REF, DIGEST, evidence), pol, pol.rules[0], NOW)
    assert result.status is Status.TRUSTED, result.reason
    assert result.signer is not None and result.signer.key_id is None
    assert (result.signer.identity, result.signer.issuer) == (
        "mitr@redhat.com",
        "https://github.com/login/oauth",
    )
    assert result.signed_at == datetime(2023, 1, 20, 20, 51, 33, tzinfo=UTC)  # Rekor's time
    assert result.to_dict()["signer"]["identity"] == "mitr@redhat.com"


@pytest.mark.parametrize(
    ("subject", "issuer", "reason"),
    [
        ("mitr@redhat.co", "https://github.com/login/oauth", "identity"),
        ("mitr@redhat.com", "https://token.actions.githubusercontent.com", "issuer"),
    ],
)
def test_another_identity_or_issuer_is_untrusted_and_says_which(
    vectors: Path, subject: str, issuer: str, reason: str
) -> None:
    pol = _keyless_policy(subject, issuer)
    evidence = Evidence(signatures=(_claim(vectors, "fulcio-rekor", keyless=True),))
    result = decide(Facts(REF, DIGEST, evidence), pol, pol.rules[0], NOW)
    assert result.status is Status.UNTRUSTED and reason in result.reason


def test_a_tampered_rekor_bundle_is_untrusted(vectors: Path) -> None:
    pol = _keyless_policy("mitr@redhat.com")
    claim = _claim(vectors, "fulcio-rekor", keyless=True)
    forged = claim.rekor_bundle.replace(b'"integratedTime":', b'"integratedTime":1')  # type: ignore[union-attr]
    result = decide(
        Facts(REF, DIGEST, Evidence(signatures=(dataclasses.replace(claim, rekor_bundle=forged),))),
        pol,
        pol.rules[0],
        NOW,
    )
    assert result.status is Status.UNTRUSTED


def _key_policy(vectors: Path, tlog: str) -> policy.Policy:
    pub = keys.load_public_key(str(vectors / "cosign-containers-image" / "cosign2.pub"))
    pem = pub.pem.decode().replace("\n", "\n      ")
    return policy.loads(
        (
            "version: 1\nsigners:\n  - name: ci\n    key: |\n      "
            + pem
            + f"\nrules:\n  - match: '**'\n    tlog: {tlog}\n"
        ).encode()
    )


def test_a_key_signature_with_a_rekor_entry_satisfies_tlog_required(vectors: Path) -> None:
    pol = _key_policy(vectors, "required")
    claim = _claim(vectors, "key-rekor", keyless=False)
    result = decide(Facts(REF, DIGEST, Evidence(signatures=(claim,))), pol, pol.rules[0], NOW)
    assert result.status is Status.TRUSTED, result.reason
    without = dataclasses.replace(claim, rekor_bundle=None)
    result = decide(Facts(REF, DIGEST, Evidence(signatures=(without,))), pol, pol.rules[0], NOW)
    assert result.status is Status.UNTRUSTED and "transparency-log entry" in result.reason
    optional = _key_policy(vectors, "optional")
    result = decide(
        Facts(REF, DIGEST, Evidence(signatures=(without,))), optional, optional.rules[0], NOW
    )
    assert result.status is Status.TRUSTED


def test_a_key_signature_whose_rekor_entry_names_another_signature_is_untrusted(
    vectors: Path,
) -> None:
    pol = _key_policy(vectors, "optional")
    claim = _claim(vectors, "key-rekor", keyless=False)
    other = (
        vectors / "cosign-containers-image" / "extracted" / "fulcio-rekor.rekor-bundle.json"
    ).read_bytes()
    forged = dataclasses.replace(claim, rekor_bundle=other)
    result = decide(Facts(REF, DIGEST, Evidence(signatures=(forged,))), pol, pol.rules[0], NOW)
    assert result.status is Status.UNTRUSTED


def test_keyless_policy_errors_name_the_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_text(
        "version: 1\nsigners:\n  - name: r\n    keyless: {issuer: x, subject_regex: '('}\n"
        "rules:\n  - match: '**'\n"
    )
    with pytest.raises(Exception, match=r"does not compile") as info:
        policy.load(bad)
    assert getattr(info.value, "exit_code", None) == 2
    bad.write_text(
        "version: 1\ntrust: {roots: [missing.json]}\n"
        "signers:\n  - name: r\n    keyless: {issuer: x, subject: y}\nrules:\n  - match: '**'\n"
    )
    with pytest.raises(Exception, match=r"trust roots") as info:
        policy.load(bad)
    assert getattr(info.value, "exit_code", None) == 2
