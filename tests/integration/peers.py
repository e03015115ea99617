"""The Go peers (cosign v2 and v3, crane, regctl), found where ``scripts/go-peers`` put them.

``scripts/go-peers`` (run by ``make peers``, so by ``make test`` and
``.ci/run``) builds each pinned version into
``$SEALGATE_PEERS_CACHE/<name>-<version>/<binary>``. The table of names and
versions lives only in that script; this module reads it from there, so the
tests always look for the version the script builds.

Every peer runs with a throwaway ``HOME``, ``TUF_ROOT`` and ``DOCKER_CONFIG``
and with HTTP(S) proxies pointing at a closed loopback port: Go never
proxies loopback addresses, so registries on 127.0.0.1 answer, and anything
that tried to reach the Internet (Sigstore's TUF mirror, Rekor, Fulcio)
fails at once instead of succeeding quietly.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import ROOT, require

SCRIPT = ROOT / "scripts" / "go-peers"
_LINE = re.compile(
    r'^\s*"(?P<name>[\w-]+) (?P<version>v[\w.+-]+) (?P<package>\S+) (?P<binary>\w+)"'
)
TIMEOUT = 120


@dataclass(frozen=True)
class Peer:
    name: str
    """``cosign-v2``, ``cosign-v3``, ``crane`` or ``regctl``."""
    version: str
    package: str
    binary: str

    @property
    def path(self) -> Path:
        return cache_dir() / f"{self.name}-{self.version}" / self.binary


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "sealgate" / "go-peers"
    return Path(os.environ.get("SEALGATE_PEERS_CACHE") or default)


def pinned() -> dict[str, Peer]:
    """The peers and versions ``scripts/go-peers`` pins, by name."""
    found = {}
    for line in SCRIPT.read_text().splitlines():
        if match := _LINE.match(line):
            found[match["name"]] = Peer(**match.groupdict())
    return found


def peer(name: str) -> Peer:
    """The pinned ``name``, skipping (failing in CI) when it was not built."""
    found = pinned()[name]
    require(found.path.is_file(), f"{name} {found.version} (run scripts/go-peers)")
    return found


@dataclass
class Runner:
    """Runs one peer in a sealed environment (see the module docstring)."""

    peer: Peer
    home: Path

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        home = self.home
        for sub in ("tuf", "docker", "tmp"):
            (home / sub).mkdir(parents=True, exist_ok=True)
        closed = "http://127.0.0.1:9"
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(home),
            "TMPDIR": str(home / "tmp"),
            "TUF_ROOT": str(home / "tuf"),
            "DOCKER_CONFIG": str(home / "docker"),
            "HTTP_PROXY": closed,
            "HTTPS_PROXY": closed,
            "http_proxy": closed,
            "https_proxy": closed,
            "NO_PROXY": "",
        }
        env.update(extra or {})
        return env

    def run(
        self, *args: str, env: dict[str, str] | None = None, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(self.peer.path), *args],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env=self.env(env),
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"{self.peer.name} {' '.join(args)} exited {done.returncode}:\n"
                f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        return done
