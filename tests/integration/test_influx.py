"""Points written to a real InfluxDB 1.x and read back: escaping, dashboard queries, outages."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from gate.notify import Event, InfluxSink, Spool, line_protocol
from gate.result import Status
from tests.integration.services import Influx, start_influx

pytestmark = pytest.mark.integration

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "sealgate.json"
BASE = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)

NASTY = [
    # (host, container name, image, reason)
    ("web 01", "my app", "registry.local:5000/a/b:1", "plain"),
    ("web,02", "a,b=c d", "ghcr.io/acme/x@sha256:" + "0" * 64, 'quote " and back\\slash'),
    ("h=3", 'say "hi"', "img", "ends with a backslash\\"),
    ("h4", r"back\slash", "img", "comma, equals= space"),
    ("h5", r"x\ y", "img", "two\nlines"),
    ("h6", "ends in\\", "img", ""),
    ("h7", "ünïcødé ✓", "img", "ünïcødé ✓"),
]


@pytest.fixture(scope="module")
def influx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influx]:
    server = start_influx(tmp_path_factory.mktemp("influxd"))
    yield server
    server.stop()


@pytest.fixture
def database(influx: Influx, request: pytest.FixtureRequest) -> str:
    name = re.sub(r"\W", "_", request.node.name)[:60]
    influx.create_database(name)
    return name


def nasty_events() -> list[Event]:
    statuses = list(Status)
    return [
        Event.create(
            host=host,
            container_id=f"{n:02d}" * 32,
            container_name=name,
            image=image,
            digest="sha256:" + f"{n:x}" * 64,
            status=statuses[n % len(statuses)],
            reason=reason,
            level=n if n % 2 else None,
            latency_ms=12.5 * (n + 1),
            time=BASE + timedelta(milliseconds=n * 1001),
            sequence=n,
        )
        for n, (host, name, image, reason) in enumerate(NASTY)
    ]


def expected_row(event: Event) -> dict[str, Any]:
    """What InfluxDB must hand back: newlines become spaces, a trailing backslash is dropped."""

    def tag(value: str | None) -> str | None:
        return (value or "").replace("\n", " ").rstrip("\\") or None

    return {
        "time": int((event.time - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1000),
        "host": tag(event.host),
        "container_name": tag(event.container_name),
        "container_id": tag(event.container_id),
        "image": tag(event.image),
        "status": event.status.value,
        "level": None if event.level is None else str(event.level),
        "failed": int(event.failed),
        "latency_ms": event.latency_ms,
        "digest": event.digest,
        "reason": event.reason.replace("\n", " ") or None,
    }


def test_nasty_names_round_trip_exactly(influx: Influx, database: str) -> None:
    events = nasty_events()
    InfluxSink(f"influx://127.0.0.1:{influx.port}/{database}").send(events)
    rows = influx.rows("SELECT * FROM sealgate_verification", database)
    assert sorted(rows, key=lambda r: r["time"]) == [expected_row(e) for e in events]
    # The field types are what the dashboard's sum()/mean() need.
    keys = influx.query("SHOW FIELD KEYS FROM sealgate_verification", database)
    types = dict(keys["results"][0]["series"][0]["values"])
    assert types == {
        "failed": "integer",
        "latency_ms": "float",
        "digest": "string",
        "reason": "string",
    }


def test_tag_values_are_indexed_as_written(influx: Influx, database: str) -> None:
    events = nasty_events()
    InfluxSink(f"influx://127.0.0.1:{influx.port}/{database}").send(events)
    found = influx.rows(
        'SHOW TAG VALUES FROM sealgate_verification WITH KEY = "container_name"', database
    )
    assert sorted(r["value"] for r in found) == sorted(
        expected_row(e)["container_name"] for e in events
    )
    # A GROUP BY on a nasty tag value works as well as a WHERE on it.
    where = influx.rows(
        "SELECT count(failed) FROM sealgate_verification WHERE container_name = 'a,b=c d'",
        database,
    )
    assert where[0]["count"] == 1


def grafana_queries() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text())
    found = [(p["title"], t["query"]) for p in board["panels"] for t in p["targets"]]
    found += [(f"variable {v['name']}", v["query"]) for v in board["templating"]["list"]]
    return found


def as_grafana_would(query: str, start: datetime, end: datetime) -> str:
    """Substitute Grafana's macros the way its InfluxQL data source does."""
    start_ms = int(start.timestamp() * 1000)
    end_ms = int(end.timestamp() * 1000)
    return (
        query.replace("$timeFilter", f"time >= {start_ms}ms and time <= {end_ms}ms")
        .replace("$__interval", "1s")
        .replace("/^$host$/", "/^.*$/")  # the "All" value (allValue .*)
    )


@pytest.mark.parametrize(
    ("title", "query"), [pytest.param(t, q, id=t) for t, q in grafana_queries()]
)
def test_every_dashboard_query_returns_the_written_points(
    influx: Influx, database: str, title: str, query: str
) -> None:
    events = nasty_events()
    InfluxSink(f"influx://127.0.0.1:{influx.port}/{database}").send(events)
    text = as_grafana_would(query, BASE - timedelta(seconds=1), BASE + timedelta(seconds=10))
    assert not re.search(r"\$\w", text), f"unsubstituted macro in {title}: {text}"
    rows = influx.rows(text, database)
    assert rows, f"{title} returned nothing"
    if title == "Latest status per container":
        assert len(rows) == len(events)
        by_name = {r["container_name"]: r for r in rows}
        for event in events:
            row = by_name[expected_row(event)["container_name"]]
            assert row["failed"] == int(event.failed) and row["digest"] == event.digest
            assert (
                row["status"] == event.status.value and row["host"] == expected_row(event)["host"]
            )
    elif title == "Failed verifications":
        assert sum(r["sum"] or 0 for r in rows) == sum(e.failed for e in events)
    elif title == "Verification latency":
        means = [r["mean"] for r in rows if r["mean"] is not None]
        assert sorted(means) == sorted(e.latency_ms or 0.0 for e in events)
    elif title == "Verifications by status":
        assert sum(r["count"] for r in rows) == len(events)
        assert {r["status"] for r in rows if r["count"]} == {e.status.value for e in events}
    elif title == "variable host":
        assert sorted(r["value"] for r in rows) == sorted(expected_row(e)["host"] for e in events)


def test_unknown_database_is_logged_once_and_spooled_until_it_exists(
    influx: Influx, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path, InfluxSink(f"influx://127.0.0.1:{influx.port}/not_yet"))
    events = nasty_events()
    with caplog.at_level(logging.DEBUG, logger="gate.notify._spool"):
        for event in events:
            spool.put([event])
            assert spool.flush(force=True) == 0
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1
    assert 'database not found: "not_yet"' in errors[0].getMessage()
    influx.create_database("not_yet")
    assert spool.flush(force=True) == len(events)
    assert len(influx.rows("SELECT * FROM sealgate_verification", "not_yet")) == len(events)


def test_influxd_restart_mid_run_loses_nothing(
    influx: Influx, database: str, tmp_path: Path
) -> None:
    spool = Spool(tmp_path, InfluxSink(f"influx://127.0.0.1:{influx.port}/{database}"))
    events = nasty_events()
    spool.put(events[:3])
    assert spool.flush() == 3
    influx.stop()
    try:
        spool.put(events[3:])
        assert spool.flush(force=True) == 0
        assert spool.pending() == len(events) - 3
    finally:
        influx.start()
    assert spool.flush(force=True) == len(events) - 3
    spool.put(events)  # seen again after the outage: not written twice
    assert spool.flush(force=True) == 0
    rows = influx.rows("SELECT * FROM sealgate_verification", database)
    assert sorted(rows, key=lambda r: r["time"]) == [expected_row(e) for e in events]


def test_line_protocol_is_what_influxd_accepts_one_by_one(influx: Influx, database: str) -> None:
    # Each line on its own, so a rejected one names itself.
    for event in nasty_events():
        response = requests.post(
            f"{influx.url}/write",
            params={"db": database, "precision": "ms"},
            data=line_protocol(event).encode(),
            timeout=10,
        )
        assert response.status_code == 204, (line_protocol(event), response.text)
