"""HTTPS for the API server: a thread per connection, ``ssl``, and the strict HTTP/1.1 of ``_http``.

No web framework: the webhook answers five paths to one client (the API
server), over kept-alive connections. ``http.server`` was used at first; its
``email``-based header parsing and two TLS records per answer were half the
CPU of a warm admission, so ``_http`` reads only what the API server sends and
refuses the rest. Each connection's TLS handshake runs in its own thread (at
most ``MAX_CONNECTIONS``), so a slow client cannot stall accepting.
The certificate and key are read again when either file changes, as
cert-manager rotates them, without dropping a request.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import socketserver
import ssl
import threading
import time
from datetime import UTC, datetime
from typing import Any

from cryptography import x509

from gate.admission._admit import Admitter, Mode
from gate.admission._http import Connection, HTTPError, HTTPRequest
from gate.admission._metrics import AdmissionMetrics
from gate.admission._review import MAX_BODY, ReviewError, parse, response
from gate.errors import UsageError
from gate.notify._prometheus import parse_addr

log = logging.getLogger(__name__)
HANDSHAKE_TIMEOUT = 10.0
"""Seconds a new connection has to complete its TLS handshake."""
MAX_CONNECTIONS = 512
"""Open connections at once (a thread each); the API server keeps a few per replica."""
_TEXT = "text/plain; charset=utf-8"
_JSON = "application/json"


class TLSFiles:
    """A certificate and key on disk, as a server SSLContext; reloaded when they change."""

    def __init__(self, cert: str, key: str, *, every: float = 1.0) -> None:
        self.cert, self.key, self.every = cert, key, every
        self.expires = datetime.max.replace(tzinfo=UTC)
        """When the served certificate stops being valid (the first in the file)."""
        self._lock = threading.Lock()
        self._stamp = self._stat()
        self._context = self._load()  # a bad pair at start is a usage error: exit 2
        self._checked = time.monotonic()

    def _stat(self) -> tuple[Any, ...]:
        stamps: list[Any] = []
        for path in (self.cert, self.key):
            try:
                st = os.stat(path)
                stamps.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                stamps.append(None)
        return tuple(stamps)

    def _load(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
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
        return context

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


class _Server(socketserver.ThreadingTCPServer):
    """One thread per connection: its TLS handshake, then its requests in order."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    tls: TLSFiles
    app: AdmissionServer

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, socketserver.BaseRequestHandler)
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Refuse connections beyond MAX_CONNECTIONS at once: each holds a thread."""
        if not self._slots.acquire(blocking=False):
            log.warning("refused a connection from %s: %d open", client_address[0],
                        MAX_CONNECTIONS)  # fmt: skip
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def finish_request(self, request: Any, client_address: Any) -> None:
        """TLS-wrap and handshake in the connection's own thread, then serve HTTP on it."""
        request.settimeout(HANDSHAKE_TIMEOUT)
        # A response is one write, but a client's small writes should not wait on Nagle either.
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            wrapped = self.tls.context().wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            log.info("TLS handshake with %s failed: %s", client_address[0], e)
            return
        try:
            self.app.serve_connection(Connection(wrapped, max_body=MAX_BODY), client_address[0])
        finally:
            with contextlib.suppress(OSError):
                wrapped.close()


class _Server6(_Server):
    address_family = socket.AF_INET6


class AdmissionServer:
    """The webhook on ``addr`` (``HOST:PORT``; port 0 picks one); ``start()``, then ``close()``."""

    def __init__(
        self, admitter: Admitter, tls: TLSFiles, addr: str, metrics: AdmissionMetrics
    ) -> None:
        self.admitter, self.tls, self.metrics = admitter, tls, metrics
        host, port = parse_addr(addr)
        server = _Server6 if ":" in host else _Server
        try:
            self._http = server((host, port))
        except OSError as e:
            raise UsageError(f"cannot listen on {addr}: {e.strerror or e}") from None
        self._http.tls, self._http.app = tls, self
        self._thread = threading.Thread(
            target=self._http.serve_forever, name="admission", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._http.server_address[1])

    def start(self) -> AdmissionServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=5)

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

    def serve_connection(self, connection: Connection, peer: str) -> None:
        """Answer requests on one connection until either side closes it or a request is refused."""
        while True:
            try:
                request = connection.next_request()
            except HTTPError as e:
                log.info("refused a request from %s: %d %s", peer, e.status, e.message)
                with contextlib.suppress(OSError):
                    connection.send(e.status, (e.message + "\n").encode(), _TEXT, close=True)
                return
            except OSError as e:  # reset, TLS alert, a client that stopped mid-write
                log.debug("connection from %s ended: %s", peer, e)
                return
            if request is None:
                return
            status, body, content_type = self.route(request)
            try:
                connection.send(status, body, content_type, close=not request.keep_alive)
            except OSError as e:
                log.debug("answering %s failed: %s", peer, e)
                return
            if not request.keep_alive:
                return

    def route(self, request: HTTPRequest) -> tuple[int, bytes, str]:
        """Status, body and content type for one request (every path the webhook serves)."""
        method, path = request.method, request.path
        if method == "POST":
            if path not in ("/validate", "/mutate"):
                return 404, b"not found: use /validate or /mutate\n", _TEXT
            status, body = self.answer(path[1:], request.body)
            return status, body, _JSON
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
        started = time.perf_counter()
        try:
            request = parse(body)
        except ReviewError as e:
            self.metrics.observe(endpoint, "invalid", time.perf_counter() - started,
                                 dry_run=False, hits=0, misses=0)  # fmt: skip
            return 400, json.dumps({"error": e.message}).encode()
        mutating = endpoint == "mutate" and self.admitter.mutate
        try:
            verdict = self.admitter.review(request, mutating=mutating)
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
