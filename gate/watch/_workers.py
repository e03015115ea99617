"""Everything slow happens off the watch loop: one delivery thread per sink, one per action.

The loop only writes events into each sink's spool (a local SQLite file) and
wakes that sink's thread; a webhook that accepts a connection and never
answers holds up its own thread and nothing else. When the spool cannot be
written (a full or read-only state directory) events wait in memory, bounded,
and go into the spool once it can be written again (or straight to the sink
if it answers first).

Enforcement runs the same way: ``docker stop`` waits out the container's
grace period, so each action gets a thread of its own, and a container
already being acted on is not acted on twice.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Sequence

from gate.engine import ContainerInfo, Engine
from gate.errors import EngineError
from gate.notify import Event, SinkError, Spool
from gate.watch._options import Enforcement

log = logging.getLogger("sealgate.watch")

_POLL = 0.5
"""How often an idle sink thread looks for events whose backoff ran out."""
MAX_ACTIONS = 8
"""Enforcement calls to the engine at once: a storm of untrusted starts queues, not floods."""
MAX_HELD = 10_000
"""Events kept in memory per sink while its spool cannot be written; beyond, the oldest go."""


class SinkWorker:
    """One sink's spool and the thread that delivers it."""

    def __init__(
        self,
        spool: Spool,
        *,
        on_disk: Callable[[str | None], None],
        max_held: int = MAX_HELD,
    ) -> None:
        self.spool = spool
        self._on_disk = on_disk
        """Told the error when the spool cannot be written, None when it can again."""
        self._held: collections.deque[Event] = collections.deque()
        self._max_held = max_held
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._disk_bad = False

    @property
    def name(self) -> str:
        return self.spool.sink.name

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"sink:{self.name}", daemon=True)
            self._thread.start()

    def put(self, events: Sequence[Event]) -> None:
        """Queue events (never blocks on the sink); in memory if the spool cannot take them."""
        if not events:
            return
        error = None
        with self._lock:
            if not self._held:  # once holding, keep holding so the order stays
                try:
                    self.spool.put(events)
                except SinkError as e:
                    error = e.message
                    self._hold(events)
            else:
                self._hold(events)
        self._wake.set()
        if error is not None:  # outside the lock: the fault's own alert comes back through put
            self._report(error)

    def _report(self, error: str | None) -> None:
        """Tell ``on_disk`` when the spool starts or stops failing, not on every event."""
        if (error is not None) == self._disk_bad:
            return
        self._disk_bad = error is not None
        self._on_disk(error)

    def _hold(self, events: Sequence[Event]) -> None:
        self._held.extend(events)
        dropped = len(self._held) - self._max_held
        for _ in range(max(0, dropped)):
            self._held.popleft()
        if dropped > 0:
            log.warning(
                "%s: %d events in memory; dropped the %d oldest", self.name, self._max_held, dropped
            )

    def pending(self) -> int:
        with self._lock:
            held = len(self._held)
        try:
            return held + self.spool.pending()
        except Exception:  # a broken spool file: what is held is all we know of
            return held

    def deliver(self, *, force: bool = False) -> None:
        """One round: move held events to the spool (or the sink), then flush the spool."""
        if not self._release_held():
            return
        try:
            self.spool.flush(force=force)
        except SinkError as e:  # the spool file itself failed (reading, or recording "sent")
            self._report(e.message)

    def _release_held(self) -> bool:
        """Move held events into the spool; True when the spool takes writes again.

        While it does not, they go to the sink directly (and leave memory once delivered).
        """
        with self._lock:
            held = list(self._held)
        if not held:
            if self._disk_bad and self._spool_writable():
                self._report(None)
            return not self._disk_bad
        try:
            self.spool.put(held)
        except SinkError:
            delivered = len(held)
            try:  # the disk is still bad: hand them to the sink directly
                self.spool.sink.send(held)
            except SinkError as e:
                delivered = e.delivered
            with self._lock:
                for _ in range(delivered):
                    self._held.popleft()
            return False
        with self._lock:
            for _ in range(len(held)):
                self._held.popleft()
        self._report(None)
        return True

    def _spool_writable(self) -> bool:
        """Whether the spool takes a write now (it was failing, and nothing is held to try)."""
        return self.spool.writable()

    def _run(self) -> None:
        while True:
            self._wake.wait(_POLL)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self.deliver()
            except Exception:  # never let one sink's surprise end its delivery for good
                log.exception("%s: delivery failed unexpectedly; retrying", self.name)
                time.sleep(_POLL)

    def close(self, deadline: float) -> bool:
        """Deliver what is queued until ``deadline`` (monotonic); True when nothing is left.

        What is not delivered stays in the spool for the next run; a sink
        thread stuck on a receiver that never answers is left behind (it is a
        daemon thread) rather than waited for.
        """
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
            if self._thread.is_alive():
                log.warning(
                    "%s did not answer in time; %d events stay spooled", self.name, self.pending()
                )
                return False
        left = max(0.0, deadline - time.monotonic())
        if left > 0:
            done = threading.Thread(target=self.deliver, kwargs={"force": True}, daemon=True)
            done.start()
            done.join(left)
            if done.is_alive():
                log.warning(
                    "%s did not answer in time; %d events stay spooled", self.name, self.pending()
                )
                return False
        waiting = self.pending()
        if waiting:
            log.warning("%s: %d events stay spooled for the next run", self.name, waiting)
        with self._lock:
            self.spool.close()
        return waiting == 0


class Enforcer:
    """Stops, kills or pauses containers, each in its own thread; reports failures back."""

    def __init__(
        self,
        engine: Engine,
        how: Enforcement,
        *,
        grace: int = 10,
        on_failure: Callable[[ContainerInfo, str], None],
    ) -> None:
        self._engine = engine
        self._how = how
        self._grace = grace
        self._on_failure = on_failure
        self._busy: set[str] = set()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(MAX_ACTIONS)

    def busy(self, container_id: str) -> bool:
        with self._lock:
            return container_id in self._busy

    def submit(self, container: ContainerInfo) -> bool:
        """Act on ``container`` in the background; False when an action on it is under way."""
        with self._lock:
            if container.id in self._busy:
                return False
            self._busy.add(container.id)
        threading.Thread(
            target=self._act,
            args=(container,),
            name=f"{self._how}:{container.id[:12]}",
            daemon=True,
        ).start()
        return True

    def _act(self, container: ContainerInfo) -> None:
        how = self._how
        with self._slots:
            self._act_now(container, how)

    def _act_now(self, container: ContainerInfo, how: Enforcement) -> None:
        try:
            if how is Enforcement.STOP:
                self._engine.stop_container(container.id, grace=self._grace)
            elif how is Enforcement.KILL:
                self._engine.kill_container(container.id)
            elif how is Enforcement.PAUSE:
                self._engine.pause_container(container.id)
            log.warning(
                "%s container %s (%s): its image is not trusted",
                _past(how),
                container.name,
                container.id[:12],
            )
        except EngineError as e:
            log.warning("could not %s container %s: %s", how, container.name, e.message)
            self._on_failure(container, e.message)
        finally:
            with self._lock:
                self._busy.discard(container.id)

    def wait(self, deadline: float) -> int:
        """Wait until no action is under way or ``deadline``; returns how many still are."""
        while time.monotonic() < deadline:
            with self._lock:
                if not self._busy:
                    return 0
            time.sleep(0.05)
        with self._lock:
            return len(self._busy)


def _past(how: Enforcement) -> str:
    return {"stop": "stopped", "kill": "killed", "pause": "paused"}.get(how.value, how.value)
