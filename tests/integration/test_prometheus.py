"""A real Prometheus scrapes our /metrics and answers a query for the status counts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from gate.notify import Event, Metrics, MetricsServer
from gate.result import Status
from tests.integration.services import Prometheus, start_prometheus, wait_for

pytestmark = pytest.mark.integration

SCRAPE_WAIT = 30.0


def event(n: int, status: Status, latency_ms: float) -> Event:
    return Event.create(
        host="h1",
        container_id=f"{n:064x}",
        container_name=f"c{n}",
        image="busybox:1",
        digest="sha256:" + "a" * 64,
        status=status,
        latency_ms=latency_ms,
        sequence=n,
    )


@pytest.fixture
def served() -> Iterator[tuple[Metrics, MetricsServer]]:
    metrics = Metrics()
    for n, status in enumerate([Status.TRUSTED] * 3 + [Status.UNTRUSTED] * 2 + [Status.UNKNOWN]):
        metrics.observe(event(n, status, latency_ms=10.0 * (n + 1)))
    metrics.sweep_done(1714564800.0)
    server = metrics.serve("127.0.0.1:0")
    yield metrics, server
    server.close()


@pytest.fixture
def prometheus(tmp_path: Path, served: tuple[Metrics, MetricsServer]) -> Iterator[Prometheus]:
    _, server = served
    instance = start_prometheus(tmp_path / "prometheus", [f"127.0.0.1:{server.port}"])
    yield instance
    instance.stop()


def test_metrics_endpoint_parses_with_the_official_parser(
    served: tuple[Metrics, MetricsServer],
) -> None:
    _, server = served
    text = requests.get(server.url, timeout=5).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["sealgate_verifications"].type == "counter"
    assert families["sealgate_verification_seconds"].type == "histogram"
    assert families["sealgate_last_sweep_timestamp_seconds"].type == "gauge"
    assert families["sealgate_containers"].type == "gauge"
    counts = {
        s.labels["status"]: s.value
        for s in families["sealgate_verifications"].samples
        if s.name == "sealgate_verifications_total"
    }
    assert counts == {"TRUSTED": 3, "UNTRUSTED": 2, "UNKNOWN": 1, "UNSUPPORTED": 0, "ERROR": 0}


def test_prometheus_scrapes_and_answers_status_counts(
    prometheus: Prometheus, served: tuple[Metrics, MetricsServer]
) -> None:
    wait_for(prometheus.targets_up, SCRAPE_WAIT, "the first successful scrape of /metrics")
    result = wait_for(
        lambda: prometheus.query("sum by (status) (sealgate_verifications_total)"),
        SCRAPE_WAIT,
        "a query result for sealgate_verifications_total",
    )
    counts = {r["metric"]["status"]: float(r["value"][1]) for r in result}
    assert counts == {"TRUSTED": 3, "UNTRUSTED": 2, "UNKNOWN": 1, "UNSUPPORTED": 0, "ERROR": 0}

    metrics, _ = served
    metrics.observe(event(99, Status.ERROR, latency_ms=5.0))
    wait_for(
        lambda: prometheus.query('sealgate_verifications_total{status="ERROR"} == 1'),
        SCRAPE_WAIT,
        "the new ERROR count to be scraped",
    )
    containers = prometheus.query("sealgate_containers")
    assert {r["metric"]["status"]: float(r["value"][1]) for r in containers} == {
        "TRUSTED": 3,
        "UNTRUSTED": 2,
        "UNKNOWN": 1,
        "UNSUPPORTED": 0,
        "ERROR": 1,
    }
    [sweep] = prometheus.query("sealgate_last_sweep_timestamp_seconds")
    assert float(sweep["value"][1]) == 1714564800.0
    [p95] = prometheus.query(
        "histogram_quantile(0.95, sum by (le) (sealgate_verification_seconds_bucket))"
    )
    assert 0.025 < float(p95["value"][1]) <= 0.1
