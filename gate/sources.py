"""Images outside a registry: the local engine, OCI layouts and ``docker save`` archives.

Each reader yields the digests that are *cryptographically* the image's,
computed here from bytes the source holds, never taken from what a file, a
label or a name says about itself:

* the image ID is the SHA-256 of the config bytes, and a config counts only
  when every layer it lists (``rootfs.diff_ids``) is present and hashes right;
* a manifest digest is the SHA-256 of manifest bytes that are present and
  whose config is this image's and whose layers are present and match.

``oci:PATH[:REF]`` gives the layout's manifest (or index) digest, what a
registry reports after the layout is pushed byte for byte. ``docker-archive:``
gives the image ID and, for archives that hold an OCI layout (Docker 25+),
the manifest digests that layout proves. ``docker://`` trusts the engine (it
is what runs the containers) for the image ID and its repo digests.

Files are read with size caps and JSON is parsed strictly (``strict_json``);
archives are read without extracting, no member outside the archive, no link
followed, declared sizes capped before anything is read.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
import tarfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from gate import refs, strict_json
from gate.descriptors import INDEX_MEDIA_TYPES, Descriptor, digest_of
from gate.errors import InvalidReferenceError, RegistryError, UsageError
from gate.refs import Reference, Source, SourceKind

MAX_JSON_BYTES = 8 * 1024 * 1024
MAX_MEMBER_BYTES = 16 * 1024**3
"""No layer of a real image declares more; a larger header is a hostile archive."""
MAX_MEMBERS = 100_000
MAX_PLATFORMS = 256
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"
_CHUNK = 1 << 20
INFLATE_RATIO = 100
MIN_INFLATE_BUDGET = 256 * 1024 * 1024


class LocalSourceError(UsageError):
    """A local image source is missing, unreadable, malformed or hostile (exit 2)."""


@dataclass(frozen=True)
class LocalPlatform:
    """One platform of a local index, with its own proven digest."""

    digest: str
    label: str


@dataclass(frozen=True)
class LocalImage:
    """A local image and every digest that is provably its own."""

    text: str
    """The source as the user wrote it."""
    image_id: str | None
    """SHA-256 of the config bytes (None for an index)."""
    manifest_digests: tuple[str, ...] = ()
    """Manifest (or index) digests proven from bytes here, or the engine's repo digests."""
    names: tuple[Reference, ...] = ()
    """Repository names the source gives the image (tags, repo digests): for policy rules."""
    repo_digests: tuple[Reference, ...] = ()
    """``name@digest`` pairs where registry signatures may live."""
    platforms: tuple[LocalPlatform, ...] = ()
    size: int | None = None
    """Config plus layers, in bytes, as the source stores them (None when it holds no blobs)."""
    tags: tuple[str, ...] = ()
    created: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        """The digest reported and signed first: a manifest digest when one is proven."""
        if self.manifest_digests:
            return self.manifest_digests[0]
        assert self.image_id is not None
        return self.image_id

    @property
    def digests(self) -> frozenset[str]:
        """Every digest of this image: what a signature may name, and what signing covers."""
        found = set(self.manifest_digests)
        if self.image_id is not None:
            found.add(self.image_id)
        return frozenset(found)

    @property
    def aliases(self) -> frozenset[str]:
        return self.digests - {self.digest}


def _json(data: bytes, what: str) -> Any:
    return strict_json.loads(data, what, LocalSourceError)


def _object(data: bytes, what: str) -> dict[str, Any]:
    return strict_json.loads_object(data, what, LocalSourceError)


def _name(text: object, *, short_ok: bool = False) -> Reference | None:
    """A repository name a source gives the image; ``short_ok`` allows ``app:1`` (Docker's tags).

    An OCI ``ref.name`` is usually a bare tag ("1.0"), which is no repository.
    """
    if not isinstance(text, str) or not (short_ok or "/" in text):
        return None
    try:
        return refs.parse(text)
    except InvalidReferenceError:
        return None


def _platform_label(descriptor: Mapping[str, Any]) -> str:
    p = descriptor.get("platform")
    if not isinstance(p, dict):
        return ""
    parts = (p.get("os"), p.get("architecture"), p.get("variant"))
    return "/".join(x for x in parts if isinstance(x, str) and x)


def _descriptor(value: object, what: str) -> tuple[str, int, str]:
    """digest, size and media type of a descriptor, type-checked (``Descriptor.from_dict``)."""
    if isinstance(value, dict) and "mediaType" not in value:
        value = {**value, "mediaType": ""}  # optional in index.json entries written by some tools
    try:
        d = Descriptor.from_dict(value, lenient_media_type=True)
    except RegistryError as e:
        raise LocalSourceError(f"{what}: {e.message.replace('the registry sent ', '')}") from e
    return d.digest, d.size, d.media_type


class _Blobs:
    """Content-addressed reads from a layout or an archive, each checked against its digest."""

    where: str

    def open(self, name: str) -> IO[bytes] | None:
        raise NotImplementedError

    def blob_name(self, digest: str) -> str:
        algorithm, _, encoded = digest.partition(":")
        return f"blobs/{algorithm}/{encoded}"

    def read(self, name: str, what: str, cap: int = MAX_JSON_BYTES) -> bytes:
        handle = self.open(name)
        if handle is None:
            raise LocalSourceError(f"{self.where} has no {what} ('{name[:80]}')")
        with handle:
            data = handle.read(cap + 1)
        if len(data) > cap:
            raise LocalSourceError(f"{what} in {self.where} is larger than {cap} bytes")
        return data

    def blob(self, digest: str, what: str) -> bytes:
        data = self.read(self.blob_name(digest), f"{what} {digest[:19]}…")
        if digest_of(data, digest.partition(":")[0]) != digest:
            raise LocalSourceError(
                f"{what} {digest[:19]}… in {self.where} does not match its digest (tampered)"
            )
        return data

    def stream_digest(self, name: str, what: str, *, gunzip: bool = False) -> str:
        """SHA-256 of a member, read in chunks (optionally decompressed), never all at once."""
        handle = self.open(name)
        if handle is None:
            raise LocalSourceError(f"{self.where} has no {what} ('{name[:80]}')")
        h = hashlib.sha256()
        # A layer inflating past 100 times its size, and 256 MiB, is a decompression bomb.
        budget = max(MIN_INFLATE_BUDGET, INFLATE_RATIO * self.size(name))
        total = 0
        with handle:
            reader: IO[bytes] = (
                gzip.GzipFile(fileobj=handle) if gunzip else handle  # type: ignore[assignment]
            )
            try:
                for chunk in iter(lambda: reader.read(_CHUNK), b""):
                    total += len(chunk)
                    if gunzip and total > budget:
                        raise LocalSourceError(
                            f"{what} in {self.where} inflates past {INFLATE_RATIO} times its "
                            "size; refusing a decompression bomb"
                        )
                    h.update(chunk)
            except (OSError, EOFError, zlib.error) as e:
                raise LocalSourceError(f"{what} in {self.where} is damaged ({e})") from e
        return "sha256:" + h.hexdigest()

    def size(self, name: str) -> int:
        """The stored size of ``name`` (0 when unknown)."""
        raise NotImplementedError


def _check_image(
    blobs: _Blobs, config: bytes, layers: list[str], diff_ids_of: Callable[[str], str]
) -> None:
    """Every layer is present and its uncompressed content is the config's ``diff_ids``."""
    conf = _object(config, f"the image config in {blobs.where}")
    rootfs = conf.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) for d in diff_ids):
        raise LocalSourceError(f"the image config in {blobs.where} has no rootfs.diff_ids list")
    if len(diff_ids) != len(layers):
        raise LocalSourceError(
            f"{blobs.where} has {len(layers)} layers but its config lists {len(diff_ids)}"
        )
    for name, expected in zip(layers, diff_ids, strict=True):
        if diff_ids_of(name) != expected:
            raise LocalSourceError(
                f"a layer in {blobs.where} does not match the image config (tampered archive)"
            )


def _diff_id(blobs: _Blobs, name: str, cache: dict[str, str]) -> str:
    """The uncompressed digest of a layer member: as stored, or after gunzip."""
    if name not in cache:
        handle = blobs.open(name)
        magic = b""
        if handle is not None:
            with handle:
                magic = handle.read(4)
        if magic == b"\x28\xb5\x2f\xfd":
            raise LocalSourceError(
                f"{blobs.where} has zstd-compressed layers, which cannot be checked offline yet"
            )
        cache[name] = blobs.stream_digest(name, "a layer", gunzip=magic[:2] == b"\x1f\x8b")
    return cache[name]


def _is_index(manifest: Mapping[str, Any]) -> bool:
    return manifest.get("mediaType") in INDEX_MEDIA_TYPES or isinstance(
        manifest.get("manifests"), list
    )


def _proven_manifest(
    blobs: _Blobs, digest: str, image_id: str | None, cache: dict[str, str], *, top: bool = True
) -> tuple[str, int, list[LocalPlatform]]:
    """Check a manifest (or, at the top, an index) in ``blobs`` end to end.

    Returns its image ID, size and platforms. For an index, every platform
    manifest must be present and proven in turn; an index inside an index is
    refused (a revoked platform could hide a level down). With ``image_id``
    the manifest must be that image's (an index never is: ask per platform).
    """
    manifest = _object(blobs.blob(digest, "manifest"), f"manifest {digest[:19]}… in {blobs.where}")
    if _is_index(manifest):
        if not top or image_id is not None:
            raise LocalSourceError(
                f"index {digest[:19]}… in {blobs.where} is nested or not this image's own manifest"
            )
        entries = manifest.get("manifests")
        if not isinstance(entries, list) or not entries:
            raise LocalSourceError(f"index {digest[:19]}… in {blobs.where} lists no manifests")
        platforms = []
        for i, entry in enumerate(entries[: MAX_PLATFORMS + 1]):
            if i == MAX_PLATFORMS:
                raise LocalSourceError(f"index {digest[:19]}… lists over {MAX_PLATFORMS} manifests")
            child, _, _ = _descriptor(entry, f"entry {i} of index {digest[:19]}…")
            _proven_manifest(blobs, child, None, cache, top=False)
            platforms.append(LocalPlatform(child, _platform_label(entry)))
        return "", 0, platforms
    config_digest, config_size, _ = _descriptor(
        manifest.get("config"), f"the config of manifest {digest[:19]}…"
    )
    if image_id is not None and config_digest != image_id:
        raise LocalSourceError(
            f"manifest {digest[:19]}… in {blobs.where} is not this image's (another config)"
        )
    config = blobs.blob(config_digest, "config")
    layer_list = manifest.get("layers")
    if not isinstance(layer_list, list):
        raise LocalSourceError(f"manifest {digest[:19]}… in {blobs.where} has no layers list")
    names, total = [], config_size
    for i, layer in enumerate(layer_list):
        layer_digest, size, _ = _descriptor(layer, f"layer {i} of manifest {digest[:19]}…")
        name = blobs.blob_name(layer_digest)
        if blobs.stream_digest(name, "a layer") != layer_digest:
            raise LocalSourceError(
                f"layer {layer_digest[:19]}… in {blobs.where} does not match its digest"
            )
        names.append(name)
        total += size
    _check_image(blobs, config, names, lambda n: _diff_id(blobs, n, cache))
    return config_digest, total, []


def _own_manifests(blobs: _Blobs, digest: str, image_id: str, cache: dict[str, str]) -> list[str]:
    """The manifest digests under ``digest`` that are provably ``image_id``'s.

    An archive's ``index.json`` may name an index: only the platform manifest
    whose config is this image's is its digest, never the index (which other,
    unsigned-by-us images may share).
    """
    try:
        manifest = _object(
            blobs.blob(digest, "manifest"), f"manifest {digest[:19]}… in {blobs.where}"
        )
    except LocalSourceError:
        return []
    if not _is_index(manifest):
        try:
            _proven_manifest(blobs, digest, image_id, cache, top=False)
        except LocalSourceError:
            return []
        return [digest]
    entries = manifest.get("manifests")
    found = []
    for i, entry in enumerate(entries[:MAX_PLATFORMS] if isinstance(entries, list) else []):
        child, _, _ = _descriptor(entry, f"entry {i} of index {digest[:19]}…")
        try:
            _proven_manifest(blobs, child, image_id, cache, top=False)
        except LocalSourceError:
            continue
        found.append(child)
    return found


# --- OCI image layout ---------------------------------------------------------------------------


class _LayoutBlobs(_Blobs):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.where = str(root)

    def open(self, name: str) -> IO[bytes] | None:
        path = self.root / name
        try:
            if path.is_symlink() or not path.resolve().is_relative_to(self.root.resolve()):
                raise LocalSourceError(f"{name} in {self.root} is a symlink or outside the layout")
            # NOTE: O_NONBLOCK so a FIFO planted in the layout cannot block the open.
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise LocalSourceError(f"cannot read {path}: {e.strerror}") from e
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise LocalSourceError(f"{name} in {self.root} is not a regular file")
        return os.fdopen(fd, "rb")

    def size(self, name: str) -> int:
        try:
            return (self.root / name).stat().st_size
        except OSError:
            return 0


def _split_layout(text: str) -> tuple[Path, str | None]:
    path = Path(text)
    if path.exists() or ":" not in text:
        return path, None
    head, _, ref_name = text.rpartition(":")
    return Path(head), ref_name


def _choose(manifests: list[Any], ref_name: str | None, where: str) -> dict[str, Any]:
    entries = [m for m in manifests if isinstance(m, dict)]
    if len(entries) != len(manifests):
        raise LocalSourceError(f"{where} lists a manifest that is not a descriptor object")

    def annotation(m: dict[str, Any], key: str) -> object:
        a = m.get("annotations")
        return a.get(key) if isinstance(a, dict) else None

    if ref_name is not None:
        chosen = [m for m in entries if annotation(m, REF_NAME) == ref_name]
        if not chosen:
            raise LocalSourceError(f"{where} has no manifest named '{ref_name[:80]}'")
        return chosen[0]
    if len(entries) > 1:
        names = [str(annotation(m, REF_NAME) or m.get("digest", "?"))[:80] for m in entries[:10]]
        raise LocalSourceError(
            f"{where} has {len(entries)} manifests; name one as oci:PATH:NAME ({', '.join(names)})"
        )
    return entries[0]


def open_oci_layout(text: str) -> LocalImage:
    root, ref_name = _split_layout(text)
    if not root.is_dir():
        raise LocalSourceError(
            f"{root} is not an OCI image layout directory",
            brief="that path is not an OCI image layout directory; check it",
        )
    blobs = _LayoutBlobs(root)
    index = _object(blobs.read("index.json", "index.json"), f"{root}/index.json")
    manifests = index.get("manifests")
    if not isinstance(manifests, list) or not manifests:
        raise LocalSourceError(f"{root}/index.json lists no manifests")
    descriptor = _choose(manifests, ref_name, f"{root}/index.json")
    digest, _, media_type = _descriptor(descriptor, f"the manifest named in {root}/index.json")
    image_id, size, platforms = _proven_manifest(blobs, digest, None, {})
    annotations = descriptor.get("annotations")
    names = tuple(
        n
        for n in (
            _name(annotations.get(key)) if isinstance(annotations, dict) else None
            for key in (CONTAINERD_NAME, REF_NAME)
        )
        if n is not None
    )
    return LocalImage(
        text,
        image_id or None,
        (digest,),
        names=names,
        repo_digests=tuple(Reference(n.registry, n.path, None, digest) for n in names),
        platforms=tuple(platforms),
        size=size or None,
        tags=(ref_name,) if ref_name else (),
        extra={"media_type": media_type},
    )


# --- docker save archives -------------------------------------------------------------------------


class _ArchiveBlobs(_Blobs):
    def __init__(self, archive: tarfile.TarFile, path: str) -> None:
        self.archive = archive
        self.where = path
        self.members = _safe_members(archive, path)

    def open(self, name: str) -> IO[bytes] | None:
        member = self.members.get(str(PurePosixPath(name)))
        if member is None:
            return None
        if not member.isfile():
            raise LocalSourceError(
                f"{self.where}: '{name[:80]}' is a link or special file, which is not followed"
            )
        return self.archive.extractfile(member)

    def size(self, name: str) -> int:
        member = self.members.get(str(PurePosixPath(name)))
        return member.size if member is not None else 0


def _safe_members(archive: tarfile.TarFile, path: str) -> dict[str, tarfile.TarInfo]:
    members: dict[str, tarfile.TarInfo] = {}
    for count, member in enumerate(archive, 1):
        name = PurePosixPath(member.name)
        if name.is_absolute() or ".." in name.parts:
            raise LocalSourceError(
                f"{path} has an entry '{member.name[:80]}' outside the archive (path traversal)"
            )
        if member.size > MAX_MEMBER_BYTES:
            raise LocalSourceError(
                f"{path} declares an entry '{member.name[:80]}' of {member.size} bytes, "
                "over the cap"
            )
        if count > MAX_MEMBERS:
            raise LocalSourceError(f"{path} has more than {MAX_MEMBERS} entries; refusing it")
        members[str(name)] = member
    return members


def _open_tar(path: str) -> tarfile.TarFile:
    """Open a tar archive; the caller closes it (``with``), so open errors stay apart."""
    if not Path(path).is_file():
        raise LocalSourceError(
            f"{path} does not exist or is not a regular file",
            brief="that archive does not exist or is not a regular file; check the path",
        )
    with open(path, "rb") as probe:
        magic = probe.read(6)
    if magic[:2] == b"\x1f\x8b" or magic[:3] == b"BZh" or magic == b"\xfd7zXZ\x00":
        # NOTE: tarfile re-inflates a compressed stream from the start on every backward
        # seek, so reading members out of order would cost a full inflate each time.
        raise LocalSourceError(
            f"{path} is a compressed archive; decompress it first (e.g. gunzip), "
            "as `docker save` writes a plain tar"
        )
    try:
        return tarfile.open(path, mode="r:")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise LocalSourceError(f"{path} is not a tar archive ({e})") from e


def open_docker_archive(text: str) -> LocalImage:
    path = text
    with _open_tar(path) as archive:
        try:
            return _read_archive(text, _ArchiveBlobs(archive, path))
        except (tarfile.TarError, EOFError, zlib.error) as e:
            raise LocalSourceError(f"{path} is a damaged tar archive ({e})") from e


def _read_archive(text: str, blobs: _ArchiveBlobs) -> LocalImage:
    path = blobs.where
    entries = _json(blobs.read("manifest.json", "manifest.json"), f"{path}: manifest.json")
    if not isinstance(entries, list) or len(entries) != 1 or not isinstance(entries[0], dict):
        raise LocalSourceError(f"{path}: manifest.json must describe exactly one image")
    entry = entries[0]
    config_name, layers = entry.get("Config"), entry.get("Layers")
    if not isinstance(config_name, str) or not (
        isinstance(layers, list) and all(isinstance(x, str) for x in layers)
    ):
        raise LocalSourceError(f"{path}: manifest.json needs 'Config' and a 'Layers' list")
    config = blobs.read(config_name, "the image config")
    image_id = digest_of(config)
    stem = PurePosixPath(config_name).name.removesuffix(".json")
    if len(stem) == 64 and stem != image_id.split(":")[1]:
        raise LocalSourceError(
            f"{path}: config '{config_name[:80]}' does not match its own digest (tampered archive)"
        )
    cache: dict[str, str] = {}
    _check_image(blobs, config, layers, lambda n: _diff_id(blobs, n, cache))
    size = len(config) + sum(blobs.size(layer) for layer in layers)

    manifest_digests: list[str] = []
    repo_tags = entry.get("RepoTags") or []
    if not isinstance(repo_tags, list):
        raise LocalSourceError(f"{path}: manifest.json has a 'RepoTags' that is not a list")
    names = [n for n in (_name(t, short_ok=True) for t in repo_tags) if n is not None]
    if blobs.open("index.json") is not None:
        index = _object(blobs.read("index.json", "index.json"), f"{path}: index.json")
        manifests = index.get("manifests")
        for i, m in enumerate(manifests if isinstance(manifests, list) else []):
            digest, _, _ = _descriptor(m, f"entry {i} of {path}: index.json")
            # a manifest this archive cannot prove is this image's gives it no digest
            manifest_digests += _own_manifests(blobs, digest, image_id, cache)
            annotations = m.get("annotations")
            if isinstance(annotations, dict):
                names += [n for n in (_name(annotations.get(CONTAINERD_NAME)),) if n]
    tags = tuple(t for t in repo_tags if isinstance(t, str))
    unique = tuple(dict.fromkeys(names))
    manifest_digests = list(dict.fromkeys(manifest_digests))
    return LocalImage(
        text,
        image_id,
        tuple(manifest_digests),
        names=unique,
        repo_digests=tuple(
            Reference(n.registry, n.path, None, d) for n in unique for d in manifest_digests
        ),
        size=size,
        tags=tags,
        extra={"image_id": image_id},
    )


# --- the local engine -----------------------------------------------------------------------------


def open_engine_image(name: str, engine_factory: Callable[[], Any]) -> LocalImage:
    engine = engine_factory()
    info = engine.image(name)
    repo_digests = [
        r
        for r in (_name(t, short_ok=True) for t in info.repo_digests)
        if r is not None and r.digest
    ]
    names = [r for r in (_name(t, short_ok=True) for t in info.repo_tags) if r is not None]
    names += [Reference(r.registry, r.path) for r in repo_digests]
    return LocalImage(
        f"docker://{name}",
        info.id,
        tuple(dict.fromkeys(r.digest for r in repo_digests if r.digest)),
        names=tuple(dict.fromkeys(Reference(n.registry, n.path) for n in names)),
        repo_digests=tuple(repo_digests),
        # The engine's own Size is the unpacked filesystem, another quantity: the
        # size, config plus layers as pushed, comes from the registry (verify).
        size=None,
        tags=tuple(info.repo_tags),
        created=info.created,
        extra={"image_id": info.id, "repo_digests": [str(r) for r in repo_digests]},
    )


LOCAL_READERS: Mapping[SourceKind, Callable[[Source, Callable[[], Any] | None], LocalImage]] = {
    SourceKind.OCI: lambda s, _: open_oci_layout(s.path or ""),
    SourceKind.DOCKER_ARCHIVE: lambda s, _: open_docker_archive(s.path or ""),
    SourceKind.DOCKER: lambda s, factory: open_engine_image(s.name or "", factory or _engine),
}
"""One reader per local scheme (STYLE.md #4)."""


def _engine() -> Any:
    from gate.engine import Engine

    return Engine()


def open_local(source: Source, engine_factory: Callable[[], Any] | None = None) -> LocalImage:
    """Dispatch on the source's scheme."""
    reader = LOCAL_READERS.get(source.kind)
    if reader is None or not (source.path or source.name):
        raise LocalSourceError(f"{source.text} is not a local image source")
    return reader(source, engine_factory)
