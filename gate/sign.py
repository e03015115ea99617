"""Sign images in a registry, in cosign's layouts, and attach attestations and revocations.

The signed bytes are made by ``signatures`` and ``dsse`` (pure); this module
only reads what is there, appends, and pushes. Appending to a ``.sig``
manifest is read-modify-write, racy by design as in cosign
(SIGNATURE_SPEC.md "Support for multiple signatures works but is racy").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from gate import __version__, dsse, signatures
from gate.errors import SealgateError, UsageError
from gate.keys import PrivateKey
from gate.ledger import Ledger, SignedStatement
from gate.refs import Reference, Repository
from gate.registry import INDEX_MEDIA_TYPES, Manifest, RegistryClient
from gate.sources import LocalImage

CREATOR = f"sealgate {__version__}"
"""Recorded in each payload's optional map, as containers/image records its own name and version."""


class SignatureFormat(StrEnum):
    LEGACY = "legacy"
    BUNDLE = "bundle"
    BOTH = "both"


@dataclass(frozen=True)
class Signed:
    """What one signing wrote."""

    image: str
    digest: str
    written: tuple[str, ...]
    """Where: ``repo:sha256-….sig`` and/or ``referrer sha256:…``."""


class Signer(Protocol):
    """Makes the signed bytes for both layouts: a key, or a keyless Fulcio/Rekor signer."""

    def legacy(self, payload: bytes) -> tuple[bytes, dict[str, str]]:
        """The raw signature over a simple-signing payload, and extra layer annotations."""
        ...

    def bundle(self, statement: bytes) -> bytes:
        """A Sigstore bundle v0.3 over an in-toto statement."""
        ...


@dataclass(frozen=True)
class KeySigner:
    """A long-lived private key: no annotations, a bundle naming the key by hint."""

    key: PrivateKey

    def legacy(self, payload: bytes) -> tuple[bytes, dict[str, str]]:
        return self.key.sign(payload), {}

    def bundle(self, statement: bytes) -> bytes:
        envelope = dsse.sign(statement, signatures.INTOTO_PAYLOAD_TYPE, self.key)
        return signatures.make_bundle(envelope.to_dict(), self.key.public_key.hint)


def resolve(client: RegistryClient, ref: Reference) -> Manifest:
    return client.get_manifest(ref.repository, ref.identifier)


@dataclass(frozen=True)
class LegacySignature:
    """One ``.sig`` layer to append: the payload, its raw signature, extra annotations."""

    payload: bytes
    signature: bytes
    annotations: Mapping[str, str]


Pending = list[tuple[str, list[LegacySignature | signatures.ArtifactManifest]]]
"""Per digest: what ``prepare`` made and ``attach`` pushes."""


def sign_image(
    client: RegistryClient,
    ref: Reference,
    key: PrivateKey | Signer,
    *,
    annotations: Mapping[str, str] | None = None,
    fmt: SignatureFormat = SignatureFormat.LEGACY,
    recursive: bool = False,
    now: datetime | None = None,
) -> list[Signed]:
    """Sign ``ref`` (resolved to its digest) and, with ``recursive``, each platform of an index."""
    pending = prepare(
        client, ref, key, annotations=annotations, fmt=fmt, recursive=recursive, now=now
    )
    return attach(client, ref, pending)


def prepare(
    client: RegistryClient,
    ref: Reference,
    key: PrivateKey | Signer,
    *,
    annotations: Mapping[str, str] | None = None,
    fmt: SignatureFormat = SignatureFormat.LEGACY,
    recursive: bool = False,
    now: datetime | None = None,
) -> Pending:
    """Make every signature (for keyless: certified and logged) and push nothing.

    Keyless signing prepares all images before ``attach``, so a failure
    half-way (Fulcio, Rekor, a mismatched answer) attaches nothing.
    """
    signer: Signer = KeySigner(key) if isinstance(key, PrivateKey) else key
    moment = now or datetime.now(UTC)
    manifest = resolve(client, ref)
    todo = [manifest.descriptor]
    if recursive and manifest.media_type in INDEX_MEDIA_TYPES:
        for child in manifest.json().get("manifests", []):
            todo.append(client.get_manifest(ref.repository, child["digest"]).descriptor)
    made: Pending = []
    for descriptor in todo:
        optional = _payload_fields(moment, annotations)
        items: list[LegacySignature | signatures.ArtifactManifest] = []
        if fmt in (SignatureFormat.LEGACY, SignatureFormat.BOTH):
            payload = signatures.make_payload(
                descriptor.digest, signatures.docker_reference(ref), optional
            )
            items.append(LegacySignature(payload, *signer.legacy(payload)))
        if fmt in (SignatureFormat.BUNDLE, SignatureFormat.BOTH):
            statement = signatures.sign_statement(descriptor.digest, optional)
            items.append(
                signatures.bundle_referrer(
                    descriptor.to_dict(),
                    signer.bundle(statement),
                    signatures.COSIGN_SIGN_PREDICATE,
                    moment,
                )
            )
        made.append((descriptor.digest, items))
    return made


def attach(client: RegistryClient, ref: Reference, pending: Pending) -> list[Signed]:
    """Push what ``prepare`` made."""
    results = []
    for digest, items in pending:
        written = []
        for item in items:
            if isinstance(item, signatures.ArtifactManifest):
                written.append("referrer " + _push(client, ref.repository, item, item.digest))
            else:
                written.append(
                    _append_legacy(
                        client,
                        ref.repository,
                        digest,
                        item.payload,
                        item.signature,
                        item.annotations,
                    )
                )
        results.append(Signed(f"{ref.name}@{digest}", digest, tuple(written)))
    return results


def _append_legacy(
    client: RegistryClient,
    repo: Repository,
    digest: str,
    payload: bytes,
    sig: bytes,
    extra: Mapping[str, str] | None = None,
) -> str:
    tag = signatures.attachment_tag(digest, "sig")
    existing = client.find_manifest(repo, tag)
    layers: list[signatures.SignatureLayer] = []
    if existing is not None:
        try:
            layers = signatures.parse_signature_manifest(existing.json())
        except SealgateError as e:
            raise UsageError(
                f"the existing signature manifest {repo}:{tag} is malformed ({e.message}); "
                "refusing to overwrite it — inspect and delete that tag first"
            ) from e
    artifact = signatures.append_signature(layers, payload, sig, extra)
    _push(client, repo, artifact, tag)
    return f"{repo}:{tag}"


def attach_layer(
    client: RegistryClient,
    repo: Repository,
    digest: str,
    blob: bytes,
    media_type: str,
    annotations: Mapping[str, str],
    suffix: str,
) -> str:
    """Append one DSSE layer to ``sha256-<hex>.<suffix>``.

    Used for attestations; revocations go in ``.sig``.
    """
    tag = signatures.attachment_tag(digest, suffix)
    existing = client.find_manifest(repo, tag)
    layers = signatures.parse_signature_manifest(existing.json()) if existing is not None else []
    layer = signatures.SignatureLayer(
        digest=signatures.digest_of(blob),
        size=len(blob),
        media_type=media_type,
        annotations={signatures.SIGNATURE_ANNOTATION: "", **annotations},
    )
    if layer not in layers:
        layers.append(layer)
    artifact = signatures.signature_manifest(layers, {layer.digest: blob})
    _push(client, repo, artifact, tag)
    return f"{repo}:{tag}"


def _push(
    client: RegistryClient, repo: Repository, artifact: signatures.ArtifactManifest, reference: str
) -> str:
    """Blobs first, then the manifest: a registry must never see a manifest naming missing blobs."""
    for blob in artifact.blobs.values():
        client.push_blob(repo, blob)
    return client.push_manifest(repo, reference, artifact.manifest, artifact.media_type)


def _payload_fields(now: datetime, annotations: Mapping[str, str] | None) -> dict[str, Any]:
    return {
        signatures.CREATOR_KEY: CREATOR,
        signatures.TIMESTAMP_KEY: int(now.timestamp()),
        **(annotations or {}),
    }


def sign_local(
    ledger: Ledger,
    image: LocalImage,
    key: PrivateKey,
    *,
    annotations: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> Signed:
    """Record one signed simple-signing statement per digest of a local image, in one append.

    The payload is cosign's, naming the image ID (or manifest digest) instead of
    a registry manifest, so the same verifier code checks both.
    """
    optional = _payload_fields(now or datetime.now(UTC), annotations)
    identity = image.tags[0] if image.tags else image.text
    statements = []
    for digest in sorted(image.digests):
        payload = signatures.make_payload(digest, identity, optional)
        statements.append(
            SignedStatement(
                "sign",
                digest,
                image.text,
                signatures.SIMPLE_SIGNING_MEDIA_TYPE,
                payload,
                key.sign(payload),
                key.public_key,
            )
        )
    entries = ledger.append_many(statements, writer=key)
    return Signed(
        image.text, image.digest, tuple(f"{ledger.path} entry {e.index}" for e in entries)
    )
