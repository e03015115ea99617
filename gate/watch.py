"""The host watchdog: verify every container as it starts, sweep as a safety net, alert on change.

vcn-watchdog polled ``docker ps`` every 60 s, verified what each tag pointed
at *now*, and posted to Slack on every failure, every minute. Here:

* the engine's event stream triggers a verification the moment a container
  starts, restarts or unpauses; a periodic sweep catches anything missed;
* what is verified is the image the container was created from (``.Image``,
  its image ID and repo digests), never what its tag points at now;
* results are cached per image ID, so 200 containers of 10 images cost 10
  verifications; the cache drops an entry at its TTL, and drops everything when
  the policy file changes or the ledger grows (a revocation may have landed);
* alerts fire when a container's status changes (first sighting of a failing
  container, trusted → failing, failing → trusted), never once per sweep; the
  last status of each container is kept on disk so a restart does not re-alert;
* every result goes to the metric sinks; every sink sits behind an on-disk
  spool, so an outage loses nothing and a replay sends nothing twice.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gate.engine import ContainerInfo, Engine, EngineEvent
from gate.errors import EngineError, SealgateError
from gate.notify import Event, Metrics, Spool
from gate.refs import Source, SourceKind
from gate.result import Result, Status, fails

if TYPE_CHECKING:
    from gate.verify import Verifier

log = logging.getLogger("sealgate.watch")


class Enforcement(StrEnum):
    ALERT = "alert"
    STOP = "stop"
    KILL = "kill"
    PAUSE = "pause"


@dataclass(frozen=True)
class WatchOptions:
    interval: float = 60.0
    """Seconds between full sweeps."""
    cache_ttl: float = 300.0
    """Seconds a verification result is reused for the same image."""
    realert_after: float | None = None
    """Repeat an alert for a container still failing after this many seconds."""
    on_untrusted: Enforcement = Enforcement.ALERT
    host: str = field(default_factory=socket.gethostname)
    state_dir: Path = Path(".")
    """Where the per-container state and the sink spools live."""
    labels: tuple[str, ...] = ()
    """Only watch containers with every one of these labels (``KEY`` or ``KEY=VALUE``)."""

    def watches(self, container: ContainerInfo) -> bool:
        for label in self.labels:
            key, sep, value = label.partition("=")
            if key not in container.labels or (sep and container.labels[key] != value):
                return False
        return True


@dataclass
class _Cached:
    result: Result
    at: float


@dataclass
class _Seen:
    status: Status
    transitions: int
    alerted_at: float


class Watchdog:
    """One host's watchdog. ``verify`` maps an image ID to a Result (the gate's own code)."""

    def __init__(
        self,
        engine: Engine,
        verify: Callable[[str], Result],
        *,
        alerts: Sequence[Spool] = (),
        metrics_sinks: Sequence[Spool] = (),
        metrics: Metrics | None = None,
        options: WatchOptions = WatchOptions(),
        freshness: Callable[[], Any] = lambda: None,
    ) -> None:
        self.engine = engine
        self._verify = verify
        self.alerts = list(alerts)
        self.metrics_sinks = list(metrics_sinks)
        self.metrics = metrics
        self.options = options
        self._freshness = freshness
        self._fresh_token: Any = freshness()
        self._cache: dict[str, _Cached] = {}
        self._lock = threading.Lock()
        self.verifications = 0
        """Verifications actually performed (cache misses): what the benchmark counts."""
        self._state_path = options.state_dir / "containers.json"
        self._seen = self._load_state()

    # --- state that survives restarts ------------------------------------------------------

    def _load_state(self) -> dict[str, _Seen]:
        try:
            raw = json.loads(self._state_path.read_text())
            return {
                k: _Seen(Status(v["status"]), int(v["transitions"]), float(v.get("alerted_at", 0)))
                for k, v in raw.items()
            }
        except FileNotFoundError:
            return {}
        except (ValueError, KeyError, TypeError) as e:
            log.warning("ignoring unreadable watchdog state %s (%s)", self._state_path, e)
            return {}

    def _save_state(self) -> None:
        self._state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._state_path.with_suffix(".tmp")
        data = {
            k: {"status": v.status.value, "transitions": v.transitions, "alerted_at": v.alerted_at}
            for k, v in self._seen.items()
        }
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self._state_path)

    # --- verification ----------------------------------------------------------------------

    def _result_for(self, image_id: str) -> Result:
        token = self._freshness()
        now = time.monotonic()
        with self._lock:
            if token != self._fresh_token:
                log.info("policy or ledger changed: dropping %d cached results", len(self._cache))
                self._cache.clear()
                self._fresh_token = token
            cached = self._cache.get(image_id)
            if cached is not None and now - cached.at < self.options.cache_ttl:
                return cached.result
        result = self._verify(image_id)
        with self._lock:
            self.verifications += 1
            if result.status is not Status.ERROR:
                self._cache[image_id] = _Cached(result, now)
        return result

    def check(self, container: ContainerInfo, *, started_ns: int | None = None) -> Event:
        """Verify one container and report it: metrics always, alerts on change."""
        began = time.time_ns()
        result = self._result_for(container.image_id)
        latency = (time.time_ns() - (started_ns or began)) / 1e6
        failing = fails(result.status, unsupported_denied=result.unsupported_denied)
        action = self._enforce(container) if failing else None
        seen = self._seen.get(container.id)
        previous = seen.status if seen else None
        changed = seen is None or seen.status is not result.status
        transitions = seen.transitions + 1 if changed and seen else seen.transitions if seen else 0
        common: dict[str, Any] = dict(
            host=self.options.host,
            image=container.image_ref or container.image_id,
            status=result.status,
            container_id=container.id,
            container_name=container.name,
            digest=result.digest,
            reason=result.reason,
            level=result.level,
            latency_ms=latency,
            action=action,
        )
        point = Event.create(**common, previous_status=previous, sequence=f"point:{began}")
        for spool in self.metrics_sinks:
            spool.put([point])
        if self.metrics is not None:
            self.metrics.observe(point)
        realert = (
            failing
            and seen is not None
            and self.options.realert_after is not None
            and time.time() - seen.alerted_at >= self.options.realert_after
        )
        alerted_at = seen.alerted_at if seen else 0.0
        if (changed and (failing or previous is not None)) or realert or action:
            alert = Event.create(
                **common,
                previous_status=previous,
                sequence=f"alert:{transitions}:{previous}"
                + (f":{time.time_ns()}" if realert else ""),
            )
            for spool in self.alerts:
                spool.put([alert])
            alerted_at = time.time()
        if changed or alerted_at != (seen.alerted_at if seen else 0.0):
            self._seen[container.id] = _Seen(result.status, transitions, alerted_at)
            self._save_state()
        self.flush()
        return point

    def _enforce(self, container: ContainerInfo) -> str | None:
        how = self.options.on_untrusted
        if how is Enforcement.ALERT:
            return None
        try:
            {
                Enforcement.STOP: self.engine.stop_container,
                Enforcement.KILL: self.engine.kill_container,
                Enforcement.PAUSE: self.engine.pause_container,
            }[how](container.id)
        except EngineError as e:
            log.warning("could not %s container %s: %s", how, container.name, e.message)
            return f"{how} failed"
        log.warning(
            "%s container %s (%s): its image is not trusted", how, container.name, container.id[:12]
        )
        return how.value

    def sweep(self) -> int:
        """Verify every running container; returns how many containers were checked."""
        containers = [c for c in self.engine.containers() if self.options.watches(c)]
        for container in containers:
            try:
                self.check(container)
            except SealgateError as e:
                log.warning("could not check container %s: %s", container.name, e.message)
        running = {c.id for c in containers}
        for gone in set(self._seen) - running:
            del self._seen[gone]
            if self.metrics is not None:
                self.metrics.forget(gone)
        if self.metrics is not None:
            self.metrics.sweep_done(time.time(), running)
        self._save_state()
        return len(containers)

    def flush(self, force: bool = False) -> None:
        for spool in (*self.alerts, *self.metrics_sinks):
            spool.flush(force=force)

    # --- the loop --------------------------------------------------------------------------

    def on_event(self, event: EngineEvent) -> None:
        if event.type == "container":
            container = self.engine.container(event.id)
            if container is None:
                log.info("container %s is gone before it could be checked", event.id[:12])
                return
            if self.options.watches(container):
                self.check(container, started_ns=event.time_nano)
        elif event.type == "image":
            with self._lock:  # a pull or tag may bring new repo digests: verify afresh
                self._cache.clear()

    def run(self, stop: threading.Event, *, once: bool = False) -> None:
        """Sweep, then follow events until ``stop`` is set.

        Reconnects with backoff when the engine is lost.
        """
        events: queue.Queue[EngineEvent | Exception] = queue.Queue()
        backoff = 1.0
        since = time.time()
        reader: threading.Thread | None = None

        def follow(start: float) -> None:
            try:
                for event in self.engine.events(since=start, stop=stop):
                    events.put(event)
            except EngineError as e:
                events.put(e)

        next_sweep = 0.0
        while not stop.is_set():
            try:
                if reader is None or not reader.is_alive():
                    reader = threading.Thread(
                        target=follow, args=(since,), name="engine-events", daemon=True
                    )
                    reader.start()
                    next_sweep = 0.0  # a full sweep on (re)connect catches what we missed
                if time.monotonic() >= next_sweep:
                    count = self.sweep()
                    log.info(
                        "swept %d containers (%d verifications so far)", count, self.verifications
                    )
                    backoff = 1.0
                    next_sweep = time.monotonic() + self.options.interval
                    if once:
                        break
                timeout = max(0.05, min(1.0, next_sweep - time.monotonic()))
                try:
                    item = events.get(timeout=timeout)
                except queue.Empty:
                    self.flush()
                    continue
                if isinstance(item, Exception):
                    raise item
                since = item.time_nano / 1e9
                self.on_event(item)
            except EngineError as e:
                log.warning(
                    "lost the Docker engine (%s); reconnecting in %.0f s", e.message, backoff
                )
                if stop.wait(backoff):
                    break
                backoff = min(backoff * 2, 30.0)
                reader = None
            except SealgateError as e:
                log.warning("%s", e.message)
        self.flush(force=True)


def image_verifier(
    verifier_factory: Callable[[], Verifier], engine: Engine
) -> Callable[[str], Result]:
    """Verify an image ID with the gate's verifier, through the same engine connection."""
    from gate.verify import Target

    def verify(image_id: str) -> Result:
        verifier = verifier_factory()
        return verifier.run(
            [Target(Source(SourceKind.DOCKER, f"docker://{image_id}", name=image_id))]
        )[0]

    return verify
