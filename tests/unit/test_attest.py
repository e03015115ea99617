"""gate.attest: provenance files and cosign attestations, the gate's VSA.

Envelopes are checked by an independent DSSE implementation (securesystemslib),
and what is attached is read back through ``stores.RegistryStore`` — the exact
code ``sealgate verify --attestation`` runs.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from gate import attest, dsse, keys, signatures
from gate.descriptors import Manifest
from gate.errors import NotFoundError
from gate.policy import Policy, from_keys
from gate.provenance import SLSA_PROVENANCE_V1, VSA_V1, Envelope, Statement
from gate.refs import Repository
from gate.registry import digest_of
from gate.result import FailOn, Location, Result, Status
from gate.verify import RegistryStore

DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64
SHA = "0123456789abcdef0123456789abcdef01234567"

GITHUB_ENV = {
    "GITHUB_ACTIONS": "true",
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_REPOSITORY": "acme/app",
    "GITHUB_SHA": SHA,
    "GITHUB_REF": "refs/heads/main",
    "GITHUB_WORKFLOW_REF": "acme/app/.github/workflows/release.yml@refs/heads/main",
    "GITHUB_RUN_ID": "42",
    "GITHUB_RUN_ATTEMPT": "1",
    "GITHUB_EVENT_NAME": "push",
}
GITLAB_ENV = {
    "GITLAB_CI": "true",
    "CI_SERVER_URL": "https://gitlab.example.com",
    "CI_PROJECT_URL": "https://gitlab.example.com/grp/app",
    "CI_PROJECT_PATH": "grp/app",
    "CI_COMMIT_SHA": SHA,
    "CI_COMMIT_REF_NAME": "main",
    "CI_JOB_URL": "https://gitlab.example.com/grp/app/-/jobs/7",
    "CI_RUNNER_ID": "3",
}


@dataclass
class MemoryRegistry:
    """The slice of RegistryClient that attaching and reading attestations use."""

    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[tuple[str, str], Manifest] = field(default_factory=dict)

    def find_manifest(self, repo: Repository, reference: str) -> Manifest | None:
        return self.manifests.get((str(repo), reference))

    def get_blob(self, repo: Repository, digest: str, *, max_bytes: int | None = None) -> bytes:
        if digest not in self.blobs:
            raise NotFoundError(f"no blob {digest}")
        return self.blobs[digest]

    def push_blob(self, repo: Repository, data: bytes) -> str:
        self.blobs[digest_of(data)] = data
        return digest_of(data)

    def push_manifest(self, repo: Repository, reference: str, data: bytes, media_type: str) -> str:
        manifest = Manifest(data, media_type, digest_of(data))
        self.manifests[(str(repo), reference)] = manifest
        return manifest.digest

    def referrers(self, repo: Repository, digest: str) -> list[object]:
        return []  # attestations here are .att layers only


@pytest.fixture(scope="module")
def key() -> keys.PrivateKey:
    return keys.generate("ecdsa-p256")


def sslib_verify(envelope_dict: dict, key: keys.PrivateKey) -> bytes:
    """Verify with securesystemslib (keyids re-keyed: they are unauthenticated hints)."""
    from securesystemslib.dsse import Envelope as SslibEnvelope
    from securesystemslib.signer import SSlibKey

    public = SSlibKey.from_crypto(load_pem_public_key(key.public_key.pem))
    document = json.loads(json.dumps(envelope_dict))
    for signature in document["signatures"]:
        signature["keyid"] = public.keyid
    envelope = SslibEnvelope.from_dict(document)
    envelope.verify([public], 1)
    return envelope.pae()


def test_provenance_file_verifies_independently_and_names_the_build(
    tmp_path: Path, key: keys.PrivateKey
) -> None:
    images = [("127.0.0.1:5000/acme/app@" + DIGEST_A, DIGEST_A)]
    made = attest.provenance(None, images, key, env=GITHUB_ENV, directory=tmp_path / "out")

    assert made.path == tmp_path / "out" / attest.PROVENANCE_FILE
    lines = made.path.read_bytes().splitlines()
    assert len(lines) == 1
    document = json.loads(lines[0])
    assert document["payloadType"] == "application/vnd.in-toto+json"
    sslib_verify(document, key)
    statement = json.loads(base64.b64decode(document["payload"]))
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == SLSA_PROVENANCE_V1
    assert statement["subject"] == [
        {"name": "127.0.0.1:5000/acme/app", "digest": {"sha256": "a" * 64}}
    ]
    predicate = statement["predicate"]
    assert predicate["runDetails"]["builder"]["id"] == (
        "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"
    )
    assert predicate["buildDefinition"]["resolvedDependencies"][0]["digest"] == {"gitCommit": SHA}
    assert predicate["runDetails"]["metadata"]["invocationId"].endswith("/runs/42/attempts/1")
    assert made.attached == ()


def test_tampering_any_byte_of_the_provenance_fails_verification(
    tmp_path: Path, key: keys.PrivateKey
) -> None:
    from securesystemslib.exceptions import VerificationError

    made = attest.provenance(
        None, [("r.example/a@" + DIGEST_A, DIGEST_A)], key, env=GITHUB_ENV, directory=tmp_path
    )
    document = made.envelope.to_dict()
    payload = bytearray(made.envelope.payload)
    for index in (0, len(payload) // 2, len(payload) - 1):
        tampered = bytearray(payload)
        tampered[index] ^= 0x01
        bad = dict(document, payload=base64.b64encode(bytes(tampered)).decode())
        with pytest.raises(VerificationError):
            sslib_verify(bad, key)
        with pytest.raises(dsse.DSSEError):
            dsse.verify(Envelope.from_dict(bad), [key.public_key])


def test_gitlab_provenance_names_the_pipeline(tmp_path: Path, key: keys.PrivateKey) -> None:
    made = attest.provenance(
        None, [("r.example/a@" + DIGEST_A, DIGEST_A)], key, env=GITLAB_ENV, directory=tmp_path
    )
    predicate = made.statement.predicate
    assert predicate["buildDefinition"]["externalParameters"]["pipeline"]["repository"] == (
        "https://gitlab.example.com/grp/app"
    )
    assert predicate["runDetails"]["builder"]["id"] == (
        "https://gitlab.example.com/grp/app/-/runners/3"
    )


def test_one_statement_covers_every_signed_digest(tmp_path: Path, key: keys.PrivateKey) -> None:
    images = [
        ("r.example/a@" + DIGEST_A, DIGEST_A),
        ("r.example/b@" + DIGEST_B, DIGEST_B),
        ("r.example/a@" + DIGEST_A, DIGEST_A),  # duplicates collapse
    ]
    made = attest.provenance(None, images, key, env=GITHUB_ENV, directory=None)
    assert made.path is None
    assert [s.name for s in made.statement.subjects] == ["r.example/a", "r.example/b"]
    assert made.statement.covers(DIGEST_A) and made.statement.covers(DIGEST_B)


def test_attached_provenance_is_what_the_registry_store_reads(key: keys.PrivateKey) -> None:
    registry = MemoryRegistry()
    image = "127.0.0.1:5000/acme/app@" + DIGEST_A
    made = attest.provenance(
        registry,
        [(image, DIGEST_A)],
        key,
        env=GITHUB_ENV,  # type: ignore[arg-type]
        directory=None,
    )
    repo = Repository("127.0.0.1:5000", "acme/app")
    tag = "sha256-" + "a" * 64 + ".att"
    assert made.attached == (f"{repo}:{tag}",)

    manifest = json.loads(registry.manifests[(str(repo), tag)].data)
    (layer,) = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.dsse.envelope.v1+json"
    assert layer["annotations"]["predicateType"] == SLSA_PROVENANCE_V1
    assert layer["annotations"][signatures.SIGNATURE_ANNOTATION] == ""
    assert registry.blobs[layer["digest"]] == made.envelope.to_json()

    evidence = RegistryStore(registry).attestation_tag(repo, DIGEST_A)  # type: ignore[arg-type]
    (claim,) = evidence.attestations
    assert claim.problem is None
    assert key.public_key.verify(claim.signatures[0], claim.signed)
    assert Statement.parse(claim.payload).covers(DIGEST_A)

    # A second run appends a layer; the first stays.
    attest.provenance(registry, [(image, DIGEST_A)], key, env=GITHUB_ENV, directory=None)  # type: ignore[arg-type]
    assert len(json.loads(registry.manifests[(str(repo), tag)].data)["layers"]) == 2


def _results() -> list[Result]:
    return [
        Result(
            "127.0.0.1:5000/acme/app@" + DIGEST_A,
            DIGEST_A,
            Status.TRUSTED,
            "signed by ci",
            sources=(Location("compose.yaml", 3),),
        ),
        Result(
            "127.0.0.1:5000/acme/db:1",
            DIGEST_B,
            Status.UNKNOWN,
            "no signature",
            sources=(Location("compose.yaml", 6),),
        ),
        Result("127.0.0.1:5000/acme/gone:1", None, Status.ERROR, "registry down"),
    ]


def _policy(key: keys.PrivateKey) -> Policy:
    from dataclasses import replace

    return replace(from_keys([key.public_key]), source="policy.yaml", digest="sha256:" + "c" * 64)


def test_signed_vsa_records_the_decision(tmp_path: Path, key: keys.PrivateKey) -> None:
    moment = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
    summary = attest.verification_report(
        _results(),
        _policy(key),
        tmp_path,
        key=key,
        env=GITHUB_ENV,
        now=moment,
        paths=["compose.yaml"],
    )
    assert summary is not None and summary.signed and not summary.passed
    assert summary.path == tmp_path / attest.VSA_FILE
    document = json.loads(summary.path.read_bytes().splitlines()[0])
    sslib_verify(document, key)
    statement = json.loads(base64.b64decode(document["payload"]))
    assert statement["predicateType"] == VSA_V1
    predicate = statement["predicate"]
    assert predicate["verificationResult"] == "FAILED"
    assert predicate["timeVerified"] == "2025-05-01T12:00:00Z"
    assert predicate["policy"]["digest"] == {"sha256": "c" * 64}
    assert predicate["resourceUri"] == f"git+https://github.com/acme/app@{SHA}"
    assert {s["digest"]["sha256"] for s in statement["subject"]} == {"a" * 64, "b" * 64}


def test_vsa_passes_under_a_lenient_fail_on_and_is_unsigned_without_a_key(
    tmp_path: Path, key: keys.PrivateKey
) -> None:
    results = _results()[:2]
    summary = attest.verification_report(
        results, _policy(key), tmp_path, fail_on=FailOn.UNTRUSTED, env={}, paths=["compose.yaml"]
    )
    assert summary is not None and summary.passed and not summary.signed
    assert summary.path == tmp_path / attest.VSA_UNSIGNED_FILE
    statement = json.loads(summary.path.read_text())
    assert statement["predicate"]["verificationResult"] == "PASSED"
    assert statement["predicate"]["resourceUri"] == "file:compose.yaml"


def test_no_vsa_when_nothing_had_a_digest(tmp_path: Path, key: keys.PrivateKey) -> None:
    assert attest.verification_report(_results()[2:], _policy(key), tmp_path, env={}) is None
    assert not any(tmp_path.iterdir())


def test_a_later_run_never_leaves_an_earlier_runs_passing_vsa_behind(
    tmp_path: Path, key: keys.PrivateKey
) -> None:
    """A report directory reused across runs (a self-hosted runner's workspace, a CI cache):
    a signed PASSED summary from yesterday must not sit beside today's FAILED one, where an
    artifact upload or a deploy step that reads ``vsa.intoto.jsonl`` would take it."""
    passing, failing = _results()[:1], _results()
    first = attest.verification_report(passing, _policy(key), tmp_path, key=key, env={})
    assert first is not None and first.passed and first.path.name == attest.VSA_FILE
    (tmp_path / attest.VSA_BUNDLE_FILE).write_text("{}\n")  # as a keyless run leaves it
    later = attest.verification_report(failing, _policy(key), tmp_path, env={})
    assert later is not None and not later.passed
    assert sorted(p.name for p in tmp_path.iterdir()) == [attest.VSA_UNSIGNED_FILE]
    # A run whose images had no digest writes no summary, and keeps none of the last run's.
    attest.verification_report(passing, _policy(key), tmp_path, key=key, env={})
    assert attest.verification_report(_results()[2:], _policy(key), tmp_path, env={}) is None
    assert not any(tmp_path.iterdir())
