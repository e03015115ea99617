"""HTTPS for the API server: an asyncio event loop, ``ssl``, and the strict HTTP/1.1 of ``_http``.

No web framework: the webhook answers five paths to one client (the API
server), over kept-alive connections. ``http.server`` with a thread per
connection was used at first; its ``email``-based header parsing, two TLS
records per answer and 16 threads contending for the GIL at 16 connections
made a warm admission cost ~0.6 ms of CPU and ~25 ms at p99. Now one loop
reads every connection and answers an admission whose verdicts are all
cached at once, in arrival order; one that must wait for a verification goes
to a worker pool. TLS handshakes run on the loop too, non-blocking, bounded
by ``HANDSHAKE_TIMEOUT`` each and ``MAX_HANDSHAKES`` at once. The certificate
and key (and client CA) are read again when a file changes, as cert-manager
rotates them, without dropping a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from cryptography import x509

from gate.admission import _http
from gate.admission._admit import Admitter, Mode
from gate.admission._metrics import AdmissionMetrics
from gate.admission._review import MAX_BODY, ReviewError, parse, response
from gate.errors import UsageError
from gate.notify._prometheus import parse_addr

log = logging.getLogger(__name__)
HANDSHAKE_TIMEOUT = 10.0
"""Seconds a new connection has to complete its TLS handshake."""
MAX_HANDSHAKES = 256
"""Connections in their TLS handshake at once (in no pool yet); when full the oldest goes."""
MAX_CONNECTIONS = 1024
"""Open connections at once; the API server keeps a few per webhook replica."""
MAX_UNAUTHENTICATED = 64
"""With --client-ca: open connections without a client certificate (the kubelet's probes);
when full, the oldest is closed for a new one."""
STRANGER_BODY = 64 * 1024
"""With --client-ca: the largest body taken from a connection without a certificate."""
WORKERS = 32
"""Admissions waiting on a verification at once (each waits at most the cache's 8 s)."""
_TEXT = "text/plain; charset=utf-8"
_NO_CLIENT_CERT = b"admission requests need a client certificate signed by the --client-ca\n"
_JSON = "application/json"


class TLSFiles:
    """A certificate and key on disk, as a server SSLContext; reloaded when they change."""

    def __init__(
        self, cert: str, key: str, *, client_ca: str | None = None, every: float = 1.0
    ) -> None:
        self.cert, self.key, self.every = cert, key, every
        self.client_ca = client_ca
        """Admissions only from clients with a certificate this CA signed (the API server's)."""
        self.expires = datetime.max.replace(tzinfo=UTC)
        """When the served certificate stops being valid (the first in the file)."""
        self._lock = threading.Lock()
        self._stamp = self._stat()
        self._context = self._load()  # a bad pair at start is a usage error: exit 2
        self._checked = time.monotonic()

    def _stat(self) -> tuple[Any, ...]:
        stamps: list[Any] = []
        # The client CA too: one rotated out must stop being trusted, and the API server's
        # certificate from a new one must get in, without a restart.
        for path in (self.cert, self.key, *([self.client_ca] if self.client_ca else [])):
            try:
                st = os.stat(path)
                stamps.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                stamps.append(None)
        return tuple(stamps)

    def _load(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.options |= ssl.OP_NO_RENEGOTIATION  # a TLS 1.2 client gains nothing by it
        try:
            context.load_cert_chain(self.cert, self.key)
            with open(self.cert, "rb") as f:
                self.expires = x509.load_pem_x509_certificate(f.read()).not_valid_after_utc
        except (OSError, ssl.SSLError, ValueError) as e:
            why = getattr(e, "strerror", None) or getattr(e, "reason", None) or str(e)
            raise UsageError(
                f"cannot use the TLS certificate {self.cert} with key {self.key}: {why}",
                hint="give a PEM certificate (chain) and its unencrypted PEM private key",
            ) from None
        if self.client_ca is not None:
            # Optional at the handshake (the kubelet's probes carry no certificate), checked
            # when one is shown, and required by /validate and /mutate.
            context.verify_mode = ssl.CERT_OPTIONAL
            try:
                context.load_verify_locations(cafile=self.client_ca)
            except (OSError, ssl.SSLError, ValueError) as e:
                why = getattr(e, "strerror", None) or getattr(e, "reason", None) or str(e)
                raise UsageError(
                    f"cannot use {self.client_ca} as the client CA: {why}",
                    hint="give the PEM CA certificate that signed the API server's client "
                    "certificate",
                ) from None
        return context

    def server_context(self) -> ssl.SSLContext:
        """A context for a listener that serves the current pair to each new connection.

        OpenSSL calls the servername callback on every ClientHello (with or
        without SNI); swapping the connection's context there is how a
        listening server picks up a rotated certificate without restarting.
        """
        base = self._load()
        base.sni_callback = self._select
        return base

    def _select(self, connection: ssl.SSLObject, _name: str | None, _base: ssl.SSLContext) -> None:
        connection.context = self.context()

    def context(self) -> ssl.SSLContext:
        """The current context; a pair that fails to load keeps the last good one (and logs)."""
        now = time.monotonic()
        if now - self._checked < self.every:
            return self._context
        with self._lock:
            self._checked = now
            stamp = self._stat()
            if stamp != self._stamp:
                try:
                    self._context = self._load()
                    self._stamp = stamp
                    log.warning("TLS certificate %s reloaded", self.cert)
                except UsageError as e:
                    log.error("TLS pair not reloaded, keeping the last good one: %s", e.message)
            return self._context


class _Quiet:
    """Refusals logged at most once per ``every`` seconds each, with how many were left out.

    Anyone who reaches the port can be refused as fast as it can connect; a line
    each would let it fill the node's disk and bury what matters. Used on the loop only.
    """

    def __init__(self, every: float = 10.0) -> None:
        self.every = every
        self._last: dict[str, tuple[float, int]] = {}

    def log(self, level: int, message: str, *args: object) -> None:
        now = time.monotonic()
        last, skipped = self._last.get(message, (now - self.every, 0))
        if now - last < self.every:
            self._last[message] = (last, skipped + 1)
            return
        self._last[message] = (now, 0)
        if skipped:
            message += "; %d more like it in the last %g s were not logged"
            args = (*args, skipped, round(now - last))
        log.log(level, message, *args)


class _Protocol(asyncio.Protocol):
    """One TLS connection: requests framed by ``_http``, answered in order, on the event loop.

    An admission whose every image verdict is cached is answered right here
    (a fraction of a millisecond, no thread hand-off); one that needs a
    verification goes to the worker pool, and the connection reads nothing
    more until its answer is written, so pipelined answers stay in order.
    """

    def __init__(self, app: AdmissionServer) -> None:
        self.app = app
        self.loop = app.loop
        self.reader = _http.RequestReader(max_body=MAX_BODY)
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.busy = False
        """A verification for this connection's current request is running in the pool."""
        self.blocked = False
        """The client is not reading its answers (the write buffer is full)."""
        self.deadline: float | None = None
        self.due = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.authenticated = app.tls.client_ca is None
        """May ask for admissions: no --client-ca, or it showed a certificate that CA signed."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if peer else "?"
        if not self.authenticated:  # the handshake verified any certificate it was shown
            self.authenticated = bool(transport.get_extra_info("peercert"))
        # With --client-ca, connections without the API server's certificate (probes, or
        # anyone else) share a small pool of their own: they cannot take the API server's.
        # A full one closes its oldest rather than turn the newcomer away: otherwise any pod
        # holding 64 idle connections keeps the kubelet's probes out, and a failed liveness
        # probe restarts the webhook (failurePolicy Fail: no pod is admitted meanwhile).
        if not self.authenticated:
            # Nothing of theirs gets past 403: no megabytes are buffered for it.
            self.reader.max_body = STRANGER_BODY
            strangers = self.app.strangers
            if len(strangers) >= MAX_UNAUTHENTICATED:
                oldest = next(iter(strangers))
                del strangers[oldest]
                if oldest.transport is not None:
                    oldest.transport.abort()
                self.app.quiet.log(
                    logging.INFO,
                    "closed the oldest of %d connections without a client certificate",
                    MAX_UNAUTHENTICATED,
                )
            strangers[self] = None
        elif len(self.app.connections) >= MAX_CONNECTIONS:
            self.app.quiet.log(
                logging.WARNING, "refused a connection from %s: %d open", self.peer, MAX_CONNECTIONS
            )
            transport.abort()
            return
        else:
            self.app.connections.add(self)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self.app.connections.discard(self)
        self.app.strangers.pop(self, None)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        self._serve()

    def eof_received(self) -> bool | None:
        if not self.busy:
            try:
                self.reader.eof()
            except _http.HTTPError as e:
                self._refuse(e)
        return None  # close; TLS cannot half-close anyway

    def pause_writing(self) -> None:
        self.blocked = True
        self._pause()

    def resume_writing(self) -> None:
        self.blocked = False
        if not self.busy:
            self._resume()

    def _serve(self) -> None:
        """Answer every whole request that has arrived, in order, until one must wait."""
        transport = self.transport
        assert transport is not None
        while not (self.busy or self.blocked or transport.is_closing()):
            try:
                request = self.reader.next()
            except _http.HTTPError as e:
                self._refuse(e)
                return
            if request is None:
                if self.reader.continue_needed:
                    self.reader.continue_needed = False
                    transport.write(_http.CONTINUE)
                self._arm()
                return
            self.deadline = None
            if request.path in ("/validate", "/mutate") and not self.authenticated:
                # Without this anyone who reaches the port could probe pull secrets and
                # registries through the webhook; nothing about them is said here.
                self.app.quiet.log(
                    logging.INFO, "refused an admission from %s: no client certificate", self.peer
                )
                self._respond(False, 403, _NO_CLIENT_CERT, _TEXT)
                return
            if request.method == "POST" and request.path in ("/validate", "/mutate"):
                endpoint = request.path[1:]
                answered = self.app.answer_cached(endpoint, request.body)
                if answered is None:  # a verification is needed: off the loop
                    self.busy = True
                    self._pause()
                    work = self.loop.run_in_executor(
                        self.app.pool, self.app.answer, endpoint, request.body
                    )
                    work.add_done_callback(functools.partial(self._verified, request))
                    return
                status, body, content_type = answered[0], answered[1], _JSON
            else:
                status, body, content_type = self.app.route(request)
            self._respond(request.keep_alive, status, body, content_type)

    def _verified(
        self, request: _http.HTTPRequest, done: asyncio.Future[tuple[int, bytes] | None]
    ) -> None:
        self.busy = False
        if self.transport is None or self.transport.is_closing():
            return
        try:
            answered = done.result()
            assert answered is not None  # only cached_only answers may be None
            status, body = answered
        except Exception:  # answer() turns every failure into a verdict; this is a bug
            log.exception("answering a request from %s failed", self.peer)
            status, body = 500, b'{"error": "internal error"}'
        self._respond(request.keep_alive, status, body, _JSON)
        self._resume()

    def _respond(self, keep_alive: bool, status: int, body: bytes, content_type: str) -> None:
        assert self.transport is not None
        self.transport.write(_http.response(status, body, content_type, close=not keep_alive))
        if not keep_alive:
            self.transport.close()

    def _refuse(self, error: _http.HTTPError) -> None:
        assert self.transport is not None
        self.app.quiet.log(
            logging.INFO, "refused a request from %s: %d %s", self.peer, error.status, error.message
        )
        answer = (error.message + "\n").encode()
        self.transport.write(_http.response(error.status, answer, _TEXT, close=True))
        self.transport.close()

    def _pause(self) -> None:
        assert self.transport is not None
        if not self.transport.is_closing():
            self.transport.pause_reading()

    def _resume(self) -> None:
        assert self.transport is not None
        if not self.transport.is_closing():
            self.transport.resume_reading()
            self._serve()

    def _arm(self) -> None:
        """When this connection times out: the request's deadline, or idleness from now."""
        now = self.loop.time()
        if self.reader.started:
            if self.deadline is None:
                self.deadline = now + _http.REQUEST_TIMEOUT
            self.due = self.deadline
        else:
            self.deadline = None
            self.due = now + _http.IDLE_TIMEOUT
        # One timer per connection: moved later only when it fires, earlier at once.
        if self.timer is not None and self.timer.when() > self.due:
            self.timer.cancel()
            self.timer = None
        if self.timer is None:
            self.timer = self.loop.call_at(self.due, self._expire)

    def _expire(self) -> None:
        self.timer = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self.busy or self.loop.time() < self.due:  # a verification bounds itself (8 s)
            self.timer = self.loop.call_at(max(self.due, self.loop.time() + 1.0), self._expire)
            return
        if self.reader.started:
            self._refuse(_http.timed_out())
        else:
            transport.close()  # idle between requests (or a client that stopped reading)


class AdmissionServer:
    """The webhook on ``addr`` (``HOST:PORT``; port 0 picks one); ``start()``, then ``close()``."""

    def __init__(
        self, admitter: Admitter, tls: TLSFiles, addr: str, metrics: AdmissionMetrics
    ) -> None:
        self.admitter, self.tls, self.metrics = admitter, tls, metrics
        host, port = parse_addr(addr)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            self._socket = socket.create_server((host, port), family=family, backlog=128)
        except OSError as e:
            raise UsageError(f"cannot listen on {addr}: {e.strerror or e}") from None
        self.loop = asyncio.new_event_loop()
        self.pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="admission")
        """Where admissions that need a verification wait for it, off the event loop."""
        self.connections: set[_Protocol] = set()
        self.strangers: dict[_Protocol, None] = {}
        """With --client-ca: open connections that showed no client certificate, oldest first."""
        self.quiet = _Quiet()
        """Refusals' log lines, at most one of each kind per interval."""
        self._listener: asyncio.Task[None] | None = None
        self.handshakes: dict[asyncio.Task[None], None] = {}
        """Connections in their TLS handshake, oldest first."""
        self._context: ssl.SSLContext | None = None
        self._failure: Exception | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="admission", daemon=True)

    @property
    def port(self) -> int:
        return int(self._socket.getsockname()[1])

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self._context = self.tls.server_context()
            self._socket.setblocking(False)
            self._listener = self.loop.create_task(self._accept())
        except Exception as e:  # e.g. the TLS pair went away since __init__: start() says so
            self._failure = e
            return
        finally:
            self._started.set()
        self.loop.run_forever()

    async def _accept(self) -> None:
        """Accept connections and start their handshakes, at most ``MAX_HANDSHAKES`` at once.

        ``create_server`` would start any number: a connection is in no pool until its
        handshake ends, so any pod could hold sockets and memory by the thousand for
        ``HANDSHAKE_TIMEOUT``. The oldest handshake is dropped for a new one, so a client
        that completes its handshake promptly always gets in.
        """
        while True:
            try:
                conn, _ = await self.loop.sock_accept(self._socket)
            except OSError as e:  # out of descriptors, say: try again shortly
                self.quiet.log(logging.ERROR, "cannot accept a connection: %s", e.strerror or e)
                await asyncio.sleep(0.1)
                continue
            if len(self.handshakes) >= MAX_HANDSHAKES:
                oldest = next(iter(self.handshakes))
                del self.handshakes[oldest]
                oldest.cancel()
                self.quiet.log(
                    logging.INFO, "dropped the oldest of %d TLS handshakes", MAX_HANDSHAKES
                )
            task = self.loop.create_task(self._handshake(conn))
            self.handshakes[task] = None
            task.add_done_callback(functools.partial(self._handshake_done, conn))

    def _handshake_done(self, conn: socket.socket, task: asyncio.Task[None]) -> None:
        self.handshakes.pop(task, None)
        if task.cancelled():  # dropped before it began: no transport owns the socket
            conn.close()

    async def _handshake(self, conn: socket.socket) -> None:
        # A failed or dropped handshake has nothing to answer; asyncio closes its socket.
        with contextlib.suppress(OSError, ssl.SSLError, TimeoutError, asyncio.CancelledError):
            await self.loop.connect_accepted_socket(
                lambda: _Protocol(self),
                conn,
                ssl=self._context,
                ssl_handshake_timeout=HANDSHAKE_TIMEOUT,
            )

    def start(self) -> AdmissionServer:
        self._thread.start()
        self._started.wait(30)
        if self._failure is not None:
            raise self._failure
        return self

    def close(self) -> None:
        """Stop listening, drop open connections, and stop the loop and the pool."""

        async def stop() -> None:
            tasks = [*([self._listener] if self._listener else []), *self.handshakes]
            for task in tasks:
                task.cancel()  # a handshake's transport aborts, its socket closes soon after
            for connection in [*self.connections, *self.strangers]:
                if connection.transport is not None:
                    connection.transport.abort()
            await asyncio.gather(*tasks, return_exceptions=True)
            for _ in range(2):  # the aborts' callbacks close the sockets
                await asyncio.sleep(0)
            self.loop.stop()

        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(lambda: self.loop.create_task(stop()))
            self._thread.join(timeout=5)
        self.pool.shutdown(wait=False, cancel_futures=True)
        if not self._thread.is_alive():
            self.loop.close()
        self._socket.close()

    def __enter__(self) -> AdmissionServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    draining = False
    """Set on shutdown: /readyz fails so the Service stops sending, while requests still answer."""

    def ready(self) -> tuple[bool, str]:
        """Ready once the policy is loaded and the TLS pair is valid (both checked at start)."""
        if self.draining:
            return False, "shutting down"
        try:
            self.admitter.policies.current()
            self.tls.context()
        except Exception as e:  # a readiness probe reports, it never raises
            return False, f"not ready: {e}"
        if datetime.now(UTC) >= self.tls.expires:
            return False, f"the TLS certificate expired at {self.tls.expires.isoformat()}"
        return True, "ready"

    def route(self, request: _http.HTTPRequest) -> tuple[int, bytes, str]:
        """Status, body and content type for any request but an admission (POST /validate,
        /mutate), which the connection answers itself: cached on the loop, else in the pool."""
        method, path = request.method, request.path
        if method == "POST":
            return 404, b"not found: use /validate or /mutate\n", _TEXT
        if method == "GET":
            if path == "/healthz":
                return 200, b"ok\n", _TEXT
            if path == "/readyz":
                ready, why = self.ready()
                return (200 if ready else 503), (why + "\n").encode(), _TEXT
            if path == "/metrics":
                return 200, self.metrics.exposition(), "text/plain; version=0.0.4"
            return 404, b"not found\n", _TEXT
        return 405, f"{method} is not served: POST /validate or /mutate\n".encode(), _TEXT

    def answer(self, endpoint: str, body: bytes) -> tuple[int, bytes]:
        """HTTP status and body for one POST; every failure past parsing still answers the uid."""
        answered = self._answer(endpoint, body, cached_only=False)
        assert answered is not None  # only a cached-only answer gives up
        return answered

    def answer_cached(self, endpoint: str, body: bytes) -> tuple[int, bytes] | None:
        """As ``answer`` if every image's verdict is cached; else None, without waiting.

        What the event loop asks; when it gets None it hands the request to a worker.
        """
        return self._answer(endpoint, body, cached_only=True)

    def _answer(self, endpoint: str, body: bytes, *, cached_only: bool) -> tuple[int, bytes] | None:
        started = time.perf_counter()
        try:
            request = parse(body)
        except ReviewError as e:
            self.metrics.observe(endpoint, "invalid", time.perf_counter() - started,
                                 dry_run=False, hits=0, misses=0)  # fmt: skip
            return 400, json.dumps({"error": e.message}).encode()
        mutating = endpoint == "mutate" and self.admitter.mutate
        try:
            if cached_only:
                verdict = self.admitter.review_cached(request, mutating=mutating)
            else:
                verdict = self.admitter.review(request, mutating=mutating)
            if verdict is None:
                return None
            review = response(
                request.uid,
                allowed=verdict.allowed,
                message=verdict.message,
                warnings=verdict.warnings,
                patch=verdict.patch,
            )
            outcome, hits, misses = verdict.outcome, verdict.hits, verdict.misses
        except Exception as e:  # fail closed (unless auditing), but answer with the uid
            log.exception("admission of %s failed", request.label)
            why = f"sealgate: could not decide on {request.label}: {e}"
            if self.admitter.mode is Mode.AUDIT:
                review = response(request.uid, allowed=True, warnings=[why + " (audit mode)"])
            else:
                review = response(request.uid, allowed=False, message=why + "; fails closed")
            outcome, hits, misses = "error", 0, 0
        self.metrics.observe(endpoint, outcome, time.perf_counter() - started,
                             dry_run=request.dry_run, hits=hits, misses=misses)  # fmt: skip
        return 200, json.dumps(review).encode()
