"""The registry store turns whatever a registry serves into claims.

Bad data is evidence, not a crash.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

from gate import signatures
from gate.errors import DigestMismatchError, RegistryError
from gate.refs import Repository
from gate.registry import Descriptor, Manifest
from gate.verify import RegistryStore

REPO = Repository("127.0.0.1:5000", "acme/app")
DIGEST = "sha256:" + "1" * 64


class FakeRegistry:
    """Implements the RegistryClient methods the store uses, serving canned bytes."""

    def __init__(self, manifests: dict[str, bytes], blobs: dict[str, bytes | Exception]) -> None:
        self.manifests = manifests
        self.blobs = blobs

    def find_manifest(self, repo: Repository, reference: str) -> Manifest | None:
        data = self.manifests.get(reference)
        return (
            None
            if data is None
            else Manifest(data, signatures.OCI_MANIFEST, signatures.digest_of(data))
        )

    def get_manifest(self, repo: Repository, reference: str) -> Manifest:
        found = self.find_manifest(repo, reference)
        assert found is not None
        return found

    def get_blob(self, repo: Repository, digest: str, *, max_bytes: int | None = None) -> bytes:
        blob = self.blobs[digest]
        if isinstance(blob, Exception):
            raise blob
        return blob

    def referrers(
        self, repo: Repository, digest: str, artifact_type: str | None = None
    ) -> list[Descriptor]:
        return []

    def has_referrers_api(self, repo: Repository, digest: str) -> bool:
        return True


def _store(
    manifest: bytes | None, blobs: dict[str, bytes | Exception] | None = None
) -> RegistryStore:
    tag = signatures.attachment_tag(DIGEST)
    fake: Any = FakeRegistry({tag: manifest} if manifest is not None else {}, blobs or {})
    return RegistryStore(fake)


def test_no_signature_tag_means_no_claims() -> None:
    assert _store(None).signature_tag(REPO, DIGEST).signatures == ()


def test_manifest_that_is_not_json_is_a_problem_claim() -> None:
    claims = _store(b"this is not json").signature_tag(REPO, DIGEST).signatures
    assert len(claims) == 1 and claims[0].problem and "JSON" in claims[0].problem


def test_manifest_without_layers_is_a_problem_claim() -> None:
    claims = _store(b'{"schemaVersion":2}').signature_tag(REPO, DIGEST).signatures
    assert claims[0].problem and "no 'layers'" in claims[0].problem


def test_blob_digest_mismatch_is_a_problem_claim() -> None:
    artifact = signatures.append_signature([], b"payload", b"sig")
    layer = json.loads(artifact.manifest)["layers"][0]
    store = _store(
        artifact.manifest, {layer["digest"]: DigestMismatchError("blob does not match its digest")}
    )
    claims = store.signature_tag(REPO, DIGEST).signatures
    assert claims[0].problem and "does not match" in claims[0].problem


def test_registry_failure_propagates_as_error() -> None:
    artifact = signatures.append_signature([], b"payload", b"sig")
    layer = json.loads(artifact.manifest)["layers"][0]
    store = _store(artifact.manifest, {layer["digest"]: RegistryError("registry answered 500")})
    try:
        store.signature_tag(REPO, DIGEST)
    except RegistryError as e:
        assert "500" in e.message
    else:
        raise AssertionError("a registry failure must not be swallowed")


def test_revocation_layers_are_read_next_to_signatures() -> None:
    artifact = signatures.append_signature([], b"payload", b"sig")
    layers = signatures.parse_signature_manifest(json.loads(artifact.manifest))
    envelope = (
        b'{"payload":"e30","payloadType":"application/vnd.in-toto+json",'
        b'"signatures":[{"sig":"AA=="}]}'
    )
    revocation = signatures.SignatureLayer(
        signatures.digest_of(envelope), len(envelope), signatures.DSSE_MEDIA_TYPE, {}
    )
    both = signatures.signature_manifest([*layers, revocation])
    store = _store(both.manifest, {layers[0].digest: b"payload", revocation.digest: envelope})
    evidence = store.signature_tag(REPO, DIGEST)
    assert len(evidence.signatures) == 1 and len(evidence.revocations) == 1
    assert evidence.revocations[0].payload == b"{}"


class ReferringRegistry(FakeRegistry):
    """A FakeRegistry whose image has the given referrers (tag-schema index entries)."""

    def __init__(self, manifests: dict[str, bytes], blobs: dict[str, bytes | Exception]) -> None:
        super().__init__(manifests, blobs)
        self.entries: list[Descriptor] = []

    def refer(self, artifact: signatures.ArtifactManifest, listed_type: str | None) -> None:
        self.manifests[artifact.digest] = artifact.manifest
        self.blobs.update(artifact.blobs)
        self.entries.append(
            Descriptor(
                signatures.OCI_MANIFEST,
                artifact.digest,
                len(artifact.manifest),
                artifact_type=listed_type,
            )
        )

    def referrers(
        self, repo: Repository, digest: str, artifact_type: str | None = None
    ) -> list[Descriptor]:
        return list(self.entries)


def _bundle(predicate_type: str) -> signatures.ArtifactManifest:
    statement = json.dumps(
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"digest": {"sha256": DIGEST.split(":")[1]}}],
            "predicateType": predicate_type,
            "predicate": {},
        }
    ).encode()
    envelope = {
        "payload": base64.b64encode(statement).decode(),
        "payloadType": signatures.INTOTO_PAYLOAD_TYPE,
        "signatures": [{"sig": "AA=="}],
    }
    subject = {"mediaType": signatures.OCI_MANIFEST, "size": 10, "digest": DIGEST}
    bundle = signatures.make_bundle(envelope, "hint")
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    return signatures.bundle_referrer(subject, bundle, predicate_type, moment)


def test_bundles_listed_with_the_empty_config_type_are_still_read() -> None:
    """cosign v2.6 lists its bundles in the tag-schema index as the empty config type."""
    fake: Any = ReferringRegistry({}, {})
    fake.refer(_bundle(signatures.COSIGN_SIGN_PREDICATE), signatures.OCI_EMPTY)
    fake.refer(_bundle(signatures.COSIGN_SIGN_PREDICATE), None)
    claims = RegistryStore(fake).referrers(REPO, DIGEST).signatures
    assert len(claims) == 2 and all(c.problem is None for c in claims)


def test_bundles_of_other_predicates_are_attestations_not_signatures() -> None:
    """cosign v3's default attest writes a bundle referrer with the provenance predicate."""
    fake: Any = ReferringRegistry({}, {})
    fake.refer(_bundle("https://slsa.dev/provenance/v1"), signatures.BUNDLE_MEDIA_TYPE)
    fake.refer(_bundle(signatures.COSIGN_SIGN_PREDICATE), signatures.BUNDLE_MEDIA_TYPE)
    found = RegistryStore(fake).referrers(REPO, DIGEST, attestations=True)
    assert len(found.signatures) == 1 and b"cosign/sign/v1" in found.signatures[0].payload
    assert len(found.attestations) == 1
    assert b"slsa.dev/provenance/v1" in found.attestations[0].payload
