"""Every keyless vector of INDEX.md (A fulcio-rekor and key-rekor, C, D) gets its answer.

The vectors are real signatures by cosign, GitHub and sigstore-js, read from
tests/assets/vectors; the roots are the embedded public-good root or the
vector's own.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from gate.keys import load_public_key
from gate.sigstore import (
    Identity,
    KeylessError,
    TrustedRoot,
    split_bundles,
    verify_bundle,
    verify_cosign_keyless,
    verify_rekor_set,
)

GITHUB = "https://token.actions.githubusercontent.com"
ANY = ".*"


@pytest.fixture(scope="module")
def public_good() -> TrustedRoot:
    return TrustedRoot.embedded()


def _read(vectors: Path, name: str) -> bytes:
    return (vectors / "cosign-containers-image" / "extracted" / name).read_bytes()


def _sig(vectors: Path, name: str) -> bytes:
    return base64.b64decode(_read(vectors, name))


def _fulcio_rekor(
    vectors: Path, roots: TrustedRoot, identity: Identity, bundle: str = "fulcio-rekor"
):
    return verify_cosign_keyless(
        _read(vectors, "fulcio-rekor.payload"),
        _sig(vectors, "fulcio-rekor.sig.b64"),
        _read(vectors, "fulcio-rekor.cert.pem"),
        _read(vectors, "fulcio-rekor.chain.pem"),
        _read(vectors, f"{bundle}.rekor-bundle.json"),
        identity=identity,
        roots=roots,
    )


def test_fulcio_rekor_is_valid_at_its_integrated_time(
    vectors: Path, public_good: TrustedRoot
) -> None:
    who = Identity(issuer="https://github.com/login/oauth", subject="mitr@redhat.com")
    v = _fulcio_rekor(vectors, public_good, who)
    assert (v.identity, v.issuer, v.log_index) == ("mitr@redhat.com", who.issuer, 11605770)
    assert v.signed_time.isoformat() == "2023-01-20T20:51:33+00:00"  # the cert expired long ago
    assert "tlog SET" in v.checks and "tlog entry body" in v.checks


@pytest.mark.parametrize(
    ("identity", "message"),
    [
        (Identity(issuer="https://github.com/login/oauth", subject="mitr@redhat.co"), "identity"),
        (Identity(issuer=GITHUB, subject="mitr@redhat.com"), "OIDC issuer"),
        (Identity(issuer="https://github.com/login/oauth", subject_regex="mitr@"), "anchored"),
    ],
)
def test_fulcio_rekor_with_another_identity_is_rejected(
    vectors: Path, public_good: TrustedRoot, identity: Identity, message: str
) -> None:
    with pytest.raises(KeylessError, match=message):
        _fulcio_rekor(vectors, public_good, identity)


def test_fulcio_rekor_with_another_signatures_log_entry_is_rejected(
    vectors: Path, public_good: TrustedRoot
) -> None:
    who = Identity(issuer="https://github.com/login/oauth", subject="mitr@redhat.com")
    with pytest.raises(KeylessError, match="log entry body names another artifact"):
        _fulcio_rekor(vectors, public_good, who, bundle="key-rekor")


def test_fulcio_rekor_with_a_forged_set_is_rejected(
    vectors: Path, public_good: TrustedRoot, tmp_path: Path
) -> None:
    doc = json.loads(_read(vectors, "fulcio-rekor.rekor-bundle.json"))
    doc["Payload"]["integratedTime"] += 1
    who = Identity(issuer="https://github.com/login/oauth", subject="mitr@redhat.com")
    with pytest.raises(KeylessError, match=r"signed entry timestamp \(SET\) does not verify"):
        verify_cosign_keyless(
            _read(vectors, "fulcio-rekor.payload"),
            _sig(vectors, "fulcio-rekor.sig.b64"),
            _read(vectors, "fulcio-rekor.cert.pem"),
            None,
            json.dumps(doc).encode(),
            identity=who,
            roots=public_good,
        )


def test_fulcio_rekor_against_a_root_without_its_ca_is_rejected(vectors: Path) -> None:
    staging = TrustedRoot.embedded("staging")
    who = Identity(issuer="https://github.com/login/oauth", subject="mitr@redhat.com")
    with pytest.raises(KeylessError, match=r"not signed by the CA|unknown CA"):
        _fulcio_rekor(vectors, staging, who)


@pytest.mark.parametrize(("key", "valid"), [("cosign2.pub", True), ("cosign.pub", False)])
def test_key_rekor(vectors: Path, public_good: TrustedRoot, key: str, valid: bool) -> None:
    pub = load_public_key(str(vectors / "cosign-containers-image" / key))
    args = (_read(vectors, "key-rekor.payload"), _sig(vectors, "key-rekor.sig.b64"), pub)
    bundle = _read(vectors, "key-rekor.rekor-bundle.json")
    if valid:
        v = verify_rekor_set(*args, bundle, roots=public_good)
        assert v.key_id == pub.key_id and v.log_index == 11608800 and v.identity is None
    else:
        with pytest.raises(KeylessError, match="does not verify over the payload"):
            verify_rekor_set(*args, bundle, roots=public_good)


def test_key_rekor_with_a_log_the_root_does_not_know_is_rejected(vectors: Path) -> None:
    pub = load_public_key(str(vectors / "cosign-containers-image" / "cosign2.pub"))
    with pytest.raises(KeylessError, match="transparency log the root does not trust"):
        verify_rekor_set(
            _read(vectors, "key-rekor.payload"),
            _sig(vectors, "key-rekor.sig.b64"),
            pub,
            _read(vectors, "key-rekor.rekor-bundle.json"),
            roots=TrustedRoot.embedded("staging"),
        )


def _subject(bundle: bytes) -> dict[str, str]:
    payload = base64.b64decode(json.loads(bundle)["dsseEnvelope"]["payload"])
    return json.loads(payload)["subject"][0]["digest"]


def test_cosign_repo_attestation(vectors: Path) -> None:
    bundle = (vectors / "cosign-repo" / "oci-attestation.sigstore.json").read_bytes()
    roots = TrustedRoot.load(vectors / "cosign-repo" / "trusted_root_pgi.json")
    who = Identity(issuer="https://github.com/login/oauth", subject="cody@soyland.com")
    digest = "sha256:" + _subject(bundle)["sha256"]
    v = verify_bundle(bundle, digest, identity=who, key=None, roots=roots, require_tlog=True)
    assert v.predicate_type == "https://cosign.sigstore.dev/attestation/v1"
    assert v.identity == "cody@soyland.com" and v.payload is not None
    with pytest.raises(KeylessError, match="subjects do not name sha256:0000"):
        verify_bundle(bundle, "sha256:" + "0" * 64, identity=who, key=None, roots=roots)
    with pytest.raises(KeylessError, match=r"predicate type is not https://slsa\.dev"):
        verify_bundle(
            bundle,
            digest,
            identity=who,
            key=None,
            roots=roots,
            predicate_type="https://slsa.dev/provenance/v1",
        )


def test_github_custom_issuer_needs_that_issuer(vectors: Path, public_good: TrustedRoot) -> None:
    g = vectors / "github-attestations"
    bundle = (g / "custom-issuer.sigstore.json").read_bytes()
    artifact = (g / "custom-issuer-artifact").read_bytes()
    subject = (
        "https://github.com/too-legit/attest/.github/workflows/integration.yml@refs/heads/main"
    )
    ok = Identity(issuer=GITHUB + "/hammer-time", subject=subject)
    v = verify_bundle(bundle, artifact, identity=ok, key=None, roots=public_good)
    assert v.extensions["runner_environment"] == "github-hosted"
    assert v.predicate_type == "https://slsa.dev/provenance/v1"
    with pytest.raises(KeylessError, match="OIDC issuer"):
        verify_bundle(
            bundle,
            artifact,
            identity=Identity(issuer=GITHUB, subject=subject),
            key=None,
            roots=public_good,
        )


def test_github_reusable_workflow_identity_is_the_signer_workflow(
    vectors: Path, public_good: TrustedRoot
) -> None:
    bundle = (
        vectors / "github-attestations" / "reusable-workflow-attestation.sigstore.json"
    ).read_bytes()
    digest = "sha256:49a3aa6075e0f49f82843e74b5baa614ad2a588e6675612bf108a0a008c5ac25"
    who = Identity(
        issuer=GITHUB,
        subject_regex=r"https://github\.com/github/artifact-attestations-workflows/\.github/workflows/attest\.yml@.*",
    )
    v = verify_bundle(bundle, digest, identity=who, key=None, roots=public_good)
    assert v.identity is not None and v.identity.startswith(
        "https://github.com/github/artifact-attestations"
    )


@pytest.mark.parametrize(
    "name",
    [
        "sigstore-js-2.1.0-bundle.json",
        "sigstore-js-2.1.0-bundle-v0.1.json",
        "sigstore-js-2.1.0_with_2_bundles.jsonl",
    ],
)
def test_npm_provenance_with_a_sha512_subject(vectors: Path, name: str) -> None:
    data = (vectors / "github-attestations" / name).read_bytes()
    roots = TrustedRoot.load(vectors / "github-attestations" / "cli-testdata-trusted_root.json")
    who = Identity(
        issuer=GITHUB,
        subject="https://github.com/sigstore/sigstore-js/.github/workflows/release.yml@refs/heads/main",
    )
    bundles = split_bundles(data)
    assert len(bundles) == (2 if name.endswith(".jsonl") else 1)
    for bundle in bundles:
        digest = "sha512:" + _subject(bundle)["sha512"]
        assert verify_bundle(bundle, digest, identity=who, key=None, roots=roots).log_index


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("sigstoreBundle-invalid-signature.json", "DSSE signature does not verify"),
        ("github_provenance_demo-0.0.12-py3-none-any-bundle.jsonl", "unknown CA"),
        (
            "github_provenance_demo-0.0.12-py3-none-any-bundle-missing-cert.jsonl",
            "neither a message signature",
        ),
        (
            "github_provenance_demo-0.0.12-py3-none-any-bundle-missing-verification-material.jsonl",
            "no verification material",
        ),
    ],
)
def test_github_invalid_against_public_good(
    vectors: Path, public_good: TrustedRoot, name: str, message: str
) -> None:
    bundle = (vectors / "github-attestations" / name).read_bytes()
    digest = "sha256:ae57936def59bc4c75edd3a837d89bcefc6d3a5e31d55a6fa7a71624f92c3c3b"
    with pytest.raises(KeylessError, match=message):
        verify_bundle(
            bundle,
            digest,
            identity=Identity(issuer=GITHUB, subject_regex=ANY),
            key=None,
            roots=public_good,
        )


def test_legacy_keyless_signature_timed_by_an_rfc3161_annotation(vectors: Path) -> None:
    # A real rekor2 bundle's pieces laid out as cosign's .sig layer annotations: the
    # signature over the raw payload, the leaf PEM and dev.sigstore.cosign/rfc3161timestamp.
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    case = vectors / "sigstore-conformance" / "bundle-verify" / "rekor2-happy-path"
    doc = json.loads((case / "bundle.sigstore.json").read_bytes())
    material = doc["verificationMaterial"]
    cert = x509.load_der_x509_certificate(base64.b64decode(material["certificate"]["rawBytes"]))
    token = material["timestampVerificationData"]["rfc3161Timestamps"][0]["signedTimestamp"]
    annotation = json.dumps({"SignedRFC3161Timestamp": token}).encode()
    payload = (case.parent / "a.txt").read_bytes()
    signature = base64.b64decode(doc["messageSignature"]["signature"])
    roots = TrustedRoot.load(case / "trusted_root.json")
    who = Identity(issuer=GITHUB, subject_regex=r"https://github\.com/sigstore-conformance/.*")
    args = (payload, signature, cert.public_bytes(Encoding.PEM), None, None)
    v = verify_cosign_keyless(*args, identity=who, roots=roots, rfc3161_timestamp_json=annotation)
    assert v.time_source == "signed timestamp" and v.log_index is None
    with pytest.raises(KeylessError, match="policy requires one"):
        verify_cosign_keyless(
            *args, identity=who, roots=roots, rfc3161_timestamp_json=annotation, require_tlog=True
        )
    with pytest.raises(KeylessError, match="nothing proves when it was signed"):
        verify_cosign_keyless(*args, identity=who, roots=roots)
    no_tsa = json.loads((case / "trusted_root.json").read_text())
    no_tsa["timestampAuthorities"] = []
    without = TrustedRoot.from_text(json.dumps(no_tsa), "no-tsa.json")
    with pytest.raises(KeylessError, match="the root has no timestamp authority"):
        verify_cosign_keyless(*args, identity=who, roots=without, rfc3161_timestamp_json=annotation)
