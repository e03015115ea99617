"""The engine wrapper without a daemon: event parsing, error translation, stream handling."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from gate.engine import Engine, EngineEvent, describe_host, parse_event
from gate.errors import EngineError

START = {
    "status": "start",
    "id": "c0ffee",
    "from": "busybox:1",
    "Type": "container",
    "Action": "start",
    "Actor": {"ID": "c0ffee", "Attributes": {"image": "busybox:1", "name": "web"}},
    "scope": "local",
    "time": 1714564800,
    "timeNano": 1714564800123456789,
}


def test_parse_event() -> None:
    assert parse_event(START) == EngineEvent(
        "container", "start", "c0ffee", 1714564800123456789, {"image": "busybox:1", "name": "web"}
    )


def test_parse_event_without_nanoseconds_and_with_arguments() -> None:
    raw = {**START, "Action": "exec_start: sh -c true", "Actor": {"ID": "x"}}
    del raw["timeNano"]
    event = parse_event(raw)
    assert event is not None
    assert (event.action, event.time_nano, dict(event.attributes)) == (
        "exec_start",
        1714564800 * 10**9,
        {},
    )


@pytest.mark.parametrize(
    "raw",
    [
        None,
        [],
        "start",
        {"Type": "container", "Action": "start"},
        {**START, "Actor": {"Attributes": {}}},
        {**START, "Actor": {"ID": ""}},
        {**START, "Actor": {"ID": "x", "Attributes": ["a"]}},
        {**START, "Type": 3},
        {k: v for k, v in START.items() if k not in ("time", "timeNano")},
    ],
)
def test_malformed_events_parse_to_none(raw: Any) -> None:
    assert parse_event(raw) is None


def test_describe_host_hides_passwords() -> None:
    assert (
        describe_host("tcp://admin:hunter2@docker.example.test:2376")
        == "tcp://admin:***@docker.example.test:2376"
    )
    assert describe_host("unix:///var/run/docker.sock") == "unix:///var/run/docker.sock"


def test_unreachable_engine_is_an_engine_error() -> None:
    engine = Engine("unix:///nonexistent.sock", timeout=2)
    with pytest.raises(EngineError, match=r"cannot reach the Docker engine at unix:///nonexistent"):
        engine.ping()
    with pytest.raises(EngineError, match="cannot reach"):
        engine.containers()


def test_docker_host_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    engine = Engine(timeout=2)
    assert engine.where == "unix:///nonexistent/docker.sock"
    with pytest.raises(EngineError, match=r"unix:///nonexistent/docker\.sock"):
        engine.container("anything")


# --- the event stream, against a fake low-level client --------------------------------------


class FakeStream:
    """Chunks as docker-py yields them; blocks after the last one until closed, if told to."""

    def __init__(self, chunks: list[bytes], block: bool = False) -> None:
        self.chunks = chunks
        self.block = block
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks
        if self.block:
            self.closed.wait(10)

    def close(self) -> None:
        self.closed.set()


class FakeAPI:
    def __init__(self, stream: FakeStream) -> None:
        self.stream = stream
        self.params: dict[str, Any] = {}

    def events(self, **params: Any) -> FakeStream:
        self.params = params
        return self.stream


def engine_with(stream: FakeStream) -> tuple[Engine, FakeAPI]:
    engine = Engine("unix:///fake.sock")
    api = FakeAPI(stream)
    engine._client = api
    return engine, api


def line(raw: Any) -> bytes:
    return json.dumps(raw).encode() + b"\n"


def test_events_split_across_chunks_filtered_and_malformed_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop = threading.Event()
    pull = {**START, "Type": "image", "Action": "pull", "Actor": {"ID": "busybox:1"}}
    die = {**START, "Action": "die"}
    whole = line(START) + b"{not json\n" + line(die) + line({"Type": "x"}) + line(pull)
    stream = FakeStream([whole[:10], whole[10:77], whole[77:]], block=True)
    engine, api = engine_with(stream)
    got = []
    with caplog.at_level(logging.WARNING, logger="gate.engine"):
        for event in engine.events(since=1714564800.25, stop=stop):
            got.append((event.type, event.action, event.id))
            if len(got) == 2:
                stop.set()
    assert got == [("container", "start", "c0ffee"), ("image", "pull", "busybox:1")]
    assert api.params["since"] == "1714564800.250000000"
    assert set(api.params["filters"]["type"]) == {"container", "image"}
    assert caplog.text.count("skipped a malformed event") == 2


def test_stop_closes_a_blocked_stream_promptly() -> None:
    stop = threading.Event()
    stream = FakeStream([line(START)], block=True)
    engine, _ = engine_with(stream)
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    assert [e.action for e in engine.events(stop=stop)] == ["start"]
    assert time.monotonic() - started < 1.5
    assert stream.closed.is_set()


def test_stream_ending_by_itself_is_an_engine_error() -> None:
    engine, _ = engine_with(FakeStream([line(START)]))
    seen = []
    with pytest.raises(EngineError, match="closed the event stream"):
        for event in engine.events(stop=threading.Event()):
            seen.append(event)
    assert len(seen) == 1
