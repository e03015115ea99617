"""Trusted roots, identity policies and the per-certificate cache, on conformance bundles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gate.errors import UsageError
from gate.sigstore import Identity, KeylessError, TrustedRoot, _certs, identity_of, verify_bundle

BEACON = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
GITHUB = "https://token.actions.githubusercontent.com"


@pytest.fixture
def cases(vectors: Path) -> Path:
    return vectors / "sigstore-conformance" / "bundle-verify"


def _bundle(cases: Path, name: str) -> bytes:
    return (cases / name / "bundle.sigstore.json").read_bytes()


def test_the_embedded_roots_carry_their_date() -> None:
    root = TrustedRoot.embedded()
    assert [i.name for i in root.instances] == ["public-good"]
    assert f"{root.instances[0].newest:%Y-%m-%d}" == "2025-09-23"
    assert TrustedRoot.embedded("staging").instances[0].cas


def test_gh_jsonl_roots_stay_separate_and_the_leafs_ca_picks_one(
    cases: Path, vectors: Path, tmp_path: Path
) -> None:
    # NOTE: gh attestation trusted-root prints one root per line; a staging bundle verifies
    # against the staging line, which the public-good line alone would reject.
    roots = vectors / "sigstore-trust-roots"
    lines = [
        json.dumps(json.loads((roots / f).read_text()))
        for f in ("public-good.trusted_root.json", "staging.trusted_root.json")
    ]
    jsonl = tmp_path / "gh.jsonl"
    jsonl.write_text("\n".join(lines) + "\n")
    root = TrustedRoot.load(jsonl)
    assert [i.name for i in root.instances] == ["gh.jsonl#1", "gh.jsonl#2"]
    bundle = _bundle(cases, "bundle-from-wrong-instance_fail")
    who = Identity(issuer=GITHUB, subject=BEACON)
    artifact = (cases / "a.txt").read_bytes()
    assert verify_bundle(bundle, artifact, identity=who, key=None, roots=root).identity == BEACON
    with pytest.raises(KeylessError, match="not signed by the CA"):
        verify_bundle(
            bundle,
            artifact,
            identity=who,
            key=None,
            roots=TrustedRoot.load(roots / "public-good.trusted_root.json"),
        )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "it is empty"),
        ("{oops", "not JSON"),
        ('{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json"}', "mediaType"),
        ("[1, 2]", "mediaType"),
    ],
)
def test_a_file_that_is_not_a_trusted_root_is_a_usage_error(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "root.json"
    path.write_text(text)
    with pytest.raises(UsageError, match=message):
        TrustedRoot.load(path)


def test_a_validity_without_start_is_a_usage_error(cases: Path) -> None:
    with pytest.raises(UsageError, match="validFor period has no start"):
        TrustedRoot.load(
            cases / "trust-root-tlog-missing-validity-start_fail" / "trusted_root.json"
        )


def test_a_regexp_that_does_not_compile_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="does not compile"):
        Identity(issuer=GITHUB, subject_regex="(")
    with pytest.raises(UsageError, match="unknown certificate claim"):
        Identity(issuer=GITHUB, subject=BEACON, claims={"runner": "github-hosted"})
    with pytest.raises(UsageError, match="exactly one of subject"):
        Identity(issuer=GITHUB)
    with pytest.raises(UsageError, match="exactly one of issuer"):
        Identity(subject=BEACON)
    with pytest.raises(UsageError, match="issuer regexp '\\[' does not compile"):
        Identity(issuer_regex="[", subject=BEACON)


def test_claims_decode_by_friendly_name_and_oid(cases: Path) -> None:
    import base64

    from cryptography import x509

    doc = json.loads(_bundle(cases, "happy-path-v0.3"))
    cert = x509.load_der_x509_certificate(
        base64.b64decode(doc["verificationMaterial"]["certificate"]["rawBytes"])
    )
    who = identity_of(cert)
    assert (who.subject, who.subject_kind, who.issuer) == (BEACON, "uri", GITHUB)
    assert who.claim("runner_environment") == "github-hosted"  # DER UTF8String (.1.11)
    assert who.claim("github_workflow_trigger") == "workflow_dispatch"  # raw string (.1.2)
    assert (
        who.claim("1.3.6.1.4.1.57264.1.12")
        == "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon"
    )
    assert who.claim("1.3.6.1.4.1.57264.1.8") == GITHUB
    Identity(
        issuer=GITHUB,
        subject_regex=r"https://github\.com/sigstore-conformance/[^/]+/\.github/workflows/.*@refs/heads/main",
        claims={
            "source_repository_visibility_at_signing": "public",
            "build_trigger": "workflow_dispatch",
        },
    ).check(who)
    with pytest.raises(KeylessError, match=r"does not match .* \(anchored\)"):
        Identity(issuer=GITHUB, subject_regex="https://github.com/sigstore-conformance/").check(who)
    with pytest.raises(
        KeylessError, match="claim runner_environment is 'github-hosted', not 'self-hosted'"
    ):
        Identity(issuer=GITHUB, subject=BEACON, claims={"runner_environment": "self-hosted"}).check(
            who
        )
    Identity(
        issuer_regex=r"https://token\.actions\.githubusercontent\.com(/[a-z-]+)?", subject=BEACON
    ).check(who)
    with pytest.raises(KeylessError, match=r"OIDC issuer .* does not match /https://token/"):
        Identity(issuer_regex="https://token", subject=BEACON).check(who)
    with pytest.raises(KeylessError, match="has no deployment_environment claim"):
        Identity(issuer=GITHUB, subject=BEACON, claims={"deployment_environment": "prod"}).check(
            who
        )


def test_a_timestamp_only_bundle_needs_no_log_unless_the_policy_says_so(cases: Path) -> None:
    # GitHub's private-repository attestations have no log entry, only an RFC 3161 timestamp.
    doc = json.loads(_bundle(cases, "rekor2-happy-path"))
    doc["verificationMaterial"]["tlogEntries"] = []
    bundle = json.dumps(doc).encode()
    root = TrustedRoot.load(cases / "rekor2-happy-path" / "trusted_root.json")
    artifact = (cases / "a.txt").read_bytes()
    who = Identity(issuer=GITHUB, subject=BEACON)
    v = verify_bundle(bundle, artifact, identity=who, key=None, roots=root)
    assert v.time_source == "signed timestamp" and v.log_index is None
    with pytest.raises(KeylessError, match="no transparency-log entry and the policy requires one"):
        verify_bundle(bundle, artifact, identity=who, key=None, roots=root, require_tlog=True)


def test_the_chain_and_sct_are_checked_once_per_certificate(cases: Path) -> None:
    bundle = _bundle(cases, "happy-path-v0.3")
    artifact = (cases / "a.txt").read_bytes()
    root = TrustedRoot.embedded()
    who = Identity(issuer=GITHUB, subject=BEACON)
    _certs._chain_to_root.cache_clear()
    for _ in range(5):
        verify_bundle(bundle, artifact, identity=who, key=None, roots=root)
    info = _certs._chain_to_root.cache_info()
    assert (info.misses, info.hits) == (1, 4)


def test_the_embedded_roots_are_the_vectors_byte_for_byte(vectors: Path) -> None:
    # NOTE: both are sigstore-python's snapshot (SOURCE); refreshing one means refreshing both.
    from importlib import resources

    shipped = resources.files("gate.sigstore").joinpath("_roots")
    for name in ("public-good", "staging"):
        vector = vectors / "sigstore-trust-roots" / f"{name}.trusted_root.json"
        assert shipped.joinpath(f"{name}.json").read_bytes() == vector.read_bytes()


def test_malformed_log_bodies_and_checkpoints_are_rejections_not_crashes(cases: Path) -> None:
    import dataclasses

    from gate.dsse import Envelope
    from gate.sigstore._entries import Signed, match_entry
    from gate.sigstore._rekor import entry_from_bundle, verify_checkpoint

    doc = json.loads(_bundle(cases, "intoto-with-custom-trust-root"))
    entry = entry_from_bundle(doc["verificationMaterial"]["tlogEntries"][0])
    body = json.loads(entry.body)
    body["spec"]["content"]["envelope"] = "not an object"
    odd = dataclasses.replace(entry, body=json.dumps(body).encode())
    with pytest.raises(KeylessError, match="log entry body is malformed"):
        match_entry(odd, Signed(b"sig", b"der", envelope=Envelope.from_dict(doc["dsseEnvelope"])))
    log = TrustedRoot.embedded().instances[0].tlogs[0]
    with pytest.raises(KeylessError, match="root hash"):
        verify_checkpoint("rekor.sigstore.dev\n1\nÄÖ==\n\n\u2014 rekor.sigstore.dev wNI9\n", log)
