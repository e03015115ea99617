"""Faults of the watchdog's own: said once when they begin and once when they end.

A broken policy or an unwritable state directory concerns every container at
once, so it is one log line, one alert and one gauge
(``sealgate_watchdog_fault{kind}``), never one per container or per sweep.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from gate.notify import Event, Metrics
from gate.result import Status

log = logging.getLogger("sealgate.watch")

_WHAT = {"state": "the state directory", "policy": "the policy"}


class Faults:
    """The faults now active, and the alerts and metric that announce each change."""

    def __init__(
        self,
        host: str,
        alert: Callable[[Sequence[Event]], None],
        metrics: Metrics | None = None,
    ) -> None:
        self._host = host
        self._alert = alert
        self._metrics = metrics
        self._active: dict[str, str] = {}
        self._disk_errors: dict[str, str] = {}
        self._lock = threading.Lock()

    @property
    def active(self) -> Mapping[str, str]:
        with self._lock:
            return dict(self._active)

    def report(self, kind: str, error: str | None) -> None:
        """``error`` is the fault's sentence while it lasts, None once it is over."""
        with self._lock:
            was = self._active.get(kind)
            if (error is None) == (was is None):
                return
            if error is None:
                del self._active[kind]
            else:
                self._active[kind] = error
        what = _WHAT.get(kind, kind)
        if error is not None:
            log.error("%s: %s; still watching", what, error)
            reason = f"{what}: {error}"
        else:
            log.warning("%s is usable again", what)
            reason = f"{what} is usable again"
        if self._metrics is not None:
            self._metrics.fault(kind, error is not None)
        self._alert(
            [
                Event.create(
                    host=self._host,
                    image=f"sealgate watch ({kind})",
                    status=Status.ERROR if error is not None else Status.TRUSTED,
                    previous_status=None if error is not None else Status.ERROR,
                    reason=reason,
                    sequence=f"fault:{kind}:{time.time_ns()}",
                )
            ]
        )

    def disk(self, source: str) -> Callable[[str | None], None]:
        """A callback for one writer in the state directory; the fault lasts while any fails."""

        def report(error: str | None) -> None:
            with self._lock:
                if error is None:
                    self._disk_errors.pop(source, None)
                else:
                    self._disk_errors[source] = error
                first = next(iter(self._disk_errors.values()), None)
            self.report("state", first)

        return report
