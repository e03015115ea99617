"""``sealgate pin`` as an unprivileged user, against a real registry, on files it may not write.

Each case runs ``setpriv --reuid=65534 --regid=65534 --clear-groups`` (nobody)
on a world-readable copy under /tmp. Where the interpreter itself is not
readable by nobody (pyenv under a 0700 /root, as on this machine), the child
keeps one capability, CAP_DAC_READ_SEARCH, so it can load Python: it lets a
process read and search, never write, and writing is all these tests are about.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from gate.refs import Reference
from tests.conftest import require

from .conftest import RegistryServer, push_random_image

pytestmark = pytest.mark.integration

NOBODY = 65534
_PROBE = "import os, sys, nacl, requests, cryptography, yaml; print(os.getuid(), sys.prefix)"
"""Our interpreter, with our dependencies, as the right user (not a fallback Python)."""
ROOT = Path(__file__).resolve().parents[2]


def _setpriv(*, read_anything: bool) -> list[str]:
    command = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    if read_anything:
        command += ["--inh-caps=-all,+dac_read_search", "--ambient-caps=-all,+dac_read_search"]
    return command


@pytest.fixture(scope="module")
def as_nobody() -> list[str]:
    """The setpriv prefix that runs this interpreter as nobody (module-wide: probed once)."""
    require(shutil.which("setpriv") is not None, "setpriv (util-linux)")
    require(os.geteuid() == 0, "root, to run a command as another user")
    for read_anything in (False, True):
        command = _setpriv(read_anything=read_anything)
        probe = subprocess.run(
            [*command, sys.executable, "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": os.environ.get("PATH", ""), "HOME": "/"},
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.split() == [str(NOBODY), sys.prefix]:
            return command
    pytest.fail(f"cannot run {sys.executable} as uid {NOBODY}: {probe.stderr.strip()}")


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory under /tmp that nobody can reach (pytest's tmp_path is 0700 root)."""
    top = Path(tempfile.mkdtemp(prefix="sealgate-pin-nobody-"))
    top.chmod(0o755)
    try:
        yield top
    finally:
        shutil.rmtree(top)


@pytest.fixture(scope="module")
def image(registry: RegistryServer) -> Reference:
    return push_random_image(registry, "pin-nobody/app", "1.0")


def pin(as_nobody: list[str], home: Path, *paths: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [*as_nobody, sys.executable, "-m", "gate.cli", "pin", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=home,
        check=False,
    )


def compose(directory: Path, name: str, ref: Reference, *, owner: int, mode: int) -> Path:
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text(f"services:\n  app:\n    image: {ref.name}:1.0\n")
    os.chown(path, owner, owner)
    path.chmod(mode)
    return path


def snapshot(directory: Path) -> dict[str, tuple[bytes, int, int]]:
    return {
        p.name: (p.read_bytes(), p.stat().st_ino, p.stat().st_mode)
        for p in sorted(directory.iterdir())
    }


def test_read_only_file_is_refused_in_one_sentence(
    as_nobody: list[str], public_dir: Path, image: Reference
) -> None:
    work = public_dir / "work"
    work.mkdir()
    os.chown(work, NOBODY, NOBODY)  # nobody may create files here, but not write this one
    path = compose(work, "compose.yaml", image, owner=NOBODY, mode=0o444)
    before = snapshot(work)
    done = pin(as_nobody, public_dir, path)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr == f"sealgate: error: {path}: is read-only; pin rewrites files in place\n"
    assert snapshot(work) == before


def test_read_only_directory_is_refused_and_nothing_changes(
    as_nobody: list[str], public_dir: Path, image: Reference
) -> None:
    writable = public_dir / "writable"
    writable.mkdir()
    os.chown(writable, NOBODY, NOBODY)
    first = compose(writable, "a.yaml", image, owner=NOBODY, mode=0o644)
    locked = public_dir / "locked"  # root's 0755: nobody can write the file, not the directory
    second = compose(locked, "b.yaml", image, owner=NOBODY, mode=0o666)
    before = (snapshot(writable), snapshot(locked))
    done = pin(as_nobody, public_dir, first, second)
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        f"sealgate: error: {second}: cannot be replaced: its directory does not allow "
        "creating the new file beside it\n"
    )
    assert (snapshot(writable), snapshot(locked)) == before  # a.yaml is not pinned alone


def test_writable_files_are_pinned_keeping_owner_and_mode(
    as_nobody: list[str], public_dir: Path, image: Reference
) -> None:
    work = public_dir / "work"
    work.mkdir()
    os.chown(work, NOBODY, NOBODY)
    path = compose(work, "compose.yaml", image, owner=NOBODY, mode=0o640)
    done = pin(as_nobody, public_dir, path)
    assert done.returncode == 0, done.stderr
    assert f"pinned {image.name}:1.0 -> " in done.stdout
    assert f"@{image.digest}" in path.read_text()
    info = path.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (NOBODY, NOBODY, 0o640)
    assert sorted(os.listdir(work)) == ["compose.yaml"]  # no temp files or backups left
