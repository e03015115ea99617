"""An overall deadline for every registry request, and the bounded pool that enforces it.

``requests`` has only per-read timeouts: a registry that sends one byte every
two seconds never trips them, so a hostile or broken registry could hold a
pipeline for hours. Each logical request here runs under a ``Deadline``; one
watchdog thread shuts the socket of every connection still working for a
deadline that has passed, which makes the blocked read fail at once (headers,
body or TLS handshake alike). A connection records which deadline it works
for when a request goes out and forgets it when it goes back to the pool, so
a late watchdog never cuts a request that reused the connection.

The pool is bounded (``pool_block``): at most ``concurrency`` connections per
registry, and a thread waiting for one waits no longer than its deadline.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from gate.errors import RegistryError

if TYPE_CHECKING:
    from urllib3._base_connection import BaseHTTPConnection

_OWNER = "_sealgate_deadline"
_current = threading.local()


class Deadline:
    """The moment one logical request (retries and body included) must be done by."""

    def __init__(self, registry: str, seconds: float) -> None:
        self.registry = registry
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.expired = False
        self.finished = False
        self._lock = threading.Lock()
        self._connections: list[BaseHTTPConnection] = []

    def remaining(self) -> float:
        return max(self.at - time.monotonic(), 0.0)

    def error(self) -> RegistryError:
        """The one sentence: which registry, which deadline, and the flag that changes it."""
        return RegistryError(
            f"registry {self.registry} did not finish answering within the "
            f"{self.seconds:g} s deadline; give it longer with --timeout SECONDS"
        )

    def attach(self, connection: BaseHTTPConnection) -> None:
        """``connection`` now works for this deadline (until it goes back to the pool)."""
        setattr(connection, _OWNER, self)
        with self._lock:
            self._connections.append(connection)
            late = self.expired
        if late:
            _shut(connection)

    def expire(self) -> None:
        """Called by the watchdog: cut every connection still working for this deadline."""
        with self._lock:
            if self.finished:
                return
            self.expired = True
            connections, self._connections = self._connections, []
        for connection in connections:
            if getattr(connection, _OWNER, None) is self:
                _shut(connection)

    def finish(self) -> None:
        """The request is over; the watchdog must leave its connections alone."""
        with self._lock:
            self.finished = True
            self._connections = []

    @contextlib.contextmanager
    def active(self) -> Iterator[Deadline]:
        """Make this the calling thread's deadline while a request is being sent."""
        previous = getattr(_current, "deadline", None)
        _current.deadline = self
        _watchdog.arm(self)
        try:
            yield self
        finally:
            _current.deadline = previous


_RESPONSES: weakref.WeakKeyDictionary[requests.Response, Deadline] = weakref.WeakKeyDictionary()
_RESPONSES_LOCK = threading.Lock()


def track(response: requests.Response, deadline: Deadline) -> None:
    """``response``'s body is still to be read under ``deadline``."""
    with _RESPONSES_LOCK:
        _RESPONSES[response] = deadline


def finish(response: requests.Response) -> None:
    """Close ``response``; raise the deadline error if its deadline cut the body short.

    Every reader of a body ends with this: a body cut by the watchdog may look
    complete (no Content-Length), so "did the deadline pass?" is asked here.
    """
    response.close()
    with _RESPONSES_LOCK:
        deadline = _RESPONSES.pop(response, None)
    if deadline is not None:
        deadline.finish()
        if deadline.expired:
            raise deadline.error()


def _shut(connection: BaseHTTPConnection) -> None:
    """Shut the socket down under a blocked reader; it then sees EOF or an error at once."""
    sock = getattr(connection, "sock", None)
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            # socket.socket's own shutdown: SSLSocket.shutdown would drop the TLS state
            # under the reading thread.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _current_deadline() -> Deadline | None:
    found = getattr(_current, "deadline", None)
    return found if isinstance(found, Deadline) else None


class _Watchdog:
    """One daemon thread that expires deadlines in time order."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Deadline]] = []
        self._count = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def arm(self, deadline: Deadline) -> None:
        with self._wake:
            heapq.heappush(self._heap, (deadline.at, next(self._count), deadline))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="sealgate-deadlines", daemon=True
                )
                self._thread.start()
            if self._heap[0][2] is deadline:  # the soonest now: the thread must wake earlier
                self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._heap:
                    self._wake.wait()
                at, _, deadline = self._heap[0]
                wait = at - time.monotonic()
                if wait > 0:
                    self._wake.wait(wait)
                    continue
                heapq.heappop(self._heap)
            deadline.expire()


_watchdog = _Watchdog()


def _attach_current(connection: BaseHTTPConnection) -> None:
    deadline = _current_deadline()
    if deadline is not None:
        deadline.attach(connection)


class _HTTPConnection(HTTPConnection):
    def connect(self) -> None:
        _attach_current(self)
        super().connect()

    def request(self, *args: Any, **kwargs: Any) -> None:
        _attach_current(self)
        super().request(*args, **kwargs)


class _HTTPSConnection(HTTPSConnection):
    def connect(self) -> None:
        _attach_current(self)
        super().connect()

    def request(self, *args: Any, **kwargs: Any) -> None:
        _attach_current(self)
        super().request(*args, **kwargs)


def _wait_for(timeout: float | None) -> float | None:
    """How long to wait for a free pooled connection: never past the thread's deadline."""
    deadline = _current_deadline()
    if timeout is None and deadline is not None:
        return max(deadline.remaining(), 0.001)
    return timeout


class _DeadlinePool:
    """Pool behaviour both schemes share: wait for a connection no longer than the deadline,
    and forget a connection's deadline when it goes back to the pool."""

    def _get_conn(self, timeout: float | None = None) -> BaseHTTPConnection:
        return super()._get_conn(_wait_for(timeout))  # type: ignore[misc,no-any-return]

    def _put_conn(self, conn: BaseHTTPConnection | None) -> None:
        if conn is not None:
            setattr(conn, _OWNER, None)
        super()._put_conn(conn)  # type: ignore[misc]


class _HTTPPool(_DeadlinePool, HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(_DeadlinePool, HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class BoundedAdapter(HTTPAdapter):
    """An HTTPAdapter whose pools know about deadlines, at most ``size`` connections per host.

    ``pool_block=True`` makes ``size`` a real bound on requests in flight to one
    registry (a burst waits for a keep-alive connection rather than opening
    ones that are thrown away); the wait itself ends at the request's deadline.
    """

    def __init__(self, size: int) -> None:
        super().__init__(pool_connections=4, pool_maxsize=size, max_retries=0, pool_block=True)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        """Through an HTTP(S) proxy too (SOCKS brings its own pools: per-read timeouts only)."""
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = dict(_POOLS)
        return manager


_POOLS: dict[str, type[HTTPConnectionPool]] = {"http": _HTTPPool, "https": _HTTPSPool}
