"""Local image sources read offline and safely: OCI layouts and docker save archives."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from gate.refs import parse_source
from gate.sources import LocalSourceError, open_docker_archive, open_local, open_oci_layout


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _layout(root: Path, names: tuple[str, ...] = ("latest",)) -> dict[str, str]:
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    out, descriptors = {}, []
    for name in names:
        manifest = json.dumps({"schemaVersion": 2, "name": name}).encode()
        (blobs / _sha(manifest)).write_bytes(manifest)
        out[name] = "sha256:" + _sha(manifest)
        descriptors.append(
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": out[name],
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": name},
            }
        )
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": descriptors}))
    return out


def test_oci_layout_digest_is_the_manifest_digest(tmp_path: Path) -> None:
    digests = _layout(tmp_path)
    image = open_local(parse_source(f"oci:{tmp_path}"))
    assert image.digest == digests["latest"]


def test_oci_layout_with_several_manifests_needs_a_name(tmp_path: Path) -> None:
    digests = _layout(tmp_path, ("a", "b"))
    with pytest.raises(LocalSourceError, match="has 2 manifests; name one"):
        open_oci_layout(str(tmp_path))
    assert open_oci_layout(f"{tmp_path}:b").digest == digests["b"]
    with pytest.raises(LocalSourceError, match="no manifest named 'c'"):
        open_oci_layout(f"{tmp_path}:c")


def test_oci_layout_missing_or_corrupt_blob(tmp_path: Path) -> None:
    digests = _layout(tmp_path)
    blob = tmp_path / "blobs" / "sha256" / digests["latest"].split(":")[1]
    blob.write_bytes(b"tampered")
    with pytest.raises(LocalSourceError, match="does not match its digest"):
        open_oci_layout(str(tmp_path))
    blob.unlink()
    with pytest.raises(LocalSourceError, match="that blob is missing"):
        open_oci_layout(str(tmp_path))
    with pytest.raises(LocalSourceError, match=r"has no index.json"):
        open_oci_layout(str(tmp_path / "blobs"))


def _archive(path: Path, members: dict[str, bytes], extra: list[tarfile.TarInfo] = ()) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info)


def _docker_save(path: Path, **overrides: object) -> str:
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    hexd = _sha(config)
    manifest = [
        {
            "Config": f"{hexd}.json",
            "RepoTags": ["demo/app:1"],
            "Layers": ["abc/layer.tar"],
            **overrides,
        }
    ]
    _archive(
        path,
        {
            f"{hexd}.json": config,
            "manifest.json": json.dumps(manifest).encode(),
            "abc/layer.tar": b"x" * 10,
        },
    )
    return "sha256:" + hexd


def test_docker_archive_digest_is_the_image_id(tmp_path: Path) -> None:
    path = tmp_path / "image.tar"
    image_id = _docker_save(path)
    image = open_docker_archive(str(path))
    assert image.digest == image_id and image.tags == ("demo/app:1",) and image.size == 10


@pytest.mark.parametrize(
    ("member", "match"),
    [("../escape", "outside the archive"), ("/etc/passwd", "outside the archive")],
)
def test_docker_archive_path_traversal_is_refused(tmp_path: Path, member: str, match: str) -> None:
    path = tmp_path / "evil.tar"
    _archive(path, {member: b"x", "manifest.json": b"[]"})
    with pytest.raises(LocalSourceError, match=match):
        open_docker_archive(str(path))


def test_docker_archive_huge_declared_size_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.tar"
    header = tarfile.TarInfo("manifest.json")
    header.size = 10 * 1024**3
    with open(path, "wb") as out:
        out.write(header.tobuf(format=tarfile.GNU_FORMAT))
    with pytest.raises(LocalSourceError, match=r"over the cap|damaged"):
        open_docker_archive(str(path))


def test_docker_archive_symlink_config_is_not_followed(tmp_path: Path) -> None:
    path = tmp_path / "link.tar"
    link = tarfile.TarInfo("cfg.json")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    _archive(
        path, {"manifest.json": json.dumps([{"Config": "cfg.json", "Layers": []}]).encode()}, [link]
    )
    with pytest.raises(LocalSourceError, match="link or special file"):
        open_docker_archive(str(path))


def test_docker_archive_tampered_config(tmp_path: Path) -> None:
    path = tmp_path / "t.tar"
    _archive(
        path,
        {
            "0" * 64 + ".json": b"{}",
            "manifest.json": json.dumps([{"Config": "0" * 64 + ".json"}]).encode(),
        },
    )
    with pytest.raises(LocalSourceError, match="does not match its own digest"):
        open_docker_archive(str(path))


def test_not_a_tar(tmp_path: Path) -> None:
    (tmp_path / "x.tar").write_bytes(b"hello")
    with pytest.raises(LocalSourceError, match="not a tar archive"):
        open_docker_archive(str(tmp_path / "x.tar"))
    with pytest.raises(LocalSourceError, match="does not exist"):
        open_docker_archive(str(tmp_path / "missing.tar"))
