"""The registry store turns whatever a registry serves into claims.

Bad data is evidence, not a crash.
"""

from __future__ import annotations

import json
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
