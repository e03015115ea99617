"""OCI content values: media types, descriptors, manifests and digests (pure).

NOTE: image-spec ``media-types.md``, ``descriptor.md`` and ``manifest.md``;
distribution-spec for the referrers tag schema (FORMATS.md §5). A manifest
keeps the exact bytes it was served as, because its digest is computed over
them and a signature names that digest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gate import strict_json
from gate.errors import DigestMismatchError, InvalidReferenceError, RegistryError
from gate.refs import parse_digest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
MANIFEST_MEDIA_TYPES: tuple[str, ...] = (
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
)
INDEX_MEDIA_TYPES: frozenset[str] = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor (image-spec ``descriptor.md``)."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    artifact_type: str | None = None
    platform: Mapping[str, Any] | None = None

    @classmethod
    def from_dict(cls, d: Any, *, lenient_media_type: bool = False) -> Descriptor:
        """Check and convert a descriptor object; RegistryError if it is malformed.

        Every field is type-checked before it is believed. ``lenient_media_type``
        allows an empty media type (an OCI layout's index.json may omit it).
        """
        if not isinstance(d, dict):
            raise RegistryError("the registry sent a descriptor that is not a JSON object")
        media_type, digest, size = d.get("mediaType"), d.get("digest"), d.get("size")
        if not isinstance(media_type, str) or not (media_type or lenient_media_type):
            raise RegistryError("the registry sent a descriptor without a mediaType")
        if not isinstance(digest, str):
            kind = f"{media_type} " if media_type else ""
            raise RegistryError(f"the registry sent a {kind}descriptor without a digest")
        try:
            parse_digest(digest)
        except InvalidReferenceError as e:
            raise RegistryError(f"the registry sent a descriptor with a bad digest: {e}") from e
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise RegistryError(f"the registry sent descriptor {digest} with a bad size")
        annotations = d.get("annotations") or {}
        if not isinstance(annotations, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
        ):
            raise RegistryError(f"the registry sent descriptor {digest} with malformed annotations")
        artifact_type = d.get("artifactType")
        if artifact_type is not None and not isinstance(artifact_type, str):
            raise RegistryError(
                f"the registry sent descriptor {digest} with a malformed artifactType"
            )
        platform = d.get("platform")
        if platform is not None and not isinstance(platform, dict):
            raise RegistryError(f"the registry sent descriptor {digest} with a malformed platform")
        return cls(media_type, digest, size, dict(annotations), artifact_type, platform)

    def to_dict(self) -> dict[str, Any]:
        """OCI JSON field names; optional fields only when set."""
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.artifact_type is not None:
            out["artifactType"] = self.artifact_type
        if self.platform is not None:
            out["platform"] = dict(self.platform)
        return out


@dataclass(frozen=True)
class Manifest:
    """A manifest or index exactly as served; parse with ``json()``, never re-serialise."""

    data: bytes = field(repr=False)
    media_type: str
    digest: str
    """Digest of ``data``; equal to the requested digest when fetched by digest."""

    def json(self) -> dict[str, Any]:
        """The parsed document; RegistryError if it is not a JSON object."""
        return strict_json.loads_object(self.data, f"manifest {self.digest[:19]}…", RegistryError)

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.data))


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    """``<algorithm>:<hex>`` of ``data``."""
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def referrers_tag(digest: str) -> str:
    """The referrers tag-schema tag for ``digest``: ``sha256-<hex>`` (distribution-spec L787)."""
    algorithm, _, encoded = parse_digest(digest).partition(":")
    return f"{algorithm[:32]}-{encoded[:64]}"


def check_digest(data: bytes, expected: str, what: str) -> None:
    """DigestMismatchError unless ``data`` hashes to ``expected`` (any registered algorithm)."""
    algorithm = expected.split(":", 1)[0]
    if digest_of(data, algorithm) != expected:
        raise DigestMismatchError(
            f"{what} does not match its digest {expected}; the registry sent other bytes"
        )
