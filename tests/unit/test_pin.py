"""Pinning: only the image references change, byte for byte, and only when it is safe.

Every test pins copies of tests/assets/manifests/pin/ (or of the real-world
files) with a fake resolver, then compares the files line by line with the
originals: each line either is identical bytes or is the same line with one
reference gaining its digest.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path

import pytest

from gate.errors import InvalidReferenceError, ManifestError, UnavailableError, UsageError
from gate.manifests import Options, PinChange, find_images, pin_files
from gate.refs import Reference
from tests.conftest import ASSETS, REALWORLD, require

PIN = ASSETS / "manifests" / "pin"


class FakeRegistry:
    """A resolver that records each lookup and answers a digest derived from the reference."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[str] = []
        self.fail_on = fail_on

    def digest(self, reference: str) -> str:
        return "sha256:" + hashlib.sha256(reference.encode()).hexdigest()

    def __call__(self, reference: Reference) -> str:
        self.calls.append(str(reference))
        if str(reference) == self.fail_on:
            raise RuntimeError(f"registry down for {reference}")
        return self.digest(str(reference))


@pytest.fixture
def work(tmp_path: Path) -> Path:
    shutil.copytree(PIN, tmp_path / "pin")
    return tmp_path / "pin"


def assert_only_image_lines_changed(before: bytes, after: bytes, changes: list[PinChange]) -> None:
    """Each changed line is its old self with ``old`` replaced by ``new``; the rest is identical."""
    old, new = before.split(b"\n"), after.split(b"\n")
    assert len(old) == len(new)
    by_line: dict[int, list[PinChange]] = {}
    for change in changes:
        by_line.setdefault(change.location.line, []).append(change)
    for number, (was, now) in enumerate(zip(old, new, strict=True), start=1):
        expected = was
        for change in by_line.get(number, []):
            assert change.old.encode() in expected
            expected = expected.replace(change.old.encode(), change.new.encode(), 1)
        assert now == expected, f"line {number} changed unexpectedly"


def test_pin_compose_keeps_crlf_quotes_comments_and_aliases(work: Path) -> None:
    path = work / "compose.yaml"
    before = path.read_bytes()
    registry = FakeRegistry()
    changes = pin_files([str(path)], registry)
    after = path.read_bytes()

    by_hand = [c for c in changes if not c.in_place]
    changes = [c for c in changes if c.in_place]
    assert_only_image_lines_changed(before, after, changes)
    assert [(c.location.line, c.old) for c in changes] == [
        (3, "nginx:1.25"),
        (6, "postgres"),  # the anchor: db-replica's *pg follows it
        (9, "redis:7"),
    ]
    tool = registry.digest("docker.io/acme/tool:2.1")
    assert [(c.location.line, c.old, c.new) for c in by_hand] == [
        (13, "acme/tool:${TAG:-2.1}", f"docker.io/acme/tool:2.1@{tool}")
    ]
    postgres = registry.digest("docker.io/library/postgres:latest")
    assert changes[1].new == f"postgres:latest@{postgres}"
    text = after.decode()
    nginx = registry.digest("docker.io/library/nginx:1.25")
    assert f'    image: "nginx:1.25@{nginx}"   # front end\r\n' in text
    assert f"  cache: {{image: 'redis:7@{registry.digest('docker.io/library/redis:7')}', " in text
    assert f"    image: &pg postgres:latest@{postgres}\r\n" in text
    assert after.count(b"\r\n") == before.count(b"\r\n") == before.count(b"\n")
    # already pinned and variable references are untouched; each reference resolved once
    assert b"ghcr.io/acme/api:1.0@sha256:1111" in after
    assert b"acme/tool:${TAG:-2.1}\r\n" in after
    assert registry.calls == [
        "docker.io/library/nginx:1.25",
        "docker.io/library/postgres:latest",
        "docker.io/library/redis:7",
        "docker.io/acme/tool:2.1",
    ]


def test_pin_kubernetes_stream_resolves_each_reference_once(work: Path) -> None:
    path = work / "stream.yaml"
    before = path.read_bytes()
    registry = FakeRegistry()
    changes = pin_files([str(path)], registry)
    after = path.read_bytes()

    assert_only_image_lines_changed(before, after, changes)
    assert [(c.location.line, c.old) for c in changes] == [
        (12, "busybox:1.36.1"),
        (15, "ghcr.io/acme/shop-web:1.8.0"),
        (17, "quay.io/prometheus/statsd-exporter:v0.26.0"),
        (28, "busybox:1.36.1"),
    ]
    assert registry.calls == [
        "docker.io/library/busybox:1.36.1",
        "ghcr.io/acme/shop-web:1.8.0",
        "quay.io/prometheus/statsd-exporter:v0.26.0",
    ]
    statsd = registry.digest("quay.io/prometheus/statsd-exporter:v0.26.0")
    assert (
        f"            image:   'quay.io/prometheus/statsd-exporter:v0.26.0@{statsd}'"
        "    # odd spacing stays\n"
    ).encode() in after
    busybox = registry.digest("docker.io/library/busybox:1.36.1")
    assert f"containers: [{{name: job, image: busybox:1.36.1@{busybox}}}]".encode() in after


def test_pin_dockerfile_edits_the_arg_default_and_copy_from(work: Path) -> None:
    path = work / "Dockerfile"
    before = path.read_bytes()
    registry = FakeRegistry()
    changes = pin_files([str(path)], registry)
    assert_only_image_lines_changed(before, path.read_bytes(), changes)
    assert [(c.location.line, c.old) for c in changes] == [
        (1, "debian:12-slim"),  # FROM ${BASE} is pinned where BASE gets its value
        (2, "golang:1.22-alpine"),
        (6, "ghcr.io/acme/ca-bundle:2024.1"),
    ]
    after = find_images([str(path)])
    assert [(f.location.line, f.reference is not None and f.reference.pinned) for f in after] == [
        (2, True),
        (4, True),
        (6, True),
    ]


def test_check_mode_writes_nothing_and_reports_the_same_changes(work: Path) -> None:
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in work.iterdir()}
    checked = pin_files([str(work)], FakeRegistry(), check=True)
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in work.iterdir()} == before
    assert len(checked) == 11
    assert [c.old for c in checked if not c.in_place] == ["acme/tool:${TAG:-2.1}"]
    assert pin_files([str(work)], FakeRegistry()) == checked


def test_pinning_twice_changes_nothing_and_resolves_nothing(work: Path) -> None:
    pin_files([str(work)], FakeRegistry())
    pinned = {p.name: p.read_bytes() for p in work.iterdir()}
    registry = FakeRegistry()
    # only the reference written with a variable is left, for a person to pin
    assert [c.old for c in pin_files([str(work)], registry)] == ["acme/tool:${TAG:-2.1}"]
    assert registry.calls == ["docker.io/acme/tool:2.1"]
    assert {p.name: p.read_bytes() for p in work.iterdir()} == pinned
    unpinned = [
        f.text
        for f in find_images([str(work)])
        if f.reference is not None and not f.reference.pinned
    ]
    assert unpinned == ["acme/tool:${TAG:-2.1}"]


def test_a_failing_lookup_leaves_every_file_untouched(work: Path) -> None:
    before = {p.name: p.read_bytes() for p in work.iterdir()}
    registry = FakeRegistry(fail_on="quay.io/prometheus/statsd-exporter:v0.26.0")
    with pytest.raises(RuntimeError, match="registry down"):
        pin_files([str(work)], registry)
    assert {p.name: p.read_bytes() for p in work.iterdir()} == before


def test_a_resolver_answer_that_is_not_a_digest_is_refused(work: Path) -> None:
    before = (work / "Dockerfile").read_bytes()
    with pytest.raises(InvalidReferenceError):
        pin_files([str(work / "Dockerfile")], lambda ref: "latest")
    assert (work / "Dockerfile").read_bytes() == before


def test_writes_keep_mode_and_leave_no_temp_files(work: Path) -> None:
    target = work / "stream.yaml"
    target.chmod(0o640)
    inode = target.stat().st_ino
    changes = pin_files([str(target)], FakeRegistry())
    assert changes and all(c.location.file == str(target) for c in changes)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert target.stat().st_ino != inode  # replaced by rename, never rewritten in place
    assert b"@sha256:" in target.read_bytes()
    assert sorted(os.listdir(work)) == ["Dockerfile", "compose.yaml", "stream.yaml"]


def test_links_are_not_read_and_never_written_through(work: Path) -> None:
    target = work / "stream.yaml"
    before = target.read_bytes()
    link = work.parent / "link.yaml"
    link.symlink_to(target)
    with pytest.raises(ManifestError, match=r"link\.yaml: is a symbolic link") as info:
        pin_files([str(link)], FakeRegistry())
    assert info.value.hint is not None and "--follow-symlinks" in info.value.hint
    # following links reads through them (--check), but pin still will not write through one
    followed = Options(follow_symlinks=True)
    assert pin_files([str(link)], FakeRegistry(), check=True, options=followed)
    with pytest.raises(ManifestError, match="pin does not write through links"):
        pin_files([str(link)], FakeRegistry(), options=followed)
    assert target.read_bytes() == before and link.is_symlink()


def test_stdin_cannot_be_pinned() -> None:
    with pytest.raises(UsageError, match="cannot pin standard input"):
        pin_files(["-"], FakeRegistry())


def test_invalid_files_stop_pinning_before_anything_is_written(work: Path) -> None:
    (work / "zz-broken.yaml").write_text("services:\n  a:\n    image: Not:Valid\n")
    before = (work / "compose.yaml").read_bytes()
    with pytest.raises(ManifestError, match=r"zz-broken\.yaml:3: 'Not:Valid'"):
        pin_files([str(work)], FakeRegistry())
    assert (work / "compose.yaml").read_bytes() == before


def test_references_not_written_verbatim_are_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "pod.yaml"
    original = (
        'kind: Pod\nspec:\n  containers:\n  - name: a\n    image: "nginx\\x3a1.25"\n'
        "  - name: b\n    image: >-\n      redis:7\n"
    )
    path.write_text(original)
    assert [str(f.reference) for f in find_images([str(path)])] == [
        "docker.io/library/nginx:1.25",
        "docker.io/library/redis:7",
    ]
    changes = pin_files([str(path)], FakeRegistry())
    assert [(c.location.line, c.in_place) for c in changes] == [(5, False), (7, False)]
    assert path.read_text() == original


def test_an_edit_that_would_change_another_reference_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    original = "ARG BASE=debian:12\nFROM ${BASE} AS a\nFROM ${BASE}-slim\n"
    path.write_text(original)
    with pytest.raises(ManifestError, match="pinning would change how this file reads"):
        pin_files([str(path)], FakeRegistry())
    assert path.read_text() == original


def test_pin_realworld_copies_touches_only_image_lines(tmp_path: Path) -> None:
    require(REALWORLD.is_dir(), f"the real-world manifests at {REALWORLD}")
    copy = tmp_path / "rw"
    shutil.copytree(REALWORLD, copy)
    before = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    findings = find_images([str(copy)])
    locations = [f.location for f in findings]
    unpinned = {str(f.reference) for f in findings if f.reference and not f.reference.pinned}
    registry = FakeRegistry()
    changes = pin_files([str(copy)], registry)
    assert sorted(registry.calls) == sorted(unpinned)
    assert len(changes) == 75  # 95 references, 20 of them already pinned upstream
    for path, data in before.items():
        file_changes = [c for c in changes if c.location.file == str(path)]
        assert_only_image_lines_changed(data, path.read_bytes(), file_changes)
    after = find_images([str(copy)])
    assert all(f.reference is not None and f.reference.pinned for f in after)
    assert [f.location for f in after] == locations


# -- all or nothing, and never over someone else's edit ---------------------------------------


def test_a_file_edited_while_pin_waits_on_the_registry_is_not_overwritten(work: Path) -> None:
    before = {p.name: p.read_bytes() for p in work.iterdir()}
    edit = b"# a colleague's edit, saved while pin was asking the registry\n"

    def slow_registry(reference: Reference) -> str:
        if not (work / "stream.yaml").read_bytes().startswith(edit):
            with open(work / "stream.yaml", "r+b") as handle:  # in place: same inode and size
                data = handle.read()
                handle.seek(0)
                handle.write(edit + data[len(edit) :])
        return FakeRegistry()(reference)

    with pytest.raises(ManifestError, match=r"stream\.yaml: changed on disk while pin"):
        pin_files([str(work)], slow_registry)
    after = {p.name: p.read_bytes() for p in work.iterdir()}
    assert after["stream.yaml"].startswith(edit)  # their edit survives
    assert {k: v for k, v in after.items() if k != "stream.yaml"} == {
        k: v for k, v in before.items() if k != "stream.yaml"
    }  # and no other file was pinned without it


def test_a_failed_rename_puts_back_the_files_already_replaced(
    work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection: the third rename fails (as EBUSY or ENOSPC would); the first two revert."""
    before = {p.name: (p.read_bytes(), p.stat().st_ino) for p in work.iterdir()}
    real_replace = os.replace
    renames: list[str] = []

    def failing_replace(src: str, dst: str) -> None:
        if src.endswith(".sealgate-pin") and not src.endswith(".orig.sealgate-pin"):
            renames.append(dst)
            if len(renames) == 3:
                raise OSError(16, "Device or resource busy")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(ManifestError, match=r"cannot replace: Device or resource busy"):
        pin_files([str(work)], FakeRegistry())
    monkeypatch.undo()
    assert len(renames) == 3
    assert {p.name: (p.read_bytes(), p.stat().st_ino) for p in work.iterdir()} == before


def test_owner_and_mode_are_kept(work: Path) -> None:
    require(os.geteuid() == 0, "root, to give the file another owner")
    path = work / "Dockerfile"
    os.chown(path, 4321, 8765)
    path.chmod(0o604)
    pin_files([str(path)], FakeRegistry())
    info = path.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (4321, 8765, 0o604)
    assert b"@sha256:" in path.read_bytes()


def test_nothing_to_pin_is_an_error_as_in_the_gate(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("services:\n  app:\n    build: .\n")
    with pytest.raises(UsageError, match="no images found"):
        pin_files([str(tmp_path)], FakeRegistry(), check=True)


def test_an_image_nobody_can_tell_fails_check_and_pin(tmp_path: Path) -> None:
    path = tmp_path / "compose.yaml"
    original = "services:\n  a:\n    image: nginx:1.25\n  b:\n    image: redis:${REDIS}\n"
    path.write_text(original)
    for check in (True, False):
        registry = FakeRegistry()
        with pytest.raises(UnavailableError, match=r"compose\.yaml:5: cannot tell which image"):
            pin_files([str(path)], registry, check=check, options=Options(environ={}))
        assert registry.calls == [] and path.read_text() == original
