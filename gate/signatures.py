"""cosign's key-based signature formats, made and read exactly (pure).

Two storage forms (FORMATS.md §1-3):

* legacy: a "simple signing" JSON payload naming the manifest digest, signed as
  exact bytes, stored as one layer of an OCI manifest at tag ``sha256-<hex>.sig``
  with the base64 signature in the layer annotation
  ``dev.cosignproject.cosign/signature``;
* cosign v3: a Sigstore bundle (DSSE in-toto Statement, predicate
  ``https://sigstore.dev/cosign/sign/v1``) pushed as an OCI 1.1 referrer.

NOTE: cosign specs/SIGNATURE_SPEC.md; sigstore pkg/signature/payload/payload.go.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gate import descriptors, dsse, strict_json
from gate.errors import InvalidReferenceError, PolicyFailureError, RegistryError
from gate.refs import DEFAULT_REGISTRY, Reference, parse_digest

SIMPLE_SIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
COSIGN_SIGNATURE_TYPE = "cosign container image signature"
# NOTE: mixed namespaces are real: cosign pkg/oci/static/signature.go L31-37.
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_BLOB = b"{}"
EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
BUNDLE_MEDIA_TYPES = frozenset(
    {
        BUNDLE_MEDIA_TYPE,
        "application/vnd.dev.sigstore.bundle+json;version=0.1",
        "application/vnd.dev.sigstore.bundle+json;version=0.2",
        "application/vnd.dev.sigstore.bundle+json;version=0.3",
    }
)
COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
# Sealgate records the signing time in the signed payload, as containers/image does.
TIMESTAMP_KEY = "timestamp"
CREATOR_KEY = "creator"


class SignatureFormatError(PolicyFailureError):
    """Stored signature data is malformed: the image cannot be trusted on its strength."""


digest_of = descriptors.digest_of  # one digest function for the package; re-exported here


def attachment_tag(digest: str, suffix: str = "sig") -> str:
    """cosign's tag for a digest's attachments: ``sha256:ab…`` → ``sha256-ab….sig``."""
    algorithm, _, encoded = parse_digest(digest).partition(":")
    return f"{algorithm}-{encoded}.{suffix}"


def docker_reference(ref: Reference) -> str:
    """The identity cosign writes: the repository without tag, as ggcr prints it."""
    registry = "index.docker.io" if ref.registry == DEFAULT_REGISTRY else ref.registry
    return f"{registry}/{ref.path}"


def _go_json(value: Any, *, sort_keys: bool = False) -> bytes:
    """Compact JSON escaped like Go's json.Marshal (HTML-safe), so payload bytes match cosign's."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys)
    for char, escape in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e")):
        text = text.replace(char, escape)
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return text.encode()


def make_payload(digest: str, identity: str, annotations: Mapping[str, Any] | None = None) -> bytes:
    """The simple-signing payload, byte-for-byte as cosign writes it.

    Field order is critical → identity → image → type, then optional; optional
    is ``null`` without annotations (a Go nil map) and sorted keys otherwise.
    """
    critical = (
        b'{"critical":{"identity":{"docker-reference":'
        + _go_json(identity)
        + b'},"image":{"docker-manifest-digest":'
        + _go_json(parse_digest(digest))
        + b'},"type":'
        + _go_json(COSIGN_SIGNATURE_TYPE)
        + b'},"optional":'
    )
    optional = _go_json(dict(annotations), sort_keys=True) if annotations else b"null"
    return critical + optional + b"}"


@dataclass(frozen=True)
class SimpleSigning:
    """A parsed simple-signing payload; ``raw`` keeps the exact signed bytes."""

    digest: str
    identity: str
    optional: Mapping[str, Any]
    raw: bytes

    @property
    def signed_at(self) -> datetime | None:
        return timestamp_value(self.optional.get(TIMESTAMP_KEY))


def timestamp_value(value: object) -> datetime | None:
    """A Unix time as a signer wrote it; None when absent or absurd (not a number, out of range)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def parse_payload(raw: bytes) -> SimpleSigning:
    """Parse and check a simple-signing payload; SignatureFormatError says what is wrong."""
    data = strict_json.loads_object(raw, "signature payload", SignatureFormatError)
    try:
        critical = data["critical"]
        kind = critical["type"]
        digest = critical["image"]["docker-manifest-digest"]
        identity = critical["identity"]["docker-reference"]
        optional = data.get("optional") or {}
    except (KeyError, TypeError) as e:
        raise SignatureFormatError(
            "signature payload is not a cosign simple-signing document "
            "(needs critical.type, critical.image.docker-manifest-digest, critical.identity)"
        ) from e
    if kind != COSIGN_SIGNATURE_TYPE:
        raise SignatureFormatError(
            f"signature payload has type '{kind}', not '{COSIGN_SIGNATURE_TYPE}'"
        )
    if (
        not isinstance(digest, str)
        or not isinstance(identity, str)
        or not isinstance(optional, dict)
    ):
        raise SignatureFormatError("signature payload fields have the wrong JSON types")
    try:
        parse_digest(digest)
    except InvalidReferenceError as e:
        raise SignatureFormatError(
            f"signature payload names a malformed digest '{digest[:80]}'"
        ) from e
    return SimpleSigning(digest, identity, optional, raw)


def decode_b64(text: str, what: str) -> bytes:
    """Standard or URL-safe base64, padded or not (DSSE's rule; cosign writes standard)."""
    try:
        return dsse.b64decode(text.strip())
    except ValueError as e:
        raise SignatureFormatError(f"{what} is not valid base64") from e


@dataclass(frozen=True)
class SignatureLayer:
    """One signature layer descriptor of a ``.sig`` manifest, before its blob is fetched."""

    digest: str
    size: int
    media_type: str
    annotations: Mapping[str, str]

    @property
    def is_signature(self) -> bool:
        """Only simple-signing layers count (vector dir-img-cosign-other-attachment)."""
        return self.media_type == SIMPLE_SIGNING_MEDIA_TYPE

    def signature(self) -> bytes:
        text = self.annotations.get(SIGNATURE_ANNOTATION)
        if not text:
            raise SignatureFormatError(
                f"signature layer {self.digest[:19]} has no '{SIGNATURE_ANNOTATION}' annotation"
            )
        return decode_b64(text, f"the signature annotation of layer {self.digest[:19]}")

    def to_descriptor(self) -> dict[str, Any]:
        return {
            "mediaType": self.media_type,
            "size": self.size,
            "digest": self.digest,
            "annotations": dict(self.annotations),
        }


def parse_layer(layer: object) -> SignatureLayer:
    """One layer descriptor, every field type-checked before it is believed."""
    try:
        d = descriptors.Descriptor.from_dict(layer)
    except RegistryError as e:
        raise SignatureFormatError(
            "a signature layer descriptor is malformed: "
            + e.message.replace("the registry sent ", "")
        ) from e
    return SignatureLayer(d.digest, d.size, d.media_type, d.annotations)


def parse_signature_manifest(manifest: Mapping[str, Any]) -> list[SignatureLayer]:
    """Every layer of a ``.sig`` manifest (signature or not, so it can be kept on append)."""
    layers = manifest.get("layers")
    if not isinstance(layers, list):
        raise SignatureFormatError("signature manifest has no 'layers' list")
    return [parse_layer(layer) for layer in layers]


@dataclass(frozen=True)
class ArtifactManifest:
    """A manifest to push: its config blob, layer blobs, and the manifest bytes."""

    manifest: bytes
    blobs: Mapping[str, bytes] = field(default_factory=dict)
    """digest → bytes for every blob the manifest names that must be uploaded."""
    media_type: str = OCI_MANIFEST

    @property
    def digest(self) -> str:
        return digest_of(self.manifest)


def signature_manifest(
    layers: Sequence[SignatureLayer], new_blobs: Mapping[str, bytes] | None = None
) -> ArtifactManifest:
    """The ``.sig`` manifest holding ``layers``, byte for byte as cosign writes it.

    cosign builds it as go-containerregistry's empty image plus layers, so the
    config blob's keys come in the order of ggcr's ``ConfigFile`` struct, not
    sorted: the same layers then give the same config and manifest digests as
    cosign's (checked against cosign v2 and v3 in test_cosign_interop.py).
    """
    epoch = "0001-01-01T00:00:00Z"
    # NOTE: go-containerregistry pkg/v1/config.go ConfigFile field order.
    config = _go_json(
        {
            "architecture": "",
            "created": epoch,
            "history": [{"created": epoch} for _ in layers],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]},
            "config": {},
        }
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "size": len(config), "digest": digest_of(config)},
        "layers": [layer.to_descriptor() for layer in layers],
    }
    blobs = {digest_of(config): config, **(new_blobs or {})}
    return ArtifactManifest(_go_json(manifest), blobs)


def new_signature_layer(
    payload: bytes, signature: bytes, extra: Mapping[str, str] | None = None
) -> SignatureLayer:
    """``extra``: a keyless signature's certificate, chain and Rekor bundle annotations."""
    return SignatureLayer(
        digest=digest_of(payload),
        size=len(payload),
        media_type=SIMPLE_SIGNING_MEDIA_TYPE,
        annotations={SIGNATURE_ANNOTATION: base64.b64encode(signature).decode(), **(extra or {})},
    )


def append_signature(
    existing: Sequence[SignatureLayer],
    payload: bytes,
    signature: bytes,
    extra: Mapping[str, str] | None = None,
) -> ArtifactManifest:
    """Existing layers plus one new signature; never drops another signer's layer.

    A layer identical to the new one (same payload and signature) is not added twice.
    """
    layer = new_signature_layer(payload, signature, extra)
    layers = [*existing]
    if layer not in layers:
        layers.append(layer)
    return signature_manifest(layers, {layer.digest: payload})


# --- cosign v3: Sigstore bundle as an OCI 1.1 referrer ------------------------------------


def sign_statement(digest: str, annotations: Mapping[str, Any] | None = None) -> bytes:
    """The in-toto Statement cosign v3 signs for an image (predicate cosign/sign/v1)."""
    _, _, encoded = parse_digest(digest).partition(":")
    subject: dict[str, Any] = {"digest": {"sha256": encoded}}
    if annotations:
        subject["annotations"] = dict(annotations)
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [subject],
        "predicateType": COSIGN_SIGN_PREDICATE,
        "predicate": {},
    }
    return _go_json(statement)


def make_bundle(envelope_json: Mapping[str, Any], key_hint: str) -> bytes:
    """A key-signed Sigstore bundle v0.3 around a DSSE envelope (no transparency log).

    Fields as cosign v3 (sigstore-go, protojson) writes them: no empty
    ``tlogEntries`` list and no empty ``keyid``, which protojson leaves out.
    protojson's own spacing is deliberately unstable, so only the fields and
    their order are cosign's, not the whitespace.
    """
    envelope = dict(envelope_json)
    envelope["signatures"] = [
        {k: v for k, v in signature.items() if not (k == "keyid" and v == "")}
        for signature in envelope.get("signatures", [])
    ]
    bundle = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": key_hint}},
        "dsseEnvelope": envelope,
    }
    return _go_json(bundle)


@dataclass(frozen=True)
class Bundle:
    """The parts of a Sigstore bundle that key-based verification needs."""

    media_type: str
    key_hint: str | None
    envelope: Mapping[str, Any] | None
    """The DSSE envelope as JSON, when the bundle signs a statement."""
    message_signature: Mapping[str, Any] | None


def parse_bundle(data: bytes) -> Bundle:
    doc = strict_json.loads(data, "Sigstore bundle", SignatureFormatError)
    try:
        media_type = doc["mediaType"]
    except (KeyError, TypeError) as e:
        raise SignatureFormatError("Sigstore bundle is not JSON with a mediaType") from e
    if media_type not in BUNDLE_MEDIA_TYPES:
        raise SignatureFormatError(f"unsupported Sigstore bundle media type '{media_type}'")
    material = doc.get("verificationMaterial")
    if not isinstance(material, dict):
        raise SignatureFormatError("Sigstore bundle has no verificationMaterial")
    hint = (material.get("publicKey") or {}).get("hint")
    envelope = doc.get("dsseEnvelope")
    message = doc.get("messageSignature")
    if not isinstance(envelope, dict) and not isinstance(message, dict):
        raise SignatureFormatError(
            "Sigstore bundle has neither a dsseEnvelope nor a messageSignature"
        )
    return Bundle(
        media_type,
        hint,
        envelope if isinstance(envelope, dict) else None,
        message if isinstance(message, dict) else None,
    )


def referrer_manifest(
    subject: Mapping[str, Any],
    blob: bytes,
    *,
    artifact_type: str,
    annotations: Mapping[str, str],
) -> ArtifactManifest:
    """An OCI 1.1 artifact manifest with ``subject``, one layer, and the empty config.

    Byte for byte as cosign v3 writes its referrers: go-containerregistry's
    ``Manifest`` and ``Descriptor`` field order (mediaType, size, digest), the
    artifact type on the config descriptor as well as the manifest, and
    annotations sorted as Go sorts map keys.
    """
    # NOTE: cosign pkg/oci/remote/write.go WriteReferrer; ggcr pkg/v1/manifest.go field order.
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": OCI_EMPTY,
            "size": len(EMPTY_BLOB),
            "digest": EMPTY_DIGEST,
            "artifactType": artifact_type,
        },
        "layers": [{"mediaType": artifact_type, "size": len(blob), "digest": digest_of(blob)}],
        "annotations": dict(sorted(annotations.items())),
        "subject": {
            "mediaType": subject["mediaType"],
            "size": subject["size"],
            "digest": subject["digest"],
        },
        "artifactType": artifact_type,
    }
    return ArtifactManifest(_go_json(manifest), {EMPTY_DIGEST: EMPTY_BLOB, digest_of(blob): blob})


def bundle_referrer(
    subject: Mapping[str, Any], bundle: bytes, predicate_type: str, now: datetime
) -> ArtifactManifest:
    """cosign v3's referrer for a bundle (cosign pkg/oci/remote/write.go WriteReferrer)."""
    return referrer_manifest(
        subject,
        bundle,
        artifact_type=BUNDLE_MEDIA_TYPE,
        annotations={
            "dev.sigstore.bundle.content": "dsse-envelope",
            "dev.sigstore.bundle.predicateType": predicate_type,
            "org.opencontainers.image.created": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    )
