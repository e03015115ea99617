"""HTTPS for the API server: the standard library's threading HTTP server behind ``ssl``.

No web framework: the webhook answers five paths, and ``http.server`` with
``ssl`` is maintained with Python itself, handles keep-alive (the API server
reuses connections) and adds nothing to the image. Each connection's TLS
handshake runs in its own thread, so a slow client cannot stall accepting.
The certificate and key are read again when either file changes, as
cert-manager rotates them, without dropping a request.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import ssl
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography import x509

from gate.admission._admit import Admitter, Mode
from gate.admission._metrics import AdmissionMetrics
from gate.admission._review import MAX_BODY, ReviewError, parse, response
from gate.errors import UsageError
from gate.notify._prometheus import parse_addr

log = logging.getLogger(__name__)
IDLE_TIMEOUT = 60.0
"""Seconds a kept-alive connection may sit idle; the API server reconnects when it needs to."""


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


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    tls: TLSFiles
    app: AdmissionServer

    def finish_request(self, request: Any, client_address: Any) -> None:
        """TLS-wrap and handshake in the connection's own thread, then serve HTTP on it."""
        request.settimeout(IDLE_TIMEOUT)
        # Headers and body go out as separate TLS records; without NODELAY the second waits
        # for the client's delayed ACK (~40 ms on Linux), which would dwarf a cached answer.
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            wrapped = self.tls.context().wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            log.info("TLS handshake with %s failed: %s", client_address[0], e)
            return
        try:
            super().finish_request(wrapped, client_address)
        finally:
            with contextlib.suppress(OSError):
                wrapped.close()


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the API server reuses its connections
    server: _Server
    server_version = "sealgate-admission"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.client_address[0], *args)

    def _send(self, code: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        app = self.server.app
        if path == "/healthz":
            self._send(200, b"ok\n", "text/plain")
        elif path == "/readyz":
            ready, why = app.ready()
            self._send(200 if ready else 503, (why + "\n").encode(), "text/plain")
        elif path == "/metrics":
            self._send(200, app.metrics.exposition(), "text/plain; version=0.0.4")
        else:
            self._send(404, b"not found\n", "text/plain")

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        if path not in ("/validate", "/mutate"):
            self._send(404, b"not found: use /validate or /mutate\n", "text/plain")
            return
        length = self.headers.get("Content-Length", "")
        if not length.isdigit() or int(length) > MAX_BODY:
            self.close_connection = True
            self._send(413 if length.isdigit() else 411, b"a JSON body of at most 3 MiB\n")
            return
        body = self.rfile.read(int(length))
        code, answer = self.server.app.answer(path[1:], body)
        self._send(code, answer)


class AdmissionServer:
    """The webhook on ``addr`` (``HOST:PORT``; port 0 picks one); ``start()``, then ``close()``."""

    def __init__(
        self, admitter: Admitter, tls: TLSFiles, addr: str, metrics: AdmissionMetrics
    ) -> None:
        self.admitter, self.tls, self.metrics = admitter, tls, metrics
        host, port = parse_addr(addr)
        server = _Server6 if ":" in host else _Server
        try:
            self._http = server((host, port), _Handler)
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
