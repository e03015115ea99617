"""Prometheus metrics, read back with the official text-format parser."""

from __future__ import annotations

import socket

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from gate.errors import UsageError
from gate.notify import Metrics, SinkError
from gate.notify._prometheus import parse_addr
from gate.result import Status
from tests.unit.test_notify import make_event


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample as {(name, sorted labels): value}, via prometheus_client.parser."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def feed(metrics: Metrics) -> None:
    metrics.observe(make_event(container_id="a" * 64, status=Status.TRUSTED, latency_ms=20))
    metrics.observe(make_event(container_id="b" * 64, status=Status.UNTRUSTED, latency_ms=300))
    metrics.observe(make_event(container_id="c" * 64, status=Status.UNKNOWN, latency_ms=None))
    metrics.observe(make_event(container_id="b" * 64, status=Status.UNTRUSTED, action="stop"))


def test_exposition_parses_and_counts() -> None:
    metrics = Metrics()
    feed(metrics)
    metrics.sweep_done(1714564800.5)
    found = samples(metrics.exposition().decode())
    assert found[("sealgate_verifications_total", (("status", "TRUSTED"),))] == 1
    assert found[("sealgate_verifications_total", (("status", "UNTRUSTED"),))] == 2
    assert found[("sealgate_verifications_total", (("status", "ERROR"),))] == 0  # exists at 0
    assert found[("sealgate_verification_seconds_count", ())] == 3
    assert found[("sealgate_verification_seconds_sum", ())] == pytest.approx(
        0.3615
    )  # 20 + 300 + 41.5 ms
    assert found[("sealgate_verification_seconds_bucket", (("le", "0.025"),))] == 1
    assert found[("sealgate_verification_seconds_bucket", (("le", "0.5"),))] == 3
    assert found[("sealgate_last_sweep_timestamp_seconds", ())] == 1714564800.5
    assert found[("sealgate_containers", (("status", "UNTRUSTED"),))] == 1
    assert found[("sealgate_containers", (("status", "UNKNOWN"),))] == 1
    assert found[("sealgate_enforcement_actions_total", (("action", "stop"),))] == 1


def test_containers_gauge_follows_the_latest_status_and_prunes() -> None:
    metrics = Metrics()
    feed(metrics)
    metrics.observe(make_event(container_id="b" * 64, status=Status.TRUSTED))
    metrics.sweep_done(1.0, running={"a" * 64, "b" * 64})
    metrics.forget("a" * 64)
    found = samples(metrics.exposition().decode())
    assert found[("sealgate_containers", (("status", "TRUSTED"),))] == 1
    assert found[("sealgate_containers", (("status", "UNKNOWN"),))] == 0
    assert found[("sealgate_containers", (("status", "UNTRUSTED"),))] == 0


def test_each_metrics_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.observe(make_event(status=Status.ERROR))
    found = samples(second.exposition().decode())
    assert found[("sealgate_verifications_total", (("status", "ERROR"),))] == 0
    assert not any(name.startswith("process_") for name, _ in found)


def test_serve_and_close() -> None:
    metrics = Metrics()
    feed(metrics)
    with metrics.serve("127.0.0.1:0") as server:
        response = requests.get(server.url, timeout=5)
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        assert samples(response.text) == samples(metrics.exposition().decode())
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url, timeout=2)


def test_serve_on_a_taken_port_is_a_sink_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SinkError, match=f"cannot serve metrics on 127.0.0.1:{port}"):
            Metrics().serve(f"127.0.0.1:{port}")


@pytest.mark.parametrize(
    ("addr", "parsed"),
    [
        ("127.0.0.1:9105", ("127.0.0.1", 9105)),
        ("[::1]:9105", ("::1", 9105)),
        (":9105", ("0.0.0.0", 9105)),
    ],
)
def test_parse_addr(addr: str, parsed: tuple[str, int]) -> None:
    assert parse_addr(addr) == parsed


@pytest.mark.parametrize("addr", ["9105", "localhost", "127.0.0.1:http", "127.0.0.1:70000"])
def test_bad_addr(addr: str) -> None:
    with pytest.raises(UsageError, match="is not a metrics address"):
        parse_addr(addr)
