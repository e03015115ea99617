"""The Prometheus ``/metrics`` endpoint, through the official ``prometheus_client``.

The exposition format has enough corners (escaping, ``_total``/``_created``,
histogram buckets, content negotiation) that the reference library is the
right tool (DESIGN.md: "reach for a well-kept library"). Everything lives in
our own ``CollectorRegistry``, so a test or a second watchdog in one process
never sees another's numbers, and the process's default collectors stay out.
"""

from __future__ import annotations

import socket
import threading
from collections import Counter as Tally
from collections.abc import Callable, Collection, Mapping
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    make_wsgi_app,
)
from prometheus_client.exposition import ThreadingWSGIServer

from gate.errors import UsageError
from gate.notify._base import Event, SinkError
from gate.result import Status

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Seconds; the watchdog's target is well under 1 s, so the resolution is below it."""


class Metrics:
    """Counters and gauges the watchdog feeds; call ``observe`` once per verification."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._verifications = Counter(
            "sealgate_verifications",
            "Container verifications, by resulting status.",
            ["status"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "sealgate_verification_seconds",
            "Time from container start (or sweep) to its verification result.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._last_sweep = Gauge(
            "sealgate_last_sweep_timestamp_seconds",
            "Unix time the last full sweep of running containers finished.",
            registry=self.registry,
        )
        self._containers = Gauge(
            "sealgate_containers",
            "Running containers, by their latest status.",
            ["status"],
            registry=self.registry,
        )
        self._actions = Counter(
            "sealgate_enforcement_actions",
            "Enforcement actions taken (stop, kill, pause).",
            ["action"],
            registry=self.registry,
        )
        self._faults = Gauge(
            "sealgate_watchdog_fault",
            "1 while the watchdog has a fault of its own (policy, state), else 0.",
            ["kind"],
            registry=self.registry,
        )
        for kind in ("policy", "state"):
            self._faults.labels(kind=kind).set(0)
        for status in Status:  # every series exists from the start, so rate() and sums work
            self._verifications.labels(status=status.value)
            self._containers.labels(status=status.value).set(0)
        self._state: dict[str, Status] = {}
        self._lock = threading.Lock()

    def observe(self, event: Event) -> None:
        """Count one verification and remember it as the container's current status."""
        self._verifications.labels(status=event.status.value).inc()
        if event.latency_ms is not None and event.latency_ms >= 0:
            self._latency.observe(event.latency_ms / 1000)
        if event.action:
            self._actions.labels(action=event.action).inc()
        if event.container_id:
            with self._lock:
                self._state[event.container_id] = event.status
                self._publish()

    def fault(self, kind: str, active: bool) -> None:
        """A fault of the watchdog's own began (``active``) or ended."""
        self._faults.labels(kind=kind).set(1 if active else 0)

    def forget(self, container_id: str) -> None:
        """The container is gone: it no longer counts in ``sealgate_containers``."""
        with self._lock:
            if self._state.pop(container_id, None) is not None:
                self._publish()

    def sweep_done(self, when: float, running: Collection[str] | None = None) -> None:
        """A sweep finished at ``when`` (Unix seconds); ``running`` prunes containers that ended."""
        self._last_sweep.set(when)
        if running is not None:
            with self._lock:
                for gone in set(self._state) - set(running):
                    del self._state[gone]
                self._publish()

    def _publish(self) -> None:
        counts = Tally(self._state.values())
        for status in Status:
            self._containers.labels(status=status.value).set(counts.get(status, 0))

    def exposition(self) -> bytes:
        """The text format, as ``/metrics`` serves it."""
        return bytes(generate_latest(self.registry))

    def serve(self, addr: str, pages: Mapping[str, Page] | None = None) -> MetricsServer:
        """Serve ``/metrics`` on ``HOST:PORT`` (``:9105`` means every address) in a daemon thread.

        ``pages`` adds read-only routes beside it (the watchdog's ``/`` and
        ``/status.json``). Raises ``UsageError`` for an address that does not
        parse, ``SinkError`` when it cannot be bound (in use, not ours).
        """
        host, port = parse_addr(addr)
        app = _routes(make_wsgi_app(self.registry), dict(pages or {}))

        class Server(ThreadingWSGIServer):
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

        try:
            server = make_server(host, port, app, Server, handler_class=_QuietHandler)
        except OSError as e:
            raise SinkError(f"cannot serve metrics on {addr}: {e.strerror or e}") from e
        thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
        thread.start()
        return MetricsServer(server, thread)


Page = Callable[[], tuple[str, bytes, Mapping[str, str]]]
"""A route's content: content type, body, extra headers (rendered on each request)."""

_SAFE_HEADERS = (
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
)


def _routes(metrics_app: Any, pages: dict[str, Page]) -> Any:
    """A WSGI app: ``pages`` by exact path (GET and HEAD only), anything else to ``/metrics``."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        page = pages.get(environ.get("PATH_INFO") or "/")
        if page is None:
            return list(metrics_app(environ, start_response))
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            start_response(
                "405 Method Not Allowed", [("Allow", "GET, HEAD"), ("Content-Length", "0")]
            )
            return [b""]
        content_type, body, extra = page()
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        start_response("200 OK", headers + list(_SAFE_HEADERS) + list(extra.items()))
        return [b"" if method == "HEAD" else body]

    return app


class _QuietHandler(WSGIRequestHandler):
    """No access log on stderr: a scrape every 15 s would bury the watchdog's own lines."""

    def log_message(self, format: str, *args: Any) -> None:
        return None


class MetricsServer:
    """A running ``/metrics`` server; ``close()`` (or leaving a ``with``) stops it."""

    def __init__(self, server: Any, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        host, port = server.server_address[:2]
        self.host: str = host
        self.port: int = port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def parse_addr(addr: str) -> tuple[str, int]:
    """``127.0.0.1:9105`` -> ``("127.0.0.1", 9105)``; ``:9105`` listens on every address."""
    host, sep, port_text = addr.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise UsageError(f"{addr!r} is not a metrics address: use HOST:PORT, e.g. 127.0.0.1:9105")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port_text)
