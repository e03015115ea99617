"""Local image sources read offline and safely: OCI layouts and docker save archives.

A digest belongs to a local image only when computed here from bytes the
source holds: never because ``index.json``, a tag or a label says so.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from gate.refs import parse_source
from gate.sources import LocalSourceError, open_docker_archive, open_local, open_oci_layout
from tests.imagefiles import (
    OCI_MANIFEST,
    docker_save_oci,
    docker_save_v1,
    index_of,
    make_image,
    sha,
    write_layout,
    write_tar,
)


def _archive(path: Path, members: dict[str, bytes], extra: list[tarfile.TarInfo] = ()) -> None:  # type: ignore[assignment]
    write_tar(path, members, extra)


# --- OCI layouts ----------------------------------------------------------------------------


def test_oci_layout_digest_is_the_manifest_digest(tmp_path: Path) -> None:
    image = make_image()
    digest = write_layout(
        tmp_path, [image], annotations={"org.opencontainers.image.ref.name": "1.0"}
    )
    found = open_oci_layout(str(tmp_path))
    assert found.digest == digest == image.digest
    assert found.image_id == image.image_id and found.digests == {image.digest, image.image_id}
    assert found.size == image.size and found.names == ()
    named = open_local(parse_source(f"oci:{tmp_path}:1.0"))
    assert named.digest == digest and named.tags == ("1.0",)


def test_oci_layout_full_name_gives_a_repository(tmp_path: Path) -> None:
    image = make_image()
    write_layout(
        tmp_path, [image], annotations={"io.containerd.image.name": "127.0.0.1:5000/acme/app:1"}
    )
    found = open_oci_layout(str(tmp_path))
    assert [str(n) for n in found.names] == ["127.0.0.1:5000/acme/app:1"]
    assert [str(r) for r in found.repo_digests] == [f"127.0.0.1:5000/acme/app@{image.digest}"]


def test_oci_layout_index_lists_its_platforms(tmp_path: Path) -> None:
    amd, arm = make_image("a", "amd64"), make_image("b", "arm64")
    top = index_of([amd, arm])
    digest = write_layout(tmp_path, [amd, arm], top=top)
    found = open_oci_layout(str(tmp_path))
    assert found.digest == digest and found.image_id is None
    assert [(p.digest, p.label) for p in found.platforms] == [
        (amd.digest, "linux/amd64"),
        (arm.digest, "linux/arm64"),
    ]


def test_oci_layout_with_several_manifests_needs_a_name(tmp_path: Path) -> None:
    image = make_image()
    write_layout(tmp_path, [image])
    index = json.loads((tmp_path / "index.json").read_text())
    index["manifests"] *= 2
    (tmp_path / "index.json").write_text(json.dumps(index))
    with pytest.raises(LocalSourceError, match="has 2 manifests; name one"):
        open_oci_layout(str(tmp_path))


@pytest.mark.parametrize("damage", ["manifest", "layer", "config"])
def test_oci_layout_missing_or_corrupt_blob(tmp_path: Path, damage: str) -> None:
    image = make_image()
    write_layout(tmp_path, [image])
    target = {
        "manifest": image.digest,
        "layer": sha(image.compressed[0]),
        "config": image.image_id,
    }[damage]
    blob = tmp_path / "blobs" / "sha256" / target.split(":")[1]
    blob.write_bytes(blob.read_bytes() + b" ")
    with pytest.raises(LocalSourceError, match="does not match"):
        open_oci_layout(str(tmp_path))
    blob.unlink()
    with pytest.raises(LocalSourceError, match="has no"):
        open_oci_layout(str(tmp_path))


def test_oci_layout_layers_must_match_the_config(tmp_path: Path) -> None:
    """A manifest whose layer is not the one the config's diff_ids name is not this image."""
    image, other = make_image("good"), make_image("evil")
    image.compressed = other.compressed  # the attacker swaps the layer, keeps the config
    image.manifest = json.dumps(
        {
            **json.loads(image.manifest),
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": sha(c),
                    "size": len(c),
                }
                for c in other.compressed
            ],
        }
    ).encode()
    write_layout(tmp_path, [image])
    with pytest.raises(LocalSourceError, match="does not match the image config"):
        open_oci_layout(str(tmp_path))


def test_oci_layout_hostile_index(tmp_path: Path) -> None:
    (tmp_path / "blobs").mkdir()
    (tmp_path / "index.json").write_bytes(b"[" * 5000 + b"]" * 5000)
    with pytest.raises(LocalSourceError, match="nested more than"):
        open_oci_layout(str(tmp_path))
    with open(tmp_path / "index.json", "wb") as f:  # a sparse multi-gigabyte index.json
        f.truncate(6 * 1024**3)
    with pytest.raises(LocalSourceError, match="larger than"):
        open_oci_layout(str(tmp_path))
    (tmp_path / "index.json").write_text('{"manifests": [{"digest": 5, "size": "x"}]}')
    with pytest.raises(LocalSourceError, match="descriptor without a digest"):
        open_oci_layout(str(tmp_path))
    (tmp_path / "index.json").unlink()
    os.symlink("/dev/zero", tmp_path / "index.json")
    with pytest.raises(LocalSourceError, match="symlink"):
        open_oci_layout(str(tmp_path))


# --- docker save archives -------------------------------------------------------------------


def test_docker_archive_digest_is_the_image_id(tmp_path: Path) -> None:
    path = tmp_path / "image.tar"
    image = make_image()
    docker_save_v1(path, image, ["demo/app:1"])
    found = open_docker_archive(str(path))
    assert found.digest == image.image_id and found.manifest_digests == ()
    assert found.tags == ("demo/app:1",) and [n.name for n in found.names] == ["docker.io/demo/app"]


def test_docker_25_archive_proves_its_manifest_digest(tmp_path: Path) -> None:
    path = tmp_path / "image.tar"
    image = make_image()
    docker_save_oci(path, image, ["127.0.0.1:5000/acme/app:1"])
    found = open_docker_archive(str(path))
    assert found.digest == image.digest and found.image_id == image.image_id
    assert [str(r) for r in found.repo_digests] == [f"127.0.0.1:5000/acme/app@{image.digest}"]


def test_archive_naming_a_foreign_digest_does_not_get_it(tmp_path: Path) -> None:
    """The attack: an archive whose index.json names somebody else's signed digest."""
    mine, victim = make_image("attacker"), make_image("victim")
    path = tmp_path / "evil.tar"
    named = {"mediaType": OCI_MANIFEST, "digest": victim.digest, "size": len(victim.manifest)}
    docker_save_oci(path, mine, ["127.0.0.1:5000/acme/app:1"], index_manifests=[named])
    found = open_docker_archive(str(path))
    assert victim.digest not in found.digests and found.digests == {mine.image_id}
    # ... even when the victim's manifest bytes are in the archive too: its config is not ours.
    docker_save_oci(
        path, mine, [], index_manifests=[named], extra_blobs={victim.digest: victim.manifest}
    )
    assert open_docker_archive(str(path)).digests == {mine.image_id}


def test_docker_archive_tampered_layer(tmp_path: Path) -> None:
    path = tmp_path / "t.tar"
    docker_save_v1(path, make_image(), [])
    with tarfile.open(path) as tar:
        members = {m.name: (tar.extractfile(m) or io.BytesIO()).read() for m in tar}
    layer = next(n for n in members if n.endswith("layer.tar"))
    members[layer] = make_image("other").layers[0]  # the config still names the original
    _archive(path, members)
    with pytest.raises(LocalSourceError, match="does not match the image config"):
        open_docker_archive(str(path))


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
            "manifest.json": json.dumps([{"Config": "0" * 64 + ".json", "Layers": []}]).encode(),
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
