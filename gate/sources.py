"""Images outside a registry: the local engine, OCI layouts and ``docker save`` archives.

Each source yields the digests an image is known by, computed from its own
bytes, offline:

* ``oci:PATH[:REF]`` — the manifest digest from ``index.json`` (what a registry
  reports after the layout is pushed byte-for-byte), checked against the blob;
* ``docker-archive:PATH`` — the config digest, i.e. the image ID (``docker
  save`` of Docker 20.10 keeps layers uncompressed, so the registry manifest
  digest cannot be known offline; an archive holding an OCI layout also gives
  its manifest digest);
* ``docker://NAME`` — the engine's image ID and every repo digest.

Archives are read without extracting: no member outside the archive, no
symlink followed, and declared sizes capped before anything is read.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from gate import refs
from gate.descriptors import digest_of
from gate.errors import InvalidReferenceError, UsageError
from gate.refs import Reference, Source, SourceKind

MAX_JSON_BYTES = 8 * 1024 * 1024
MAX_MEMBER_BYTES = 4 * 1024**3
"""No layer of a real image declares more; a larger header is a hostile archive."""
REF_NAME = "org.opencontainers.image.ref.name"


class LocalSourceError(UsageError):
    """A local image source is missing, unreadable, malformed or hostile (exit 2)."""


@dataclass(frozen=True)
class LocalImage:
    """A local image and every digest that identifies it."""

    text: str
    """The source as the user wrote it."""
    digest: str
    """The digest verified and signed: manifest digest for layouts, image ID otherwise."""
    aliases: frozenset[str] = frozenset()
    """Other digests of the same image (image ID, repo digests)."""
    repo_digests: tuple[Reference, ...] = ()
    """Registry references by digest, where registry signatures may live."""
    size: int | None = None
    tags: tuple[str, ...] = ()
    created: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def digests(self) -> frozenset[str]:
        return self.aliases | {self.digest}


def _json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as e:
        raise LocalSourceError(f"{what} is not JSON") from e


# --- OCI image layout ---------------------------------------------------------------------------


def _split_layout(text: str) -> tuple[Path, str | None]:
    path = Path(text)
    if path.exists() or ":" not in text:
        return path, None
    head, _, ref_name = text.rpartition(":")
    return Path(head), ref_name


def _layout_blob(root: Path, digest: str, what: str) -> bytes:
    algorithm, _, encoded = refs.parse_digest(digest).partition(":")
    blob = root / "blobs" / algorithm / encoded
    try:
        if blob.is_symlink() or not blob.resolve().is_relative_to(root.resolve()):
            raise LocalSourceError(
                f"{what} {digest[:19]}… in {root} is a symlink or outside the layout"
            )
        if blob.stat().st_size > MAX_JSON_BYTES:
            raise LocalSourceError(
                f"{what} {digest[:19]}… in {root} is larger than {MAX_JSON_BYTES} bytes"
            )
        data = blob.read_bytes()
    except FileNotFoundError as e:
        raise LocalSourceError(
            f"{root}/index.json names {what} {digest[:19]}…, but that blob is missing"
        ) from e
    except OSError as e:
        raise LocalSourceError(f"cannot read {blob}: {e.strerror}") from e
    if digest_of(data) != digest:
        raise LocalSourceError(
            f"blob {digest[:19]}… in {root} does not match its digest (corrupted layout)"
        )
    return data


def open_oci_layout(text: str) -> LocalImage:
    root, ref_name = _split_layout(text)
    index_path = root / "index.json"
    try:
        index = _json(index_path.read_bytes()[: MAX_JSON_BYTES + 1], f"{index_path}")
    except FileNotFoundError as e:
        raise LocalSourceError(f"{root} is not an OCI image layout: it has no index.json") from e
    except OSError as e:
        raise LocalSourceError(f"cannot read {index_path}: {e.strerror}") from e
    manifests = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(manifests, list) or not manifests:
        raise LocalSourceError(f"{index_path} lists no manifests")
    if ref_name is not None:
        chosen = [m for m in manifests if (m.get("annotations") or {}).get(REF_NAME) == ref_name]
        if not chosen:
            raise LocalSourceError(f"{index_path} has no manifest named '{ref_name}'")
    elif len(manifests) > 1:
        names = [
            str((m.get("annotations") or {}).get(REF_NAME, m.get("digest", "?"))) for m in manifests
        ]
        raise LocalSourceError(
            f"{index_path} has {len(manifests)} manifests; "
            f"name one as oci:{root}:NAME ({', '.join(names)})"
        )
    else:
        chosen = manifests
    descriptor = chosen[0]
    try:
        digest = refs.parse_digest(str(descriptor.get("digest")))
    except InvalidReferenceError as e:
        raise LocalSourceError(f"{index_path}: {e.message}") from e
    manifest = _layout_blob(root, digest, "manifest")
    return LocalImage(
        text,
        digest,
        size=len(manifest),
        tags=(ref_name,) if ref_name else (),
        extra={"media_type": descriptor.get("mediaType")},
    )


# --- docker save archives -------------------------------------------------------------------------


def _safe_members(archive: tarfile.TarFile, path: str) -> dict[str, tarfile.TarInfo]:
    members: dict[str, tarfile.TarInfo] = {}
    for member in archive:
        name = PurePosixPath(member.name)
        if name.is_absolute() or ".." in name.parts:
            raise LocalSourceError(
                f"{path} has an entry '{member.name}' outside the archive (path traversal)"
            )
        if member.size > MAX_MEMBER_BYTES:
            raise LocalSourceError(
                f"{path} declares an entry '{member.name}' of {member.size} bytes, over the cap"
            )
        members[str(name)] = member
    return members


def _read_member(
    archive: tarfile.TarFile, members: Mapping[str, tarfile.TarInfo], name: str, path: str
) -> bytes:
    member = members.get(str(PurePosixPath(name)))
    if member is None:
        raise LocalSourceError(f"{path} names '{name}', but the archive has no such entry")
    if not member.isfile():
        raise LocalSourceError(f"{path}: '{name}' is a link or special file, which is not followed")
    if member.size > MAX_JSON_BYTES:
        raise LocalSourceError(f"{path}: '{name}' is larger than {MAX_JSON_BYTES} bytes")
    handle = archive.extractfile(member)
    if handle is None:
        raise LocalSourceError(f"{path}: cannot read '{name}'")
    return handle.read(MAX_JSON_BYTES + 1)


def _open_tar(path: str) -> tarfile.TarFile:
    """Open a tar archive; the caller closes it (``with``), so open errors stay apart."""
    try:
        return tarfile.open(path, mode="r:*")
    except FileNotFoundError as e:
        raise LocalSourceError(f"{path} does not exist") from e
    except (tarfile.TarError, OSError) as e:
        raise LocalSourceError(f"{path} is not a tar archive ({e})") from e


def open_docker_archive(text: str) -> LocalImage:
    path = text
    with _open_tar(path) as archive:
        try:
            members = _safe_members(archive, path)
            entries = _json(
                _read_member(archive, members, "manifest.json", path), f"{path}: manifest.json"
            )
        except tarfile.TarError as e:
            raise LocalSourceError(f"{path} is a damaged tar archive ({e})") from e
        if not isinstance(entries, list) or len(entries) != 1 or not isinstance(entries[0], dict):
            raise LocalSourceError(f"{path}: manifest.json must describe exactly one image")
        entry = entries[0]
        config_name = str(entry.get("Config", ""))
        config = _read_member(archive, members, config_name, path)
        image_id = digest_of(config)
        stem = PurePosixPath(config_name).name.removesuffix(".json")
        if stem != image_id.split(":")[1]:
            raise LocalSourceError(
                f"{path}: config '{config_name}' does not match its own digest (tampered archive)"
            )
        aliases: set[str] = set()
        if "index.json" in members:
            index = _json(_read_member(archive, members, "index.json", path), f"{path}: index.json")
            for m in index.get("manifests", []) if isinstance(index, dict) else []:
                if isinstance(m, dict) and isinstance(m.get("digest"), str):
                    aliases.add(m["digest"])
        size = sum(
            members[str(PurePosixPath(layer))].size
            for layer in entry.get("Layers", [])
            if str(PurePosixPath(layer)) in members
        )
    tags = tuple(str(t) for t in entry.get("RepoTags") or [])
    return LocalImage(
        text, image_id, frozenset(aliases), size=size, tags=tags, extra={"image_id": image_id}
    )


# --- the local engine -----------------------------------------------------------------------------


def open_engine_image(name: str, engine_factory: Callable[[], Any]) -> LocalImage:
    engine = engine_factory()
    info = engine.image(name)
    repo_digests = []
    for text in info.repo_digests:
        try:
            repo_digests.append(refs.parse(text))
        except InvalidReferenceError:
            continue
    aliases = frozenset(r.digest for r in repo_digests if r.digest)
    return LocalImage(
        f"docker://{name}",
        info.id,
        aliases,
        tuple(repo_digests),
        size=info.size,
        tags=tuple(info.repo_tags),
        created=info.created,
        extra={"image_id": info.id, "repo_digests": [str(r) for r in repo_digests]},
    )


def open_local(source: Source, engine_factory: Callable[[], Any] | None = None) -> LocalImage:
    """Dispatch on the source's scheme (STYLE.md #4)."""
    if source.kind is SourceKind.OCI and source.path:
        return open_oci_layout(source.path)
    if source.kind is SourceKind.DOCKER_ARCHIVE and source.path:
        return open_docker_archive(source.path)
    if source.kind is SourceKind.DOCKER and source.name:
        if engine_factory is None:
            from gate.engine import Engine

            engine_factory = Engine
        return open_engine_image(source.name, engine_factory)
    raise LocalSourceError(f"{source.text} is not a local image source")
