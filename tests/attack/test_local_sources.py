"""Attacks on local image sources: docker-archive and OCI layouts."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from gate.cli import main
from tests.imagefiles import (
    OCI_INDEX,
    docker_save_oci,
    index_of,
    make_image,
    sha,
    write_layout,
)


def verify(capsys: pytest.CaptureFixture[str], image: str, pub: str) -> tuple[int, dict[str, Any]]:
    code = main(["verify", image, "--key", pub, "-o", "json"])
    out, _ = capsys.readouterr()
    return code, json.loads(out)[0]


def test_archive_borrows_a_signed_index_digest_for_an_unsigned_image(
    tmp_path: Path, keypair: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A docker-archive whose manifest.json is EVIL but whose index.json names somebody else's
    (signed) index is reported with the signed index's digest and TRUSTED.

    sources._read_archive proves each index.json entry with _proven_manifest(…, image_id), but
    for an *index* _proven_manifest never compares the children's config with image_id (it
    passes None), so any index whose children are present in the archive counts as "this
    image's digest", and it even becomes the digest reported and decided.
    """
    good = [make_image("good amd64", "amd64"), make_image("good arm64", "arm64")]
    top = index_of(good)
    layout = tmp_path / "good"
    write_layout(layout, good, top=top)
    assert main(["sign", f"oci:{layout}", "--key", keypair[0]]) == 0
    capsys.readouterr()
    assert verify(capsys, f"oci:{layout}", keypair[1])[1]["status"] == "TRUSTED"

    evil = make_image("evil payload")
    extra = {k: v for im in good for k, v in im.blobs().items()}
    extra[sha(top)] = top
    archive = tmp_path / "evil.tar"
    docker_save_oci(
        archive,
        evil,
        index_manifests=[
            {
                "mediaType": OCI_INDEX,
                "digest": sha(top),
                "size": len(top),
            }
        ],
        extra_blobs=extra,
    )
    # evil itself was never signed
    _, result = verify(capsys, f"docker-archive:{archive}", keypair[1])
    assert result["status"] != "TRUSTED", (
        f"unsigned image {evil.image_id[:19]} (manifest.json) verified as TRUSTED under the "
        f"borrowed digest {result['digest'][:19]}: {result['reason']}"
    )


HANG_LIMIT = 20.0


def _run_verify(
    args: list[str], timeout: float = HANG_LIMIT
) -> tuple[float, subprocess.CompletedProcess[str] | None]:
    start = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "gate.cli", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=Path(__file__).resolve().parents[2],
        )
    except subprocess.TimeoutExpired:
        return time.monotonic() - start, None
    return time.monotonic() - start, done


def quadratic_json(pairs: int) -> bytes:
    """Not JSON: a quote followed by escaped quotes and no closing quote (~2*pairs bytes)."""
    return b'"' + b'\\"' * pairs


def test_json_depth_prescan_is_quadratic_oci_index_json_hangs(
    tmp_path: Path, keypair: tuple[str, str]
) -> None:
    """strict_json._depth runs _STRING.sub over the whole text *before* json.loads; on an
    unterminated string of escaped quotes the regex restarts at every quote and scans to the
    end: O(n^2). 200 KB of index.json (the cap is 8 MB) takes minutes; a 4 MB manifest from a
    registry takes about a day. Nothing bounds it (the registry deadline covers the HTTP only).
    """
    layout = tmp_path / "layout"
    layout.mkdir()
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (layout / "index.json").write_bytes(quadratic_json(100_000))
    elapsed, done = _run_verify(["verify", f"oci:{layout}", "--key", keypair[1], "-o", "json"])
    assert done is not None, f"verify of a 200 KB index.json still running after {elapsed:.0f} s"


def _gzip_bomb(path: Path, gib: int) -> None:
    """``gib`` GiB of zeros as concatenated gzip members (~1 MB each): about 1000:1."""
    import zlib

    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(64 << 20)
    member = b"".join(z.compress(chunk) for _ in range(16)) + z.flush()
    with path.open("wb") as out:
        for _ in range(gib):
            out.write(member)


def test_gzip_layer_bomb_in_an_oci_layout(tmp_path: Path, keypair: tuple[str, str]) -> None:
    """sources._diff_id gunzips every layer to hash it (stream_digest(gunzip=True)) with no cap
    on the decompressed size: a 48 MB layer is 48 GiB to inflate and hash before the (wrong)
    diff_id is noticed. MAX_MEMBER_BYTES lets an archive member be 16 GiB, i.e. ~16 TiB."""
    import hashlib

    layout = tmp_path / "layout"
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    bomb = tmp_path / "bomb"
    _gzip_bomb(bomb, 48)
    h = hashlib.sha256()
    with bomb.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    layer_digest = "sha256:" + h.hexdigest()
    bomb.rename(blobs / h.hexdigest())
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers",
         "diff_ids": ["sha256:" + "0" * 64]}}
    ).encode()  # fmt: skip
    (blobs / sha(config).split(":")[1]).write_bytes(config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer_digest, "size": (blobs / h.hexdigest()).stat().st_size}],
    }).encode()  # fmt: skip
    (blobs / sha(manifest).split(":")[1]).write_bytes(manifest)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json",
         "digest": sha(manifest), "size": len(manifest)}]}))  # fmt: skip
    elapsed, done = _run_verify(["verify", f"oci:{layout}", "--key", keypair[1], "-o", "json"])
    assert done is not None, f"verify of a 48 MB layout still running after {elapsed:.0f} s"


class _Zeros(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = min(len(b), self.left)
        b[:n] = bytes(n)
        self.left -= n
        return n


def test_gzipped_archive_rewinds_for_every_member(tmp_path: Path, keypair: tuple[str, str]) -> None:
    """`docker save | gzip` is a normal input (tarfile.open 'r:*'). Every member open seeks the
    GzipFile, and _diff_id opens each layer twice (magic, then stream_digest): each backward
    seek rewinds and re-inflates the archive from its first byte. A 2 GiB run of zeros (2 MB
    compressed) in front of 20 small, valid layers costs ~40 x 2 GiB of inflating."""
    import gzip as gz
    import tarfile

    from tests.imagefiles import Image, layer_tar

    image = Image([layer_tar({f"f{i}": str(i).encode()}) for i in range(20)])
    hexid = image.image_id.split(":")[1]
    archive = tmp_path / "image.tar.gz"
    with gz.open(archive, "wb", compresslevel=1) as zf, tarfile.open(fileobj=zf, mode="w") as tar:
        pad = tarfile.TarInfo("padding")
        pad.size = 2 << 30
        tar.addfile(pad, _Zeros(pad.size))
        members = {f"{hexid}.json": image.config}
        layers = []
        for i, layer in enumerate(image.layers):
            members[f"{i:064x}/layer.tar"] = layer
            layers.append(f"{i:064x}/layer.tar")
        members["manifest.json"] = json.dumps(
            [{"Config": f"{hexid}.json", "RepoTags": [], "Layers": layers}]
        ).encode()
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    elapsed, done = _run_verify(
        ["verify", f"docker-archive:{archive}", "--key", keypair[1], "-o", "json"]
    )
    assert done is not None, (
        f"verify of a {archive.stat().st_size >> 20} MB archive still running after {elapsed:.0f} s"
    )


def test_fifo_in_an_oci_layout_hangs_forever(tmp_path: Path, keypair: tuple[str, str]) -> None:
    """_LayoutBlobs.open refuses symlinks and paths outside the layout, but opens anything else:
    a named pipe as index.json (or as a blob) blocks open() until a writer comes, i.e. forever.
    An unprivileged `mkfifo` (or a tar extracted from an untrusted artifact) is enough."""
    import os

    layout = tmp_path / "layout"
    layout.mkdir()
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    os.mkfifo(layout / "index.json")
    elapsed, done = _run_verify(["verify", f"oci:{layout}", "--key", keypair[1]], timeout=15)
    assert done is not None, f"verify of a layout with a FIFO still blocked after {elapsed:.0f} s"
