"""What the watchdog does and how often: the knobs ``sealgate watch`` exposes."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from gate.engine import ContainerInfo
from gate.result import Result, Status

SELF_LABEL = "dev.sealgate.role"
SELF_LABEL_VALUE = "watchdog"
"""The label deploy/watchdog/compose.yaml sets: a container carrying it is never acted on."""


class Enforcement(StrEnum):
    ALERT = "alert"
    STOP = "stop"
    KILL = "kill"
    PAUSE = "pause"


def enforceable(result: Result) -> bool:
    """A verdict against the image: UNTRUSTED, UNKNOWN, or UNSUPPORTED that the policy denies.

    ERROR is "could not tell" (a registry outage, a broken policy): it is
    alerted, never enforced, so an outage cannot take down trusted containers.
    """
    if result.status in (Status.UNTRUSTED, Status.UNKNOWN):
        return True
    return result.status is Status.UNSUPPORTED and result.unsupported_denied


@dataclass(frozen=True)
class WatchOptions:
    interval: float = 60.0
    """Seconds between full sweeps."""
    refresh: float = 60.0
    """Seconds a verification result is trusted: older ones are verified again at once, so a
    revocation made in a registry reaches running containers within this bound."""
    realert_after: float | None = None
    """Repeat an alert for a container still failing after this many seconds."""
    on_untrusted: Enforcement = Enforcement.ALERT
    stop_grace: int = 10
    """Seconds ``stop`` waits after SIGTERM before SIGKILL (as ``docker stop``)."""
    host: str = field(default_factory=socket.gethostname)
    state_dir: Path = Path(".")
    """Where the per-container state, the remembered repo digests and the sink spools live."""
    labels: tuple[str, ...] = ()
    """Only watch containers with every one of these labels (``KEY`` or ``KEY=VALUE``)."""
    drain_seconds: float = 3.0
    """How long stopping waits for sinks to deliver what is queued (the rest stays spooled)."""

    def watches(self, container: ContainerInfo) -> bool:
        for label in self.labels:
            key, sep, value = label.partition("=")
            if key not in container.labels or (sep and container.labels[key] != value):
                return False
        return True
