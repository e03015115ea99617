"""Alert sinks against a recording server: Slack and webhook bodies, signatures, dispatch."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gate.errors import UsageError
from gate.notify import (
    Event,
    InfluxSink,
    LogSink,
    SinkError,
    SlackSink,
    WebhookSink,
    event_id,
    sink_for,
)
from gate.result import Status
from tests.servers.recorder import Recorder

DIGEST = "sha256:" + "ab" * 32
CONTAINER = "3f2a1b9c0d1e" + "77" * 26


def make_event(**changes: object) -> Event:
    values: dict[str, object] = {
        "host": "web-01",
        "container_id": CONTAINER,
        "container_name": "payments",
        "image": "ghcr.io/acme/payments:1.4",
        "digest": DIGEST,
        "status": Status.UNTRUSTED,
        "reason": "the signature <was> made over another digest & is invalid",
        "level": 2,
        "latency_ms": 41.5,
        "time": datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC),
    }
    values.update(changes)
    return Event.create(**values)  # type: ignore[arg-type]


@pytest.fixture
def server() -> Iterator[Recorder]:
    with Recorder() as recorder:
        yield recorder


# --- Event ---------------------------------------------------------------------------------


def test_event_round_trips_through_its_dict() -> None:
    event = make_event(previous_status=Status.TRUSTED, action="stop")
    data = json.loads(json.dumps(event.to_dict()))
    assert data["time"] == "2024-05-01T12:00:00.123000Z"
    assert data["failed"] is True
    assert Event.from_dict(data) == event


def test_event_id_is_stable_and_covers_its_parts() -> None:
    assert make_event().id == make_event(time=datetime(2030, 1, 1, tzinfo=UTC)).id
    assert make_event().id != make_event(status=Status.TRUSTED).id
    assert make_event().id != make_event(sequence=1).id
    assert event_id("ab", "c") != event_id("a", "bc")
    assert event_id(None) == event_id("")


def test_recovery_and_failed() -> None:
    back = make_event(status=Status.TRUSTED, previous_status=Status.UNTRUSTED)
    assert back.recovered and not back.failed
    assert not make_event(status=Status.TRUSTED).recovered
    assert not make_event(status=Status.UNSUPPORTED).failed  # warns by default, like the gate
    assert make_event(status=Status.ERROR).failed


# --- Slack ---------------------------------------------------------------------------------


def test_slack_message_carries_everything_a_person_needs(server: Recorder) -> None:
    sink = SlackSink(server.url + "/services/T000/B000/XXXXSECRET")
    sink.send([make_event(action="stop")])
    [request] = server.wait_for(1)
    assert request.method == "POST" and request.path == "/services/T000/B000/XXXXSECRET"
    assert request.header("Content-Type") == "application/json"
    body = request.json()
    text = body["text"]
    assert text.startswith(
        ":rotating_light: UNTRUSTED: container payments (3f2a1b9c0d1e) on web-01"
    )
    assert "&lt;was&gt; made over another digest &amp; is invalid" in text
    assert "action taken: stop" in text
    rendered = json.dumps(body["blocks"])
    for needle in ("payments", "3f2a1b9c0d1e", "ghcr.io/acme/payments:1.4", DIGEST, "web-01"):
        assert needle in rendered
    assert body["blocks"][0]["type"] == "header"
    assert all(len(f["text"]) <= 2000 for b in body["blocks"] for f in b.get("fields", []))


def test_slack_recovery_has_its_own_message(server: Recorder) -> None:
    SlackSink(server.url + "/hook").send(
        [make_event(status=Status.TRUSTED, previous_status=Status.UNTRUSTED, reason="")]
    )
    body = server.wait_for(1)[0].json()
    assert body["text"] == (
        ":white_check_mark: container payments (3f2a1b9c0d1e) on web-01 "
        "is TRUSTED again (was UNTRUSTED)"
    )
    assert body["blocks"][0]["text"]["text"].startswith("Recovered: container payments")


def test_slack_error_never_shows_the_webhook_path(server: Recorder) -> None:
    server.reply(404, "no_service")
    sink = SlackSink(server.url + "/services/T000/B000/XXXXSECRET")
    with pytest.raises(SinkError, match=r"answered 404.*no_service") as caught:
        sink.send([make_event()])
    assert "XXXXSECRET" not in str(caught.value) and "XXXXSECRET" not in sink.name
    assert caught.value.permanent and caught.value.status == 404
    server.stop()
    with pytest.raises(SinkError, match="connection refused") as caught:
        sink.send([make_event()])
    assert "XXXXSECRET" not in str(caught.value)
    # Not even a logged traceback carries requests' text (which has the URL in it).
    assert "XXXXSECRET" not in "".join(traceback.format_exception(caught.value))


def test_one_slack_message_per_event_and_partial_delivery_is_counted(server: Recorder) -> None:
    server.reply(500, times=1, path="/hook")
    server.reply(200, "ok", times=2, path="/hook")
    events = [make_event(sequence=n) for n in range(4)]
    with pytest.raises(SinkError) as caught:
        SlackSink(server.url + "/hook").send(events)
    assert caught.value.delivered == 2
    assert not caught.value.permanent
    assert [r.status for r in server.requests] == [200, 200, 500]


# --- webhook -------------------------------------------------------------------------------


def test_webhook_body_is_signed_with_hmac_sha256(server: Recorder) -> None:
    secret = "s3cr3t-webhook-key"
    event = make_event()
    WebhookSink(server.url + "/sealgate", secret).send([event])
    [request] = server.wait_for(1)
    expected = hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.header("X-Sealgate-Signature") == f"sha256={expected}"
    assert hmac.compare_digest(request.header("X-Sealgate-Signature") or "", f"sha256={expected}")
    assert request.header("X-Sealgate-Event-Id") == event.id
    assert request.json() == {"events": [event.to_dict()]}


def test_webhook_without_secret_is_unsigned(server: Recorder) -> None:
    WebhookSink(server.url + "/hook").send([make_event()])
    assert server.wait_for(1)[0].header("X-Sealgate-Signature") is None


def test_webhook_does_not_follow_redirects(server: Recorder) -> None:
    server.reply(302, headers={"Location": server.url + "/elsewhere"}, path="/hook")
    with pytest.raises(SinkError, match="answered 302"):
        WebhookSink(server.url + "/hook", "k").send([make_event()])
    assert [r.path for r in server.requests] == ["/hook"]


def test_webhook_timeout_is_an_error(server: Recorder) -> None:
    server.reply(204, delay=1.0)
    with pytest.raises(SinkError, match=r"did not answer within 0.2 s"):
        WebhookSink(server.url + "/token/abc", timeout=0.2).send([make_event()])


def test_webhook_error_redacts_path_query_and_secret(server: Recorder) -> None:
    server.reply(401, {"message": "bad signature for token=abc"})
    sink = WebhookSink(server.url + "/t/abc?token=abc", "topsecret")
    with pytest.raises(SinkError) as caught:
        sink.send([make_event()])
    assert "abc" not in str(caught.value) and "topsecret" not in str(caught.value)
    assert "bad signature" in str(caught.value)


# --- log -----------------------------------------------------------------------------------


def test_log_sink_writes_one_json_line_per_event(tmp_path: Path) -> None:
    stream = io.StringIO()
    events = [make_event(sequence=n, container_name=f"c{n}") for n in range(3)]
    LogSink(stream).send(events)
    lines = stream.getvalue().splitlines()
    assert [json.loads(line)["container_name"] for line in lines] == ["c0", "c1", "c2"]
    path = tmp_path / "alerts.log"
    sink = sink_for(f"log:{path}")
    sink.send(events[:1])
    sink.send(events[1:])
    assert [json.loads(x)["id"] for x in path.read_text().splitlines()] == [e.id for e in events]


def test_log_sink_failure_is_a_sink_error(tmp_path: Path) -> None:
    with pytest.raises(SinkError, match="log file"):
        LogSink(path=tmp_path / "missing" / "x.log").send([make_event()])


# --- dispatch ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("https://hooks.slack.com/services/T0/B0/X", SlackSink),
        ("slack+https://chat.example/hooks/x", SlackSink),
        ("slack+http://127.0.0.1:9/hooks/x", SlackSink),
        ("https://alerts.example/sealgate", WebhookSink),
        ("http://127.0.0.1:8080/hook", WebhookSink),
        ("influx://127.0.0.1:8086/sealgate", InfluxSink),
        ("log:", LogSink),
        ("-", LogSink),
        ("log:stdout", LogSink),
    ],
)
def test_sink_for_dispatches_by_scheme(url: str, kind: type) -> None:
    assert isinstance(sink_for(url), kind)


def test_slack_plus_scheme_posts_to_the_plain_url(server: Recorder) -> None:
    sink_for(f"slack+{server.url}/hooks/x").send([make_event()])
    assert server.wait_for(1)[0].path == "/hooks/x"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://files.example/x",
        "hooks.slack.com/services/T0/B0/X",
        "mailto:ops@example.com",
        "http://",
    ],
)
def test_sink_for_rejects_what_is_not_an_alert_url(url: str) -> None:
    with pytest.raises(UsageError, match=r"is not an alert URL: use http\(s\)://") as caught:
        sink_for(url)
    assert "B0/X" not in str(caught.value)
