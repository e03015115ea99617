"""Real-shaped images as files: layers, configs, manifests, OCI layouts and docker save archives.

Tests build what ``docker save`` (20.10 and 25+) and ``skopeo copy oci:`` write,
byte for byte in structure, so the readers are tested on the shapes they meet,
and hostile variants are one argument away.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(files: Mapping[str, bytes]) -> bytes:
    """An uncompressed layer: a tar of ``files``, with fixed metadata so it is reproducible."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@dataclass
class Image:
    """One image: uncompressed layers, its config, and a manifest over gzipped layers."""

    layers: list[bytes]
    arch: str = "amd64"
    compressed: list[bytes] = field(init=False)
    config: bytes = field(init=False)
    manifest: bytes = field(init=False)

    def __post_init__(self) -> None:
        self.compressed = [gzip.compress(layer, mtime=0) for layer in self.layers]
        self.config = json.dumps(
            {
                "architecture": self.arch,
                "os": "linux",
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": [sha(x) for x in self.layers]},
            },
            separators=(",", ":"),
        ).encode()
        self.manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": OCI_CONFIG,
                    "digest": sha(self.config),
                    "size": len(self.config),
                },
                "layers": [
                    {"mediaType": OCI_LAYER_GZIP, "digest": sha(c), "size": len(c)}
                    for c in self.compressed
                ],
            },
            separators=(",", ":"),
        ).encode()

    @property
    def image_id(self) -> str:
        return sha(self.config)

    @property
    def digest(self) -> str:
        return sha(self.manifest)

    @property
    def size(self) -> int:
        return len(self.config) + sum(len(c) for c in self.compressed)

    def blobs(self) -> dict[str, bytes]:
        return {sha(b): b for b in (self.config, self.manifest, *self.compressed)}


def make_image(text: str = "hello", arch: str = "amd64") -> Image:
    return Image([layer_tar({"hello.txt": text.encode()})], arch)


def index_of(images: Sequence[Image]) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": im.digest,
                    "size": len(im.manifest),
                    "platform": {"os": "linux", "architecture": im.arch},
                }
                for im in images
            ],
        },
        separators=(",", ":"),
    ).encode()


def write_layout(
    root: Path,
    images: Sequence[Image],
    *,
    top: bytes | None = None,
    annotations: Mapping[str, str] | None = None,
) -> str:
    """An OCI image layout holding ``images``; ``top`` (an index) names them when given.

    Returns the digest ``index.json`` points at.
    """
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    for image in images:
        for digest, data in image.blobs().items():
            (blobs / digest.split(":")[1]).write_bytes(data)
    head = top if top is not None else images[0].manifest
    (blobs / sha(head).split(":")[1]).write_bytes(head)
    descriptor: dict[str, Any] = {
        "mediaType": OCI_INDEX if top is not None else OCI_MANIFEST,
        "digest": sha(head),
        "size": len(head),
    }
    if annotations:
        descriptor["annotations"] = dict(annotations)
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [descriptor]}))
    return sha(head)


def write_tar(
    path: Path, members: Mapping[str, bytes], extra: Sequence[tarfile.TarInfo] = ()
) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info)


def docker_save_v1(path: Path, image: Image, tags: Sequence[str] = ()) -> None:
    """What Docker 20.10 `docker save` writes: `<id>.json`, `<n>/layer.tar`, manifest.json."""
    hexid = image.image_id.split(":")[1]
    members = {f"{hexid}.json": image.config}
    layers = []
    for i, layer in enumerate(image.layers):
        members[f"{i:064x}/layer.tar"] = layer
        layers.append(f"{i:064x}/layer.tar")
    manifest = [{"Config": f"{hexid}.json", "RepoTags": list(tags), "Layers": layers}]
    members["manifest.json"] = json.dumps(manifest).encode()
    write_tar(path, members)


def docker_save_oci(
    path: Path,
    image: Image,
    tags: Sequence[str] = (),
    *,
    index_manifests: Sequence[Mapping[str, Any]] | None = None,
    extra_blobs: Mapping[str, bytes] | None = None,
) -> None:
    """What Docker 25+ ``docker save`` writes: an OCI layout plus manifest.json.

    The layout keeps the registry's manifest and compressed layers, so the
    archive proves the manifest digest. ``index_manifests`` overrides what
    ``index.json`` lists (a hostile archive names somebody else's digest).
    """
    members = {
        "oci-layout": b'{"imageLayoutVersion":"1.0.0"}',
        **{f"blobs/sha256/{d.split(':')[1]}": b for d, b in image.blobs().items()},
        **{f"blobs/sha256/{d.split(':')[1]}": b for d, b in (extra_blobs or {}).items()},
    }
    manifests = (
        list(index_manifests)
        if index_manifests is not None
        else [
            {
                "mediaType": OCI_MANIFEST,
                "digest": image.digest,
                "size": len(image.manifest),
                **({"annotations": {"io.containerd.image.name": tags[0]}} if tags else {}),
            }
        ]
    )
    members["index.json"] = json.dumps({"schemaVersion": 2, "manifests": manifests}).encode()
    layers = [f"blobs/sha256/{sha(c).split(':')[1]}" for c in image.compressed]
    members["manifest.json"] = json.dumps(
        [
            {
                "Config": f"blobs/sha256/{image.image_id.split(':')[1]}",
                "RepoTags": list(tags),
                "Layers": layers,
            }
        ]
    ).encode()
    write_tar(path, members)
