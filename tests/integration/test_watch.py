"""The watchdog against a real dockerd, a real InfluxDB and a recording webhook.

Containers run with --network none from images built in the test; the
watchdog runs in a thread (or as a `sealgate watch` process for SIGTERM).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gate import commands, keys
from gate.cli import main
from gate.watch import Enforcement, WatchOptions
from tests.servers.recorder import Recorder

from ..conftest import ROOT, require
from .services import start_influx, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("SEALGATE_LEDGER", str(tmp_path / "ledger.db"))
    private, public = keys.write_key_pair(str(tmp_path / "ci"), keys.generate(), None)
    return {"dir": tmp_path, "key": str(private), "pub": str(public)}


@pytest.fixture
def images(docker_client: Any, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Two runnable images (busybox sleep): 'signed' and 'unsigned', unique per test."""
    busybox = "/usr/bin/busybox"
    require(os.path.exists(busybox), "a static busybox (apt install busybox-static)")
    tags = {}
    for name in ("signed", "unsigned"):
        context = tmp_path / f"ctx-{name}"
        context.mkdir()
        shutil.copy(busybox, context / "busybox")  # keeps the executable bit
        (context / "nonce").write_bytes(secrets.token_bytes(16))
        (context / "Dockerfile").write_text(
            "FROM scratch\nCOPY busybox /bin/busybox\nCOPY nonce /nonce\n"
            'CMD ["/bin/busybox", "sleep", "600"]\n'
        )
        tags[name] = f"sealgate-watch/{name}:{secrets.token_hex(3)}"
        docker_client.images.build(path=str(context), tag=tags[name], network_mode="none", rm=True)
    yield tags
    for container in docker_client.containers.list(
        all=True, filters={"label": "sealgate-test=watch"}
    ):
        container.remove(force=True)
    for tag in tags.values():
        docker_client.images.remove(tag, force=True)


def start(docker_client: Any, image: str) -> Any:
    return docker_client.containers.run(
        image, detach=True, network_mode="none", labels={"sealgate-test": "watch"}
    )


def sign(env: dict[str, Any], image: str) -> None:
    assert main(["sign", f"docker://{image}", "--key", env["key"]]) == 0


class Running:
    """A Watchdog in a background thread, stopped at the end."""

    def __init__(
        self, env: dict[str, Any], alerts: list[str], influx: list[str] = (), **options: Any
    ) -> None:
        opts = WatchOptions(
            state_dir=env["dir"] / "state",
            host="test-host",
            labels=("sealgate-test=watch",),
            **options,
        )
        self.dog, self.server = commands.watchdog(
            commands.Context(), None, [env["pub"]], alerts=alerts, influx=list(influx), options=opts
        )
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.dog.run, args=(self.stop,), daemon=True)

    def __enter__(self) -> Running:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()


def ours(requests: list[Any], container: Any) -> list[Any]:
    return [
        r for r in requests if any(e["container_id"] == container.id for e in r.json()["events"])
    ]


def test_alert_once_for_untrusted_none_for_trusted(
    env: dict[str, Any], images: dict[str, str], docker_client: Any
) -> None:
    sign(env, images["signed"])
    good, bad = start(docker_client, images["signed"]), start(docker_client, images["unsigned"])
    with Recorder() as hook, Running(env, [hook.url + "/hook"], interval=0.5) as running:
        wait_for(lambda: ours(hook.requests, bad), 10, "an alert for the unsigned container")
        time.sleep(1.5)  # several more sweeps
        alerts = ours(hook.requests, bad)
        assert len(alerts) == 1, "one alert per change, not one per sweep"
        event = alerts[0].json()["events"][0]
        assert event["status"] == "UNKNOWN" and event["container_name"] == bad.name
        assert (
            event["host"] == "test-host"
            and event["digest"] == docker_client.images.get(images["unsigned"]).id
        )
        assert not ours(hook.requests, good)
        assert running.dog.verifications >= 2


def test_new_container_is_verified_from_the_event_stream(
    env: dict[str, Any], images: dict[str, str], docker_client: Any
) -> None:
    with Recorder() as hook, Running(env, [hook.url + "/hook"], interval=3600):
        time.sleep(0.5)  # the first sweep is done; the next one is an hour away
        started = time.monotonic()
        bad = start(docker_client, images["unsigned"])
        wait_for(lambda: ours(hook.requests, bad), 10, "an alert from the event stream")
        assert time.monotonic() - started < 10


def test_revocation_alerts_running_containers_at_next_refresh(
    env: dict[str, Any], images: dict[str, str], docker_client: Any
) -> None:
    sign(env, images["signed"])
    good = start(docker_client, images["signed"])
    with Recorder() as hook, Running(env, [hook.url + "/hook"], interval=0.5):
        time.sleep(1.0)
        assert not ours(hook.requests, good)
        assert (
            main(
                [
                    "untrust",
                    f"docker://{images['signed']}",
                    "--key",
                    env["key"],
                    "--reason",
                    "CVE-2026-9",
                ]
            )
            == 0
        )
        [alert] = wait_for(lambda: ours(hook.requests, good), 10, "an alert after the revocation")
        event = alert.json()["events"][0]
        assert event["status"] == "UNTRUSTED" and "CVE-2026-9" in event["reason"]
        assert event["previous_status"] == "TRUSTED"
        time.sleep(1.2)
        assert len(ours(hook.requests, good)) == 1


def test_enforcement_stops_the_container_and_says_so(
    env: dict[str, Any], images: dict[str, str], docker_client: Any
) -> None:
    bad = start(docker_client, images["unsigned"])
    with (
        Recorder() as hook,
        Running(
            env, [hook.url + "/hook"], interval=0.5, on_untrusted=Enforcement.STOP, stop_grace=2
        ),
    ):
        [alert] = wait_for(lambda: ours(hook.requests, bad), 20, "an enforcement alert")
        assert alert.json()["events"][0]["action"] == "stop"

        def exited() -> bool:
            bad.reload()
            return bool(bad.status == "exited")

        wait_for(exited, 20, "the container stopped (in the background, after its grace period)")


def test_webhook_outage_loses_nothing_and_sends_nothing_twice(
    env: dict[str, Any], images: dict[str, str], docker_client: Any
) -> None:
    with Recorder() as hook:
        hook.stop()
        with Running(env, [hook.url + "/hook"], interval=0.3):
            bad = [start(docker_client, images["unsigned"]) for _ in range(3)]
            time.sleep(2.0)
            hook.start()
            wait_for(lambda: all(ours(hook.requests, c) for c in bad), 45, "replayed alerts")
            time.sleep(1.0)
        ids = [r.json()["events"][0]["id"] for r in hook.requests]
        assert len(ids) == len(set(ids))
        for container in bad:
            assert len(ours(hook.requests, container)) == 1


def test_every_result_goes_to_influxdb(
    env: dict[str, Any], images: dict[str, str], docker_client: Any, tmp_path: Path
) -> None:
    influx = start_influx(tmp_path / "influx")
    try:
        influx.create_database("sealgate")
        sign(env, images["signed"])
        good, bad = start(docker_client, images["signed"]), start(docker_client, images["unsigned"])
        url = influx.url.replace("http://", "influx://") + "/sealgate"
        with Running(env, ["log:"], influx=[url], interval=0.5):
            rows = wait_for(
                lambda: (
                    [
                        r
                        for r in influx.rows("SELECT * FROM sealgate_verification", "sealgate")
                        if r.get("container_id") in (good.id, bad.id)
                    ]
                    and len(
                        {
                            r["container_id"]
                            for r in influx.rows("SELECT * FROM sealgate_verification", "sealgate")
                        }
                        & {good.id, bad.id}
                    )
                    == 2
                ),
                20,
                "points for both containers",
            )
        rows = influx.rows("SELECT * FROM sealgate_verification", "sealgate")
        by_container = {r["container_id"]: r for r in rows}
        assert by_container[good.id]["status"] == "TRUSTED" and by_container[good.id]["failed"] == 0
        assert by_container[bad.id]["status"] == "UNKNOWN" and by_container[bad.id]["failed"] == 1
        assert (
            by_container[bad.id]["host"] == "test-host"
            and by_container[bad.id]["container_name"] == bad.name
        )
        assert by_container[bad.id]["latency_ms"] is not None
    finally:
        influx.stop()


def test_sigterm_drains_and_exits_within_five_seconds(
    env: dict[str, Any], images: dict[str, str], docker_client: Any, tmp_path: Path
) -> None:
    start(docker_client, images["unsigned"])
    with Recorder() as hook:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gate.cli",
                "watch",
                "--key",
                env["pub"],
                "--alert",
                hook.url + "/hook",
                "--state-dir",
                str(tmp_path / "state"),
                "--metrics-addr",
                "127.0.0.1:0",
                "--interval",
                "1",
                "--label",
                "sealgate-test=watch",
            ],
            cwd=ROOT,
            env={**os.environ},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            hook.wait_for(1, timeout=20)
            began = time.monotonic()
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
            assert time.monotonic() - began < 5
        finally:
            if process.poll() is None:
                process.kill()


def test_engine_restart_reconnects_sweeps_and_keeps_alerting(
    env: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dockerd of our own goes away mid-run and comes back: the watchdog reconnects within a
    second or two of it answering, sweeps, and alerts for a container started after."""
    import tarfile
    import tempfile

    from .services import start_dockerd
    from .test_watch_faults import remove_engine_dir

    busybox = shutil.which("busybox")
    require(busybox is not None, "busybox (Debian package busybox-static)")
    directory = Path(tempfile.mkdtemp(prefix="sgw-"))  # short: unix socket paths are limited
    daemon = start_dockerd(directory)
    try:
        rootfs = tmp_path / "rootfs.tar"
        with tarfile.open(rootfs, "w") as archive:
            archive.add(busybox or "", arcname="bin/busybox")
        daemon.docker("import", str(rootfs), "sealgate-watch/restart:1")

        def run_container() -> str:
            out = daemon.docker(
                "run",
                "-d",
                "--network",
                "none",
                "--label",
                "sealgate-test=watch",
                "--stop-timeout",  # busybox sleep as PID 1 ignores SIGTERM: do not wait 10 s
                "1",
                "sealgate-watch/restart:1",
                "/bin/busybox",
                "sleep",
                "600",
            )
            return out.stdout.decode().strip()

        first = run_container()
        monkeypatch.setenv("DOCKER_HOST", daemon.url)
        with Recorder() as hook, Running(env, [hook.url + "/hook"], interval=3600):

            def alerted(container_id: str) -> list[Any]:
                return [
                    r
                    for r in hook.requests
                    if r.json()["events"][0]["container_id"] == container_id
                ]

            wait_for(lambda: alerted(first), 20, "an alert before the restart")
            lost = time.monotonic()
            daemon.stop()
            # 20 s down: a backoff doubling from 1 s would next try at 31 s, 10 s after it is back
            time.sleep(max(0.0, lost + 20 - time.monotonic()))
            for attempt in range(3):  # a restarted dockerd may race its old containerd's exit
                try:
                    daemon.start()
                    break
                except RuntimeError:
                    if attempt == 2:
                        raise
                    daemon.stop()
                    time.sleep(3)
            answering = time.monotonic()
            second = run_container()
            wait_for(lambda: alerted(second), 15, "an alert after the engine came back")
            assert time.monotonic() - answering < 3.0, "reconnected soon after it answered"
            assert len(alerted(first)) == 1
    finally:
        daemon.stop()
        remove_engine_dir(directory)
