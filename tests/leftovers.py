"""What a test run left behind: processes, mounts, containers and temporary files.

``tests/conftest.py`` marks the session by putting a random token in the
environment before any test runs. Every process the suite starts inherits it
(registries, InfluxDB, Chromium, a private dockerd and its containerd and
containerd-shim), so a process still carrying the token at the end is ours,
even on a machine where other test runs go on at the same time. Mounts are
ours when they lie under this session's pytest directory. Containers and
``/tmp`` entries carry no such mark: they are compared with a snapshot taken
at the start, which is exact on a machine of its own (CI) and only advisory
where other runs share the engine and ``/tmp``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

MARK = "SEALGATE_TEST_SESSION"
HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")
"""Python's own helpers of the pytest process: they end when it does, not before."""
CONTAINER_LABEL_PREFIXES = ("sealgate",)
"""Containers the suite makes carry a label starting so (``sealgate-test``, ``sealgate.test``…)."""
TMP_KEEP = ("pytest-of-",)
"""pytest keeps the last runs' directories on purpose: screenshots and logs are artifacts."""


@dataclass
class Snapshot:
    """What existed when the session began."""

    started: float = field(default_factory=time.time)
    mounts: frozenset[str] = frozenset()
    containers: frozenset[str] | None = None
    """Container IDs on the default engine; None when there is no engine to ask."""
    tmp: frozenset[str] = frozenset()

    @classmethod
    def take(cls) -> Snapshot:
        return cls(mounts=mount_points(), containers=container_ids(), tmp=tmp_entries())


def marked_processes(token: str, own: int | None = None) -> list[str]:
    """``pid command`` of every live process whose environment holds ``MARK=token``."""
    needle = f"{MARK}={token}".encode()
    own = os.getpid() if own is None else own
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == own:
            continue
        with contextlib.suppress(OSError):
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            stat = (entry / "stat").read_text()
            if stat[stat.rindex(")") + 2] == "Z":
                continue  # exited, only waiting to be reaped: nothing runs
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            parent = int(stat[stat.rindex(")") + 2 :].split()[1])
            if parent == own and any(h in command for h in HELPERS):
                continue
            found.append(f"{entry.name} {command.strip()[:160]}")
    return found


def mount_points() -> frozenset[str]:
    """Mount points in this mount namespace (``/proc/self/mountinfo``, octal escapes decoded)."""
    points = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            fields = line.split()
            if len(fields) > 4:
                points.add(fields[4].encode().decode("unicode_escape"))
    return frozenset(points)


def container_ids() -> frozenset[str] | None:
    """IDs of every container on the default engine, or None without one."""
    try:
        import docker

        client = docker.from_env(timeout=5)
        try:
            return frozenset(c.id for c in client.containers.list(all=True, ignore_removed=True))
        finally:
            client.close()
    except Exception:  # no engine, no socket, no permission: nothing to compare
        return None


def labelled_containers(ids: frozenset[str]) -> list[str]:
    """Of ``ids``, the containers the suite made (by label), as ``id name``."""
    import docker

    client = docker.from_env(timeout=10)
    try:
        found = []
        for container in client.containers.list(all=True, ignore_removed=True):
            labels = container.labels or {}
            ours = any(k.startswith(CONTAINER_LABEL_PREFIXES) for k in labels)
            if container.id in ids and ours:
                found.append(f"{container.short_id} {container.name} {labels}")
        return found
    finally:
        client.close()


def tmp_entries() -> frozenset[str]:
    with contextlib.suppress(OSError):
        return frozenset(os.listdir(tempfile.gettempdir()))
    return frozenset()


@dataclass
class Leftovers:
    """What is still there; ``certain`` lists what is surely this session's."""

    certain: list[str] = field(default_factory=list)
    likely: list[str] = field(default_factory=list)


def find(token: str, before: Snapshot, session_dir: Path | None, wait: float = 10.0) -> Leftovers:
    """Leftovers of the session marked ``token``; processes get ``wait`` seconds to exit."""
    deadline = time.monotonic() + wait
    processes = marked_processes(token)
    while processes and time.monotonic() < deadline:
        time.sleep(0.2)
        processes = marked_processes(token)
    found = Leftovers(certain=[f"process {p}" for p in processes])
    if session_dir is not None:
        root = str(session_dir.resolve())
        for point in sorted(mount_points() - before.mounts):
            if point == root or point.startswith(root + "/"):
                found.certain.append(f"mount {point}")
    if before.containers is not None:
        now = container_ids() or frozenset()
        with contextlib.suppress(Exception):
            found.likely += [f"container {c}" for c in labelled_containers(now - before.containers)]
    tmp = Path(tempfile.gettempdir())
    for name in sorted(tmp_entries() - before.tmp):
        if name.startswith(TMP_KEEP):
            continue
        with contextlib.suppress(OSError):
            # the file system's clock is coarse and may lag time.time() by a tick
            if (tmp / name).lstat().st_mtime >= before.started - 2:
                found.likely.append(f"temporary {tmp / name}")
    return found
