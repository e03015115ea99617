"""The watch loop: verify each container as it starts, sweep as a safety net, alert on change.

The loop itself only inspects, verifies and records. Alerts, metric points
and enforcement are handed to threads of their own (``_workers``), so a slow
receiver or a ``docker stop`` waiting out a grace period never delays the
next container's check.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gate.engine import ContainerInfo, Engine, EngineEvent
from gate.errors import EngineError, SealgateError
from gate.notify import Event, Metrics, Spool
from gate.result import Result, Status, fails
from gate.verdicts import VerdictCache
from gate.watch._board import Board
from gate.watch._events import gone_container
from gate.watch._faults import Faults
from gate.watch._options import Enforcement, WatchOptions, enforceable
from gate.watch._self import Self
from gate.watch._state import Seen, State
from gate.watch._verifier import combine
from gate.watch._workers import Enforcer, SinkWorker

log = logging.getLogger("sealgate.watch")

_RECONNECT = 0.5
"""Seconds between attempts to reach a lost engine: it is back within about this of answering."""
_FRESHNESS_POLL = 1.0
"""Seconds between looks at the policy file and the ledger (a change triggers a sweep)."""


_LONGEST_VERIFICATION = 600.0
"""Seconds a check waits for one verification (each registry request has its own deadline
inside); past it the container is ERROR for now, and the verdict is kept when it lands."""


class Watchdog:
    """One host's watchdog. ``verify`` maps an image ID or a registry reference to a Result."""

    def __init__(
        self,
        engine: Engine,
        verify: Callable[[str], Result],
        *,
        alerts: Sequence[Spool] = (),
        metrics_sinks: Sequence[Spool] = (),
        metrics: Metrics | None = None,
        options: WatchOptions | None = None,
        freshness: Callable[[], Any] = lambda: None,
        own: Self | None = None,
        secrets: Sequence[str] = (),
    ) -> None:
        self.engine = engine
        self._verify = verify
        self.metrics = metrics
        self.options = options = options or WatchOptions()
        self._freshness = freshness
        self._fresh_token: Any = freshness()
        self._cache: VerdictCache[tuple[str, Any]] = VerdictCache(
            trusted_ttl=options.refresh, failure_ttl=options.refresh, wait=_LONGEST_VERIFICATION
        )
        """Verdicts by (image ID, policy/ledger version); concurrent checks of one image
        (a Compose project starting) wait on one verification."""
        self._lock = threading.Lock()
        self._faults = Faults(options.host, self._alert, metrics)
        self.alerts: list[SinkWorker] = []
        self._state = State(options.state_dir, self._faults.disk("state"))
        self.alerts = [SinkWorker(s, on_disk=self._faults.disk(s.path.name)) for s in alerts]
        self.metrics_sinks = [
            SinkWorker(s, on_disk=self._faults.disk(s.path.name)) for s in metrics_sinks
        ]
        self._enforcer = Enforcer(
            engine, options.on_untrusted, grace=options.stop_grace, on_failure=self._failed
        )
        self._own = own or Self.detect()
        self.board = Board(options.host, self._depths, secrets)
        """What ``GET /`` and ``/status.json`` show; ``secrets`` are redacted from it."""
        self._in_use: set[str] = set()
        """Image IDs the last sweep found running: remembered digests that are kept."""

    @property
    def verifications(self) -> int:
        """Verifications actually performed (cache misses): what the benchmark counts."""
        return self._cache.verifications

    @property
    def faults(self) -> Mapping[str, str]:
        """Faults of the watchdog's own now active: kind (``policy``, ``state``) to sentence."""
        return self._faults.active

    def _depths(self) -> list[tuple[str, int]]:
        return [(w.name, w.pending()) for w in (*self.alerts, *self.metrics_sinks)]

    def _alert(self, events: Sequence[Event]) -> None:
        for worker in self.alerts:
            worker.put(events)

    # --- verification ----------------------------------------------------------------------

    def _result_for(self, image_id: str) -> Result:
        token = self._freshness()
        with self._lock:
            if token != self._fresh_token:
                log.info("policy or ledger changed: dropping %d cached results", len(self._cache))
                self._cache.clear()
                self._fresh_token = token
        key = (image_id, token)
        result = self._cache.get_many(
            [key],
            lambda keys: {k: self._verify_image(k[0]) for k in keys},
            lambda k, why: Result(k[0], None, Status.ERROR, why),
        ).results[key]
        policy_broken = result.extra.get("fault") == "policy"
        self._faults.report("policy", result.reason if policy_broken else None)
        return result

    def _verify_image(self, image_id: str) -> Result:
        """The image's verdict, from the repo digests it had when first seen if it lost them."""
        try:
            listed = self.engine.image(image_id).repo_digests
        except EngineError:
            listed = ()  # no such image any more: verify() says so
        self._state.remember(image_id, listed, self._in_use)
        result = self._verify(image_id)
        if result.status is not Status.UNKNOWN:
            return result
        lost = [d for d in self._state.images.get(image_id, ()) if d not in listed]
        if not lost:
            return result
        log.info(
            "image %s no longer lists %d repo digests it had; verifying those",
            image_id[:19],
            len(lost),
        )
        return combine(result, [self._verify(d) for d in lost])

    def check(
        self, container: ContainerInfo, *, started_ns: int | None = None, sweep: bool = False
    ) -> Event:
        """Verify one container and report it: metrics always, alerts on change."""
        began = time.time_ns()
        result = self._result_for(container.image_id)
        self.board.record(container, result)
        latency = (time.time_ns() - (started_ns or began)) / 1e6
        failing = fails(result.status, unsupported_denied=result.unsupported_denied)
        quiet = result.extra.get("fault") is not None
        seen = self._state.containers.get(container.id)
        action = self._enforce(container) if enforceable(result) else None
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
        for worker in self.metrics_sinks:
            worker.put([point])
        if self.metrics is not None:
            self.metrics.observe(point)
        realert = (
            failing
            and not quiet
            and seen is not None
            and self.options.realert_after is not None
            and time.time() - seen.alerted_at >= self.options.realert_after
        )
        if quiet:
            alert = False  # the fault is alerted once for the host (see ``fault``)
        elif changed and seen is not None and seen.quiet:
            alert = failing  # back from a fault: only a verdict against it is news
        else:
            alert = changed and (failing or previous is not None)
        alerted_at = seen.alerted_at if seen else 0.0
        if alert or realert or action:
            suffix = f":{time.time_ns()}" if realert or action else ""
            event = Event.create(
                **common,
                previous_status=previous,
                sequence=f"alert:{transitions}:{previous}{suffix}",
            )
            self._alert([event])
            alerted_at = time.time()
        if (
            changed
            or alerted_at != (seen.alerted_at if seen else 0.0)
            or (seen and seen.quiet != quiet)
        ):
            self._state.containers[container.id] = Seen(
                result.status, transitions, alerted_at, quiet
            )
            if not sweep:
                self._state.save_containers()
        return point

    def _enforce(self, container: ContainerInfo) -> str | None:
        """Start the configured action on a running container; the action's name, or None.

        Never on the watchdog's own container; never on one that is not
        running (a paused one is not paused again, an exited one is not
        stopped again by a stale start event); never twice at once.
        """
        how = self.options.on_untrusted
        if how is Enforcement.ALERT or container.status != "running":
            return None
        why = self._own.why(container)
        if why is not None:
            log.debug("not acting on %s (%s): it is the watchdog's own", container.name, why)
            return None
        if not self._enforcer.submit(container):
            return None
        return how.value

    def _failed(self, container: ContainerInfo, error: str) -> None:
        """An action failed: say so in its own alert."""
        how = self.options.on_untrusted
        event = Event.create(
            host=self.options.host,
            image=container.image_ref or container.image_id,
            status=Status.ERROR,
            container_id=container.id,
            container_name=container.name,
            reason=f"could not {how} the container: {error}",
            action=f"{how} failed",
            sequence=f"failed:{time.time_ns()}",
        )
        self._alert([event])

    def sweep(self) -> int:
        """Verify every running container; returns how many containers were checked."""
        containers = [c for c in self.engine.containers() if self.options.watches(c)]
        self._cache.prune()  # results nobody used within --refresh
        for container in containers:
            try:
                self.check(container, sweep=True)
            except SealgateError as e:
                log.warning("could not check container %s: %s", container.name, e.message)
        running = {c.id for c in containers}
        self._in_use = {c.image_id for c in containers}
        for gone in set(self._state.containers) - running:
            del self._state.containers[gone]
            if self.metrics is not None:
                self.metrics.forget(gone)
        if self.metrics is not None:
            self.metrics.sweep_done(time.time(), running)
        self.board.swept(time.time(), running)
        self._state.save_containers()
        return len(containers)

    def flush(self, force: bool = False) -> None:
        """Deliver what is queued, in this thread (``--once``, the demo)."""
        for worker in (*self.alerts, *self.metrics_sinks):
            worker.deliver(force=force)

    # --- events ----------------------------------------------------------------------------

    def on_event(self, event: EngineEvent) -> None:
        if event.type == "container":
            container = self.engine.container(event.id) or gone_container(self.engine, event)
            if container is not None and self.options.watches(container):
                self.check(container, started_ns=event.time_nano)
        elif event.type == "image":
            # A pull or tag may bring that image new repo digests: verify it afresh. Only it:
            # a busy build host tags images all day.
            image_id = event.id
            if not image_id.startswith("sha256:"):
                try:
                    image_id = self.engine.image(event.id).id
                except EngineError:
                    return
            with self._lock:
                token = self._fresh_token
            self._cache.forget((image_id, token))

    # --- the loop --------------------------------------------------------------------------

    def _start(self) -> None:
        for worker in (*self.alerts, *self.metrics_sinks):
            worker.start()
        try:
            exempt = self._own.exempt(self.engine.containers())
        except EngineError:
            exempt = []
        if exempt:
            for container, why in exempt:
                log.warning(
                    "never acting on container %s (%s): %s", container.name, container.id[:12], why
                )
        else:
            log.warning(
                "no container of the watchdog's own found; containers labelled "
                "dev.sealgate.role=watchdog are never acted on"
            )

    def run(self, stop: threading.Event, *, once: bool = False) -> None:
        """Sweep, then follow events until ``stop`` is set; then drain the sinks briefly.

        Reconnects every ``_RECONNECT`` seconds while the engine is lost, and
        sweeps at once when it is back, when the policy or ledger changes, and
        when a cached result reaches ``refresh`` seconds of age.
        """
        self._start()
        try:
            self._loop(stop, once)
        finally:
            self.close()

    def _loop(self, stop: threading.Event, once: bool) -> None:
        events: queue.Queue[EngineEvent | Exception] = queue.Queue()
        since = time.time()
        reader: threading.Thread | None = None
        lost = False

        def follow(start: float) -> None:
            try:
                for event in self.engine.events(since=start, stop=stop):
                    events.put(event)
            except EngineError as e:
                events.put(e)

        next_sweep = 0.0
        next_look = time.monotonic() + _FRESHNESS_POLL
        token = self._freshness()
        while not stop.is_set():
            try:
                if reader is None or not reader.is_alive():
                    self.engine.ping()
                    reader = threading.Thread(
                        target=follow, args=(since,), name="engine-events", daemon=True
                    )
                    reader.start()
                    next_sweep = 0.0  # a full sweep on (re)connect catches what we missed
                    if lost:
                        log.warning("the Docker engine at %s is back", self.engine.where)
                        lost = False
                now = time.monotonic()
                if now >= next_look:
                    next_look = now + _FRESHNESS_POLL
                    self._state.retry()
                    current = self._freshness()
                    if current != token:
                        token = current
                        log.info("policy or ledger changed: sweeping now")
                        next_sweep = 0.0
                if now >= min(next_sweep, self._next_expiry()):
                    count = self.sweep()
                    log.info(
                        "swept %d containers (%d verifications so far)", count, self.verifications
                    )
                    next_sweep = time.monotonic() + self.options.interval
                    if once:
                        break
                wake = min(next_sweep, self._next_expiry(), next_look)
                timeout = max(0.05, min(1.0, wake - time.monotonic()))
                try:
                    item = events.get(timeout=timeout)
                except queue.Empty:
                    continue
                if isinstance(item, Exception):
                    raise item
                since = item.time_nano / 1e9
                self.on_event(item)
            except EngineError as e:
                if not lost:
                    log.warning(
                        "lost the Docker engine (%s); retrying every %g s", e.message, _RECONNECT
                    )
                lost = True
                reader = None
                if stop.wait(_RECONNECT):
                    break
            except SealgateError as e:
                log.warning("%s", e.message)

    def _next_expiry(self) -> float:
        """When the oldest cached result reaches ``refresh``: a sweep then re-verifies it."""
        expiry = self._cache.next_expiry()
        return float("inf") if expiry is None else expiry

    def close(self) -> None:
        """Give queued alerts and points ``drain_seconds`` to go out; the rest stays spooled."""
        deadline = time.monotonic() + self.options.drain_seconds
        self._state.retry()
        busy = self._enforcer.wait(min(deadline, time.monotonic() + 1.0))
        if busy:
            log.warning("%d enforcement actions were still under way at exit", busy)
        for worker in (*self.alerts, *self.metrics_sinks):
            worker.close(deadline)
