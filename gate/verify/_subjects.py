"""What is being verified: one ``Subject`` per image, whatever its source.

A subject holds the digests that are cryptographically this image's, the
repository names it goes by (for policy rules), its platforms (for an index),
its size, and every place evidence about it may live. One small seam per
source scheme produces it (STYLE.md #4): a registry reference is resolved
here; ``docker://``, ``oci:`` and ``docker-archive:`` are read by
``gate.sources``, which computes their digests from the bytes they hold.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from gate import strict_json
from gate.descriptors import INDEX_MEDIA_TYPES, Descriptor, Manifest
from gate.errors import RegistryError
from gate.refs import Reference, Repository, Source, SourceKind
from gate.registry import RegistryClient
from gate.sources import LocalImage
from gate.verify._evidence import Place

MAX_PLATFORMS = 256
"""More platforms than any real index has; a larger one is a registry trying to stall us."""


@dataclass(frozen=True)
class Platform:
    """One platform of an index, with the places its own evidence may live."""

    digest: str
    label: str
    places: tuple[Place, ...]


@dataclass(frozen=True)
class Subject:
    """One image, as far as verification is concerned."""

    image: str
    """How results name it: the normalised reference, or the local source as written."""
    digest: str
    """The digest reported and decided: the manifest digest where one is proven, else the ID."""
    names: tuple[Reference, ...]
    """Repository names; every one of them must satisfy its policy rule."""
    places: tuple[Place, ...]
    """Every (repository, digest) where signatures, revocations or attestations may be."""
    aliases: frozenset[str] = frozenset()
    """Other digests provably of the same image (its config digest, other manifest digests)."""
    platforms: tuple[Platform, ...] = ()
    size: int | None = None
    """Config plus layers, in bytes, as the manifest of ``digest`` lists them (the
    registry's manifest for an engine image); None for an index, or with no manifest."""
    tag_digest: str | None = None
    """What the tag points at now, for a reference pinned by both tag and digest."""
    reference: Reference | None = None
    """The registry reference, for registry subjects."""
    extra: Mapping[str, Any] = field(default_factory=dict)


# --- registry references --------------------------------------------------------------------


def registry_subject(ref: Reference, client: RegistryClient, *, check_drift: bool) -> Subject:
    """Resolve a reference to its manifest; with ``check_drift``, also what its tag says now."""
    tag_digest = None
    if ref.digest is not None and ref.tag is not None and check_drift:
        manifest = client.get_manifest(ref.repository, ref.tag)
        tag_digest = manifest.digest
        if manifest.digest != ref.digest:
            # Drift settles it (UNTRUSTED); nothing more is read for a digest the tag left.
            return Subject(str(ref), ref.digest, (ref,), (), tag_digest=tag_digest, reference=ref)
    else:
        manifest = client.get_manifest(ref.repository, ref.identifier)
    repo = ref.repository
    config, size, platforms = _manifest_facts(manifest, repo)
    # The ledger is keyed by digest alone: the manifest's, and the config's (a local image ID).
    places: list[Place] = [(repo, manifest.digest), (None, manifest.digest)]
    if config is not None:
        places.append((None, config))
    return Subject(
        str(ref),
        manifest.digest,
        (ref,),
        tuple(places),
        aliases=frozenset({config} if config else ()),
        platforms=platforms,
        size=size,
        tag_digest=tag_digest,
        reference=ref,
    )


def _manifest_facts(
    manifest: Manifest, repo: Repository
) -> tuple[str | None, int | None, tuple[Platform, ...]]:
    """Config digest, size and platforms, from the manifest bytes already fetched.

    An index whose platform list cannot be read is an error: a revoked platform
    could hide behind it. An image manifest whose sizes are odd only loses its size.
    """
    what = f"manifest {manifest.digest[:19]}… of {repo}"
    document = strict_json.loads_object(manifest.data, what, RegistryError)
    if manifest.media_type in INDEX_MEDIA_TYPES or "manifests" in document:
        entries = document.get("manifests")
        if not isinstance(entries, list) or len(entries) > MAX_PLATFORMS:
            raise RegistryError(f"{what} is an index without a readable 'manifests' list")
        platforms = []
        for entry in entries:
            child = Descriptor.from_dict(entry)
            if child.media_type in INDEX_MEDIA_TYPES:
                # A revoked platform could hide a level down; no real image nests indexes.
                raise RegistryError(
                    f"{what} nests another index ({child.digest[:19]}…); refusing it"
                )
            places = ((repo, child.digest), (None, child.digest))
            platforms.append(Platform(child.digest, _label(child.platform), places))
        return None, None, tuple(platforms)
    try:
        config = Descriptor.from_dict(document.get("config"))
        layers = document.get("layers")
        sizes = [Descriptor.from_dict(layer).size for layer in layers or []]
    except (RegistryError, TypeError):
        return None, None, ()
    return config.digest, config.size + sum(sizes), ()


def _label(platform: Mapping[str, Any] | None) -> str:
    if not platform:
        return ""
    parts = (platform.get("os"), platform.get("architecture"), platform.get("variant"))
    return "/".join(p for p in parts if isinstance(p, str) and p)


# --- local sources --------------------------------------------------------------------------


def local_subject(image: LocalImage) -> Subject:
    """A local image: its proven digests, in the ledger and wherever its names put them."""
    repos = tuple(dict.fromkeys(Repository(n.registry, n.path) for n in image.names))
    places: list[Place] = [(None, d) for d in sorted(image.digests)]
    places += [(r.repository, r.digest) for r in image.repo_digests if r.digest]
    platforms = tuple(
        Platform(
            p.digest,
            p.label,
            ((None, p.digest), *((repo, p.digest) for repo in repos)),
        )
        for p in image.platforms
    )
    extra = dict(image.extra)
    if image.tags:
        extra["tags"] = list(image.tags)
    if image.created:
        extra["created"] = image.created
    return Subject(
        image.text,
        image.digest,
        image.names,
        tuple(dict.fromkeys(places)),
        aliases=image.aliases,
        platforms=platforms,
        size=image.size,
        extra=extra,
    )


def from_registry(
    image: LocalImage, client: RegistryClient
) -> tuple[tuple[Platform, ...], int | None]:
    """For an engine image with repo digests: the platform it runs, and its registry size.

    The engine keeps layers uncompressed and knows no manifest sizes, so the
    size comes from the registry manifest whose config is the image's: for an
    image pulled by an index digest, the platform the engine chose (whose own
    signatures and revocations count, as when the index is verified from the
    registry); for an image manifest, that manifest.
    """
    found: list[Platform] = []
    size: int | None = None
    for ref in image.repo_digests:
        if ref.digest is None:
            continue
        manifest = client.get_manifest(ref.repository, ref.digest)
        config, own_size, platforms = _manifest_facts(manifest, ref.repository)
        if config is not None and config == image.image_id and size is None:
            size = own_size
        for platform in platforms:
            child = client.get_manifest(ref.repository, platform.digest)
            config, child_size, _ = _manifest_facts(child, ref.repository)
            if config == image.image_id:
                places = ((ref.repository, platform.digest), (None, platform.digest))
                found.append(Platform(platform.digest, platform.label, places))
                size = child_size if size is None else size
                break
    return tuple(found), size


SubjectReader = Callable[[Source], Subject]


def reader_table(
    client: RegistryClient | None,
    open_local: Callable[[Source], LocalImage],
    *,
    check_drift: bool,
) -> Mapping[SourceKind, SubjectReader]:
    """One seam per source scheme, sharing one client and one local reader."""

    def registry(source: Source) -> Subject:
        if client is None or source.reference is None:
            raise RegistryError(f"{source.text}: no registry client is configured")
        return registry_subject(source.reference, client, check_drift=check_drift)

    def local(source: Source) -> Subject:
        image = open_local(source)
        subject = local_subject(image)
        if source.kind is SourceKind.DOCKER and client is not None and image.image_id:
            running, size = from_registry(image, client)
            subject = replace(subject, platforms=subject.platforms + running, size=size)
        return subject

    return {
        SourceKind.REGISTRY: registry,
        SourceKind.DOCKER: local,
        SourceKind.OCI: local,
        SourceKind.DOCKER_ARCHIVE: local,
    }
