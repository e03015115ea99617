"""The spool: outages lose nothing, replay is in order and exactly once, across restarts."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from gate.notify import InfluxSink, SinkError, Spool, WebhookSink
from gate.notify._base import Event
from tests.servers.recorder import Recorder
from tests.unit.test_notify import make_event


@pytest.fixture
def server() -> Iterator[Recorder]:
    with Recorder() as recorder:
        yield recorder


def events(count: int, start: int = 0) -> list[Event]:
    return [make_event(sequence=n, container_name=f"c{n}") for n in range(start, start + count)]


def received_ids(server: Recorder) -> list[str]:
    return [r.header("X-Sealgate-Event-Id") or "" for r in server.requests if r.status < 300]


def test_sink_down_spools_and_replays_in_order_exactly_once(
    server: Recorder, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path, WebhookSink(server.url + "/hook", "k"))
    first = events(3)
    spool.put(first)
    assert spool.flush() == 3

    server.stop()
    outage = events(5, start=3)
    with caplog.at_level(logging.DEBUG, logger="gate.notify._spool"):
        for event in outage:
            spool.put([event])
            assert spool.flush(force=True) == 0  # no exception escapes
    assert spool.pending() == 5
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, "one log line per outage, not per retry"
    assert "connection refused" in warnings[0].getMessage()
    assert "/hook" not in caplog.text

    server.start()
    assert spool.flush() == 0, "backing off: not retried at once"
    assert spool.flush(force=True) == 5
    assert spool.pending() == 0
    assert received_ids(server) == [e.id for e in first + outage]
    assert "reachable again; delivered 5" in caplog.text

    spool.put(first + outage)  # seen again: already sent, never re-sent
    assert spool.pending() == 0
    assert spool.flush(force=True) == 0
    assert len(received_ids(server)) == 8


def test_partial_delivery_is_not_repeated(server: Recorder, tmp_path: Path) -> None:
    server.reply(503, path="/hook")
    server.reply(204, times=2, path="/hook")  # rules are tried newest first
    spool = Spool(tmp_path, WebhookSink(server.url + "/hook"))
    batch = events(4)
    spool.put(batch)
    assert spool.flush() == 2
    server.clear_rules()
    assert spool.flush(force=True) == 2
    assert received_ids(server) == [e.id for e in batch]


def test_restart_keeps_pending_and_remembers_sent(server: Recorder, tmp_path: Path) -> None:
    url = server.url + "/hook"
    spool = Spool(tmp_path, WebhookSink(url))
    sent = events(2)
    spool.put(sent)
    spool.flush()
    server.stop()
    waiting = events(3, start=2)
    spool.put(waiting)
    spool.flush()
    spool.close()

    server.start()
    again = Spool(tmp_path, WebhookSink(url))  # a new watchdog process, same directory
    assert again.pending() == 3
    again.put(sent + waiting)  # the restarted watchdog re-detects the same states
    assert again.pending() == 3
    assert again.flush() == 3
    assert received_ids(server) == [e.id for e in sent + waiting]
    again.close()


def test_sinks_sharing_a_directory_have_their_own_spools(server: Recorder, tmp_path: Path) -> None:
    a = Spool(tmp_path, WebhookSink(server.url + "/a"))
    b = Spool(tmp_path, WebhookSink(server.url + "/b"))
    assert a.path != b.path
    a.put(events(2))
    assert b.pending() == 0


def test_over_max_drops_the_oldest_with_a_count(
    server: Recorder, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server.stop()
    spool = Spool(tmp_path, WebhookSink(server.url + "/hook"), max_events=5)
    with caplog.at_level(logging.WARNING, logger="gate.notify._spool"):
        spool.put(events(8))
    assert "dropped the 3 oldest" in caplog.text
    server.start()
    assert spool.flush() == 5
    assert received_ids(server) == [e.id for e in events(5, start=3)]


def test_sent_ids_are_bounded(server: Recorder, tmp_path: Path) -> None:
    spool = Spool(tmp_path, WebhookSink(server.url + "/hook"), max_events=3)
    spool.put(events(6))
    spool.flush()
    spool.put(events(3, start=3))  # the 3 newest are remembered
    assert spool.pending() == 0
    spool.put(events(1))  # the oldest were forgotten (bounded memory): queued again
    assert spool.pending() == 1


def test_influx_4xx_is_logged_once_and_keeps_spooling(
    server: Recorder, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server.reply(404, {"error": 'database not found: "nope"'})
    host = server.url.removeprefix("http://")
    spool = Spool(tmp_path, InfluxSink(f"influx://u:pw-secret@{host}/nope"))
    with caplog.at_level(logging.DEBUG, logger="gate.notify._spool"):
        for n in range(4):
            spool.put(events(1, start=n))
            spool.flush(force=True)
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1 and errors[0].levelno == logging.ERROR
    message = errors[0].getMessage()
    assert 'database not found: "nope"' in message and "will not fix itself" in message
    assert "pw-secret" not in caplog.text
    assert spool.pending() == 4
    server.clear_rules()
    assert spool.flush(force=True) == 4
    points = [r.text() for r in server.requests if r.status == 204]
    assert len(points) == 1 and points[0].count("\n") == 4  # replayed in one batch


def test_corrupt_spool_file_is_a_sink_error(server: Recorder, tmp_path: Path) -> None:
    sink = WebhookSink(server.url + "/hook")
    Spool(tmp_path, sink).close()
    path = next(tmp_path.glob("*.sqlite3"))
    for extra in tmp_path.glob("*.sqlite3-*"):
        extra.unlink()
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(SinkError, match="cannot open the spool"):
        Spool(tmp_path, sink)
