"""InfluxDB line protocol (escaping per FORMATS.md §10) and the v1/v2 write contracts."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest

from gate.errors import UsageError
from gate.notify import InfluxSink, SinkError, line_protocol
from gate.notify._influx import escape_key, escape_measurement, quote_string, timestamp_ms
from gate.result import Status
from tests.servers.recorder import Recorder
from tests.unit.test_notify import make_event

WHEN = datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)
WHEN_MS = 1714564800123


@pytest.fixture
def server() -> Iterator[Recorder]:
    with Recorder() as recorder:
        yield recorder


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("plain", "plain"),
        ("with space", r"with\ space"),
        ("a,b", r"a\,b"),
        ("k=v", r"k\=v"),
        ('say "hi"', r'say\ "hi"'),  # quotes are literal in keys and tag values
        (r"back\slash", r"back\slash"),  # so is a backslash (nothing else is escaped)
        (r"x\ y", r"x\\ y"),  # backslash then space: only the space is escaped
        ("two\nlines", r"two\ lines"),
        ("ends in\\", r"ends\ in"),  # a trailing backslash cannot be written: dropped
        ("=, ", r"\=\,\ "),
    ],
)
def test_escape_key_and_tag_value(raw: str, escaped: str) -> None:
    assert escape_key(raw) == escaped


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [("m", "m"), ("my measurement", r"my\ measurement"), ("a,b", r"a\,b"), ("k=v", "k=v")],
)
def test_escape_measurement(raw: str, escaped: str) -> None:
    assert escape_measurement(raw) == escaped


@pytest.mark.parametrize(
    ("raw", "quoted"),
    [
        ("plain", '"plain"'),
        ('say "hi"', r'"say \"hi\""'),
        ("back\\slash", r'"back\\slash"'),
        ("ends\\", r'"ends\\"'),
        ("a, b=c", '"a, b=c"'),  # commas, equals, spaces are fine inside quotes
        ("line\nbreak", '"line break"'),
    ],
)
def test_quote_string_field(raw: str, quoted: str) -> None:
    assert quote_string(raw) == quoted


def test_line_protocol_of_a_full_event() -> None:
    event = make_event(
        container_name="my app,v=2",
        image="registry.local:5000/team/app:1.0",
        reason='signature "sig" by key\\1 is invalid',
        time=WHEN,
    )
    assert line_protocol(event) == (
        "sealgate_verification"
        f",container_id={event.container_id}"
        r",container_name=my\ app\,v\=2"
        ",host=web-01"
        ",image=registry.local:5000/team/app:1.0"
        ",level=2"
        ",status=UNTRUSTED"
        " failed=1i,latency_ms=41.5"
        f',digest="{event.digest}"'
        r',reason="signature \"sig\" by key\\1 is invalid"'
        f" {WHEN_MS}"
    )


def test_line_protocol_omits_empty_tags_and_unknown_fields() -> None:
    event = make_event(
        container_id=None,
        container_name=None,
        level=None,
        latency_ms=None,
        digest=None,
        reason="",
        status=Status.TRUSTED,
        time=WHEN,
    )
    assert line_protocol(event) == (
        "sealgate_verification,host=web-01,image=ghcr.io/acme/payments:1.4,status=TRUSTED"
        f" failed=0i {WHEN_MS}"
    )


def test_line_protocol_action_and_nan_latency() -> None:
    line = line_protocol(make_event(action="kill", latency_ms=float("nan"), time=WHEN))
    assert ',action="kill"' in line and "latency_ms" not in line


def test_timestamp_is_exact_milliseconds_in_any_zone() -> None:
    assert timestamp_ms(WHEN) == WHEN_MS
    assert timestamp_ms(WHEN.astimezone(timezone(timedelta(hours=-7)))) == WHEN_MS
    assert timestamp_ms(WHEN.replace(tzinfo=None)) == WHEN_MS  # naive is UTC
    assert timestamp_ms(datetime(2024, 1, 1, 0, 0, 0, 999999, tzinfo=UTC)) % 1000 == 999


# --- the write contracts -------------------------------------------------------------------


def test_v2_write_contract(server: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEALGATE_INFLUX_TOKEN", "tok-123")
    host = server.url.removeprefix("http://")
    sink = InfluxSink(f"influx2://{host}?org=acme&bucket=watchdog")
    events = [make_event(sequence=n, time=WHEN) for n in range(3)]
    sink.send(events)
    [request] = server.wait_for(1)
    assert request.method == "POST" and request.path == "/api/v2/write"
    assert request.query == {"org": ["acme"], "bucket": ["watchdog"], "precision": ["ms"]}
    assert request.header("Authorization") == "Token tok-123"
    assert request.header("Content-Type") == "text/plain; charset=utf-8"
    assert request.text() == "".join(line_protocol(e) + "\n" for e in events)


def test_v2_endpoint_url_verbatim(server: Recorder) -> None:
    sink = InfluxSink(f"{server.url}/api/v2/write?org=o&bucket=b&precision=ns", token="t")
    sink.send([make_event()])
    request = server.wait_for(1)[0]
    assert request.param("precision") == "ms"  # our timestamps are ms, whatever the URL says
    assert (request.param("org"), request.param("bucket")) == ("o", "b")
    assert request.header("Authorization") == "Token t"


def test_v2_needs_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEALGATE_INFLUX_TOKEN", raising=False)
    with pytest.raises(UsageError, match="no token") as caught:
        InfluxSink("influx2://127.0.0.1:8086?org=o&bucket=b")
    assert caught.value.hint and "SEALGATE_INFLUX_TOKEN" in caught.value.hint


def test_v1_write_with_basic_auth(server: Recorder) -> None:
    host = server.url.removeprefix("http://")
    sink = InfluxSink(f"influx://writer:pa%40ss@{host}/sealgate?rp=week")
    sink.send([make_event()])
    request = server.wait_for(1)[0]
    assert request.path == "/write"
    assert request.query == {"db": ["sealgate"], "rp": ["week"], "precision": ["ms"]}
    assert request.header("Authorization") == "Basic " + base64.b64encode(b"writer:pa@ss").decode()
    assert "pa@ss" not in sink.name and "pa%40ss" not in sink.name


def test_v1_endpoint_url_verbatim_hides_the_password(server: Recorder) -> None:
    server.reply(401, {"error": "authorization failed"})
    sink = InfluxSink(f"{server.url}/write?db=x&u=me&p=hunter2")
    assert "hunter2" not in sink.write_url
    with pytest.raises(SinkError, match=r"answered 401 .*authorization failed") as caught:
        sink.send([make_event()])
    assert "hunter2" not in str(caught.value)
    assert server.requests[0].param("p") == "hunter2"


def test_v1_unknown_database_is_a_permanent_error(server: Recorder) -> None:
    server.reply(404, {"error": 'database not found: "nope"'})
    with pytest.raises(SinkError, match=r'answered 404.*database not found: "nope"') as caught:
        InfluxSink(f"influx://{server.url.removeprefix('http://')}/nope").send([make_event()])
    assert caught.value.permanent


@pytest.mark.parametrize(
    "url",
    [
        "influx://127.0.0.1:8086",
        "influx://127.0.0.1:8086/a/b",
        "influx2://127.0.0.1:8086?org=o",
        "http://127.0.0.1:8086/query?db=x",
        "http://127.0.0.1:8086/write",
        "udp://127.0.0.1:8089",
    ],
)
def test_bad_influx_urls(url: str) -> None:
    with pytest.raises(UsageError):
        InfluxSink(url, token="t")
