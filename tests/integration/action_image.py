"""Build the GitHub Action's image offline, once per machine (base) and once per session (action).

The public Dockerfile starts FROM a pinned ``python:3.11-slim``; tests cannot pull, so
they pass ``--build-arg BASE=`` a Debian base made with ``debootstrap --variant=minbase``
plus Python (PEERS.md §2, §9) and ``--build-arg WHEELS=dist/wheels`` so that stage 1
installs from wheels built on the host. The base image is cached by tag: building it
takes a few minutes and is needed once per machine.

Run as a script (``python -m tests.integration.action_image``) to warm the cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BASE_TAG = "sealgate-test/base:bookworm-py311"
ACTION_TAG = "sealgate-test/action:dev"
SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
# python3-venv brings ensurepip's wheels; ca-certificates so HTTPS registries work.
PACKAGES = "python3,python3-venv,ca-certificates"


def _image_exists(tag: str) -> bool:
    done = subprocess.run(["docker", "image", "inspect", tag], capture_output=True, check=False)
    return done.returncode == 0


def _mirror() -> str:
    """The Debian mirror this machine already uses (the only one it may reach)."""
    for line in SOURCES.read_text().splitlines():
        if line.startswith("URIs:"):
            return line.split()[1]
    return "http://deb.debian.org/debian"


def ensure_base(tag: str = BASE_TAG) -> str:
    """Return the tag of a Debian+Python base image, building and importing it if missing."""
    if _image_exists(tag):
        return tag
    if shutil.which("debootstrap") is None:
        raise RuntimeError("debootstrap is not installed (apt-get install debootstrap)")
    with tempfile.TemporaryDirectory(prefix="sealgate-base-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={PACKAGES}",
                "bookworm",
                str(rootfs),
                _mirror(),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (rootfs / junk).glob("*"):
                if entry.is_file():
                    entry.unlink()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(
            ["docker", "import", "--change", 'CMD ["/bin/bash"]', "-", tag],
            stdin=tar.stdout,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        if tar.wait() != 0:
            raise RuntimeError("tar of the debootstrap rootfs failed")
    return tag


# The status clients, in case pyproject does not list them yet; harmless once it does.
EXTRA_WHEELS = ("PyGithub", "python-gitlab")


def build_wheels(dest: Path) -> Path:
    """Build sealgate and its dependencies as wheels on the host, for an offline image build.

    The directory is emptied first: the Dockerfile installs every wheel in it.
    """
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", str(ROOT), *EXTRA_WHEELS, "-w", str(dest)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return dest


_BUILT: set[str] = set()
"""Tags built by this process: test modules that each ask for the image share one build."""


def build_action_image(tag: str = ACTION_TAG, base: str | None = None) -> str:
    """Build the action image from the repository's Dockerfile, offline (once per process)."""
    if tag in _BUILT and _image_exists(tag):
        return tag
    base = base or ensure_base()
    wheels = ROOT / "dist" / "wheels"
    build_wheels(wheels)
    subprocess.run(
        [
            "docker",
            "build",
            "-q",
            "--network",
            "none",
            "-t",
            tag,
            "--build-arg",
            f"BASE={base}",
            "--build-arg",
            "WHEELS=dist/wheels",
            str(ROOT),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
    )
    # The build stage and the image this tag pointed to before are now dangling: remove
    # them (only ours, by label), so repeated sessions do not fill the disk.
    for stage in ("build", "action"):
        subprocess.run(
            ["docker", "image", "prune", "-f", "--filter", f"label=dev.sealgate.stage={stage}"],
            check=False,
            stdout=subprocess.DEVNULL,
        )
    _BUILT.add(tag)
    return tag


if __name__ == "__main__":
    print(ensure_base())
