"""The watchdog's parts that need no engine: self-detection, verdicts, secrets, state, workers."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType

import pytest

from gate.engine import ContainerInfo
from gate.errors import UsageError
from gate.notify import Event, Sink, SinkError, Spool, WebhookSink
from gate.result import Result, Status
from gate.watch import Self, combine, enforceable, own_container_ids
from gate.watch._config import secret, urls
from gate.watch._state import State
from gate.watch._workers import SinkWorker
from tests.servers.recorder import Recorder

ID = "3f" * 32


def container(cid: str = ID, **labels: str) -> ContainerInfo:
    return ContainerInfo(
        cid, "web", "sha256:" + "a" * 64, "web:1", "running", MappingProxyType(labels)
    )


def result(status: Status, *, denied: bool = False) -> Result:
    return Result("img", None, status, "because", unsupported_denied=denied)


def test_own_container_is_found_in_cgroup_or_mountinfo(tmp_path: Path) -> None:
    (tmp_path / "cgroup").write_text(f"12:pids:/docker/{ID}\n0::/\n")
    assert own_container_ids(tmp_path) == {ID}
    (tmp_path / "cgroup").write_text("0::/\n")  # cgroup v2, private namespace: nothing there
    (tmp_path / "mountinfo").write_text(
        f"612 590 254:1 /var/lib/docker/containers/{ID}/hostname /etc/hostname rw - ext4 x rw\n"
    )
    assert own_container_ids(tmp_path) == {ID}
    (tmp_path / "mountinfo").write_text("22 1 0:21 / /proc rw - proc proc rw\n")
    assert own_container_ids(tmp_path) == frozenset()


def test_self_is_recognised_by_label_id_or_hostname() -> None:
    nobody = Self(frozenset(), "buildhost")
    assert nobody.why(container()) is None
    assert "label" in (nobody.why(container(**{"dev.sealgate.role": "watchdog"})) or "")
    assert Self(frozenset({ID}), "buildhost").why(container()) is not None
    assert Self(frozenset(), ID[:12]).why(container()) is not None
    assert Self(frozenset(), "3f3f").why(container()) is None  # not a short container ID


def test_only_a_verdict_is_enforced() -> None:
    assert enforceable(result(Status.UNTRUSTED)) and enforceable(result(Status.UNKNOWN))
    assert not enforceable(result(Status.ERROR)), "could not tell is never a verdict"
    assert not enforceable(result(Status.TRUSTED))
    assert not enforceable(result(Status.UNSUPPORTED))
    assert enforceable(result(Status.UNSUPPORTED, denied=True))


def test_remembered_digests_combine_to_the_strongest_verdict() -> None:
    unknown = result(Status.UNKNOWN)
    trusted, error, untrusted = (
        result(Status.TRUSTED),
        result(Status.ERROR),
        result(Status.UNTRUSTED),
    )
    assert combine(unknown, [error, trusted]) is trusted
    assert combine(unknown, [trusted, untrusted]) is untrusted, "a revocation under any name"
    assert combine(unknown, [error]) is error, "registry down is could-not-tell, not unsigned"
    assert combine(unknown, [result(Status.UNKNOWN)]) is unknown


def test_urls_come_from_flags_files_and_the_environment(tmp_path: Path) -> None:
    listed = tmp_path / "alerts"
    listed.write_text("# Slack\nhttps://hooks.slack.com/services/T/B/X\n\nlog:\n")
    named = tmp_path / "more"
    named.write_text("https://c.example/h?token=abc\n")
    env = {
        "SEALGATE_ALERT_URLS": "https://a.example/x  log:",
        "SEALGATE_ALERT_URLS_FILE": str(named),
    }
    assert urls(["log:"], [str(listed)], "SEALGATE_ALERT_URLS", env) == [
        "log:",
        "https://hooks.slack.com/services/T/B/X",
        "https://a.example/x",
        "https://c.example/h?token=abc",
    ]
    with pytest.raises(UsageError, match="cannot read the URL file"):
        urls([], [str(tmp_path / "missing")], "X", {})


def test_a_secret_comes_from_its_variable_or_the_file_its_FILE_variable_names(
    tmp_path: Path,
) -> None:
    (tmp_path / "token").write_text("s3cret\n")
    assert secret("T", {"T": "direct"}) == "direct"
    assert secret("T", {"T_FILE": str(tmp_path / "token")}) == "s3cret"
    assert secret("T", {}) is None


def test_webhook_errors_redact_every_part_of_the_url_even_when_echoed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    path, token = "/hooks/T0A1B2C3/abcdefSECRET", "qv-TOKEN-99"
    with Recorder() as server:
        server.reply(403, f"unknown token abcdefSECRET (T0A1B2C3) or {token} for ghp_user9:pw0rd")
        sink = WebhookSink(f"http://ghp_user9:pw0rd@127.0.0.1:{server.port}{path}?token={token}")
        with pytest.raises(SinkError) as caught:
            sink.send([Event.create(host="h", image="i", status=Status.UNKNOWN)])
    text = str(caught.value) + sink.name
    for part in ("abcdefSECRET", "T0A1B2C3", token, "pw0rd", "ghp_user9"):
        assert part not in text
    assert "answered 403" in text


def test_state_that_cannot_be_written_stays_in_memory_until_it_can(tmp_path: Path) -> None:
    blocked = tmp_path / "state"
    blocked.write_text("a file where the directory should be")
    errors: list[str | None] = []
    state = State(blocked, errors.append)
    state.remember("sha256:" + "1" * 64, ["r@sha256:" + "2" * 64], ())
    assert errors and errors[-1] is not None
    blocked.unlink()
    state.retry()
    assert errors[-1] is None
    assert State(blocked, errors.append).images == {"sha256:" + "1" * 64: ["r@sha256:" + "2" * 64]}


class _Gate(Sink):
    """A sink that holds every delivery until ``opened`` is set: a receiver that never answers."""

    batch_size = 1
    kind = "gate"

    def __init__(self) -> None:
        super().__init__("held sink", "gate")
        self.opened = threading.Event()
        self.got: list[str] = []

    def _send(self, events: Sequence[Event]) -> None:
        if not self.opened.wait(30):
            raise SinkError("held sink gave up")
        self.got.extend(e.id for e in events)


def test_a_sink_that_never_answers_blocks_neither_put_nor_close(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sink = _Gate()
    worker = SinkWorker(Spool(tmp_path, sink), on_disk=lambda _: None)
    worker.start()
    events = [
        Event.create(host="h", image="i", status=Status.UNKNOWN, sequence=n) for n in range(5)
    ]
    began = time.monotonic()
    for event in events:
        worker.put([event])
    assert time.monotonic() - began < 0.5
    caplog.set_level(logging.WARNING)
    assert worker.close(time.monotonic() + 0.5) is False
    assert time.monotonic() - began < 1.5
    again = Spool(tmp_path, _Gate())  # what a restart would find: nothing was lost
    assert again.pending() == 5
    again.close()
    sink.opened.set()  # let the stuck delivery end


def test_an_influx_password_can_stay_out_of_the_url() -> None:
    import base64

    from gate.notify import InfluxSink

    with Recorder() as server:
        sink = InfluxSink(f"influx://bob@127.0.0.1:{server.port}/db", password="pw-from-file")
        sink.send([Event.create(host="h", image="i", status=Status.TRUSTED)])
        [request] = server.requests
    assert (
        request.header("Authorization") == "Basic " + base64.b64encode(b"bob:pw-from-file").decode()
    )
    assert "pw-from-file" not in sink.name


def test_a_spool_failure_reported_from_put_may_put_its_own_alert(tmp_path: Path) -> None:
    """The watchdog's reaction to a failing spool is an alert through that same worker."""
    spool = Spool(tmp_path, _Gate())
    reports: list[str | None] = []
    fault = Event.create(host="h", image="sealgate watch (state)", status=Status.ERROR)

    def on_disk(error: str | None) -> None:
        reports.append(error)
        if error is not None:
            worker.put([fault])

    worker = SinkWorker(spool, on_disk=on_disk)
    spool.close()  # every write fails from now on, as on a full disk
    putter = threading.Thread(
        target=worker.put, args=([Event.create(host="h", image="i", status=Status.UNKNOWN)],)
    )
    putter.start()
    putter.join(5)
    assert not putter.is_alive(), "put must not deadlock on its own fault alert"
    assert len(reports) == 1 and reports[0] is not None
    assert worker.pending() == 2, "both kept in memory"


def test_refresh_defaults_to_60_s_and_the_old_cache_ttl_flag_still_sets_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from gate.cli import build_parser

    assert build_parser().parse_args(["watch", "--key", "k.pub"]).refresh == 60.0
    assert build_parser().parse_args(["watch", "--key", "k.pub", "--cache-ttl", "5"]).refresh == 5
    with pytest.raises(SystemExit):
        build_parser().parse_args(["watch", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "':PORT' listens on every interface" in shown and "--alert-file" in shown
