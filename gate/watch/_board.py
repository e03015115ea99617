"""The status board: what the watchdog knows now, for ``GET /`` and ``GET /status.json``.

One row per running container (its status, since when, image, digest,
signer, reason), the last sweep's time and each sink's spool depth. It is
read by the metrics server's threads while the loop writes it, hence the lock.
Every string it hands out passes through the sinks' redaction, so a token in
an alert URL that a reason echoes never reaches the page.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gate.engine import ContainerInfo
from gate.notify import redact
from gate.report import STATUS_ORDER, printable
from gate.result import Result, Status, fails

_RANK = {status: rank for rank, status in enumerate(STATUS_ORDER)}


@dataclass(frozen=True)
class Row:
    """One container as the page shows it."""

    container_id: str
    name: str
    status: Status
    since: float
    """When this status began (as seen by this run of the watchdog), epoch seconds."""
    image: str
    digest: str | None
    signer: str | None
    reason: str
    failing: bool


class Board:
    """Thread-safe latest state per container, with the figures the page adds around it."""

    def __init__(
        self,
        host: str,
        depths: Callable[[], Sequence[tuple[str, int]]] = lambda: (),
        secrets: Iterable[str] = (),
    ) -> None:
        self.host = host
        self._depths = depths
        self._secrets = tuple(s for s in secrets if s)
        self._rows: dict[str, Row] = {}
        self._last_sweep: float | None = None
        self._started = time.time()
        self._lock = threading.Lock()

    def record(self, container: ContainerInfo, result: Result) -> None:
        """The container's latest verdict; its ``since`` moves only when the status changes."""
        now = time.time()
        with self._lock:
            old = self._rows.get(container.id)
            since = old.since if old is not None and old.status is result.status else now
            self._rows[container.id] = Row(
                container_id=container.id,
                name=container.name,
                status=result.status,
                since=since,
                image=container.image_ref or container.image_id,
                digest=result.digest,
                signer=_signer(result),
                reason=result.reason,
                failing=fails(result.status, unsupported_denied=result.unsupported_denied),
            )

    def swept(self, when: float, running: Iterable[str]) -> None:
        """A sweep finished: containers it did not find are no longer shown."""
        keep = set(running)
        with self._lock:
            self._rows = {k: v for k, v in self._rows.items() if k in keep}
            self._last_sweep = when

    def forget(self, container_id: str) -> None:
        with self._lock:
            self._rows.pop(container_id, None)

    def exit_code(self) -> int:
        """``gate``'s rule over the containers shown: 0 all pass, 1 a policy failure, 3 ERROR."""
        with self._lock:
            failing = [r.status for r in self._rows.values() if r.failing]
        return 3 if Status.ERROR in failing else 1 if failing else 0

    def snapshot(self) -> dict[str, Any]:
        """The page's data, as ``/status.json`` serves it: failing containers first."""
        with self._lock:
            rows = sorted(
                self._rows.values(), key=lambda r: (not r.failing, _RANK[r.status], r.name)
            )
            last_sweep = self._last_sweep
        try:
            depths = list(self._depths())
        except Exception:  # a spool that cannot be read must not take the page down
            depths = []
        counts = Counter(r.status for r in rows)
        return {
            "host": self._clean(self.host),
            "generated_at": _iso(time.time()),
            "started_at": _iso(self._started),
            "last_sweep": _iso(last_sweep) if last_sweep is not None else None,
            "counts": {s.value: counts[s] for s in STATUS_ORDER if counts[s]},
            "failing": sum(1 for r in rows if r.failing),
            "containers": [self._row(r) for r in rows],
            "sinks": [{"name": self._clean(n), "spooled": d} for n, d in depths],
        }

    def _row(self, row: Row) -> dict[str, Any]:
        return {
            "id": row.container_id[:12],
            "name": self._clean(row.name),
            "status": row.status.value,
            "failing": row.failing,
            "since": _iso(row.since),
            "image": self._clean(row.image),
            "digest": row.digest,
            "signer": self._clean(row.signer) if row.signer else None,
            "reason": self._clean(row.reason),
        }

    def _clean(self, text: str) -> str:
        """No secret, no control or bidi character: names come from whoever runs a container."""
        return printable(redact(text, self._secrets))


def _signer(result: Result) -> str | None:
    """The policy's name, the keyless identity, else the key ID (12 hex digits)."""
    signer = result.signer
    if signer is None:
        return None
    who = getattr(signer, "identity", None) or f"key {(signer.key_id or '-')[:12]}"
    return f"{signer.name} ({who})" if signer.name else str(who)


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
