"""Prometheus metrics of the webhook: admissions by verdict, latency, and the cache's hit ratio.

Kept in the webhook's own ``CollectorRegistry`` (as the watchdog does), so two
servers in one process, e.g. in tests, never mix their numbers.
"""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from gate.notify import MetricsServer
from gate.notify._base import SinkError
from gate.notify._prometheus import parse_addr

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Seconds; a warm answer is a millisecond or two, the API server gives up at 10 s."""


class AdmissionMetrics:
    """What one webhook process has answered."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._admissions = Counter(
            "sealgate_admissions",
            "Admission requests answered, by endpoint and verdict "
            "(allowed, denied, audited, skipped, invalid, error).",
            ["endpoint", "verdict", "dry_run"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "sealgate_admission_seconds",
            "Time to answer one admission request.",
            ["endpoint"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self._lookups = Counter(
            "sealgate_admission_cache_lookups", "Image verdicts looked up.", registry=self.registry
        )
        self._hits = Counter(
            "sealgate_admission_cache_hits",
            "Image verdicts answered from the cache.",
            registry=self.registry,
        )
        self._ratio = Gauge(
            "sealgate_admission_cache_hit_ratio",
            "Cache hits over lookups since the process started.",
            registry=self.registry,
        )
        self._hit_count = 0
        self._lookup_count = 0
        self._lock = threading.Lock()

    def observe(
        self, endpoint: str, verdict: str, seconds: float, *, dry_run: bool, hits: int, misses: int
    ) -> None:
        self._admissions.labels(endpoint, verdict, "true" if dry_run else "false").inc()
        self._latency.labels(endpoint).observe(seconds)
        if hits or misses:
            self._hits.inc(hits)
            self._lookups.inc(hits + misses)
            with self._lock:  # handler threads observe at once
                self._hit_count += hits
                self._lookup_count += hits + misses
                self._ratio.set(self._hit_count / self._lookup_count)

    def exposition(self) -> bytes:
        return bytes(generate_latest(self.registry))

    def serve(self, addr: str) -> MetricsServer:
        """Plain-HTTP ``/metrics`` on ``addr``, for scrapers that do not trust the webhook's CA."""
        from prometheus_client.exposition import start_http_server

        host, port = parse_addr(addr)
        try:
            server, thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as e:
            raise SinkError(f"cannot serve metrics on {addr}: {e.strerror or e}") from e
        return MetricsServer(server, thread)
