"""Which container is the watchdog itself, so enforcement never stops what does the guarding.

Run as deploy/watchdog/compose.yaml runs it, the watchdog's own image is often
unsigned (or signed by a key the policy does not list): without this it would
kill itself before logging a word. Three independent signs, any one suffices:

* the ``dev.sealgate.role=watchdog`` label the compose file sets;
* a 64-hex container ID in ``/proc/self/cgroup`` (cgroup v1, or v2 without a
  private cgroup namespace) or in ``/proc/self/mountinfo`` (the engine bind-mounts
  ``…/containers/<ID>/hostname``, ``hosts`` and ``resolv.conf`` into every container);
* the hostname, which is the short container ID unless ``--hostname`` or
  ``network_mode: host`` changed it.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from gate.engine import ContainerInfo
from gate.watch._options import SELF_LABEL, SELF_LABEL_VALUE

_ID_IN_CGROUP = re.compile(r"(?:docker[-/]|/)([0-9a-f]{64})(?:\.scope)?\b")
_ID_IN_MOUNTS = re.compile(r"/containers/([0-9a-f]{64})/")
_SHORT_ID = re.compile(r"[0-9a-f]{12}")


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def own_container_ids(proc: Path = Path("/proc/self")) -> frozenset[str]:
    """Container IDs this process's cgroup and mounts name (empty outside a container)."""
    found = set(_ID_IN_CGROUP.findall(_read(proc / "cgroup")))
    found.update(_ID_IN_MOUNTS.findall(_read(proc / "mountinfo")))
    return frozenset(found)


@dataclass(frozen=True)
class Self:
    """What identifies the watchdog's own container."""

    ids: frozenset[str]
    hostname: str

    @classmethod
    def detect(cls) -> Self:
        return cls(own_container_ids(), socket.gethostname())

    def why(self, container: ContainerInfo) -> str | None:
        """Why ``container`` is the watchdog's own (exempt from enforcement), or None."""
        if container.labels.get(SELF_LABEL) == SELF_LABEL_VALUE:
            return f"label {SELF_LABEL}={SELF_LABEL_VALUE}"
        if container.id in self.ids:
            return "this process runs in it"
        if _SHORT_ID.fullmatch(self.hostname) and container.id.startswith(self.hostname):
            return "its ID is this host name"
        return None

    def exempt(self, containers: Iterable[ContainerInfo]) -> list[tuple[ContainerInfo, str]]:
        return [(c, why) for c in containers if (why := self.why(c)) is not None]
