"""The watchdog on an operator's worst day: each test gets a private dockerd of its own.

A dockerd of the test's own (own socket, data and exec roots, no bridge, no
iptables) starts in about half a second, can be broken at will and leaves
nothing behind. Receivers are recording HTTP servers on 127.0.0.1 that can be
slow, silent or down; registries are real docker-registry processes. Each
test asserts what was alerted (exactly once), what was enforced (only
containers whose image got a verdict against it) and that the watchdog kept
running.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gate import commands, keys
from gate.cli import main
from gate.engine import EngineEvent
from gate.watch import Enforcement, WatchOptions
from tests.servers.recorder import Recorder, Reply

from ..conftest import ROOT, require
from .conftest import RegistryServer
from .services import Dockerd, start_dockerd, wait_for

pytestmark = pytest.mark.integration

LABEL = "sealgate-test=faults"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("SEALGATE_LEDGER", str(tmp_path / "ledger.db"))
    private, public = keys.write_key_pair(str(tmp_path / "ci"), keys.generate(), None)
    return {"dir": tmp_path, "key": str(private), "pub": str(public)}


@pytest.fixture
def daemon(monkeypatch: pytest.MonkeyPatch) -> Iterator[Dockerd]:
    """A private dockerd, DOCKER_HOST pointing at it; its containers removed at the end."""
    directory = Path(tempfile.mkdtemp(prefix="sgf-"))  # short: unix socket paths are limited
    engine = start_dockerd(directory)
    monkeypatch.setenv("DOCKER_HOST", engine.url)
    try:
        yield engine
    finally:
        if engine.process is not None:
            ids = engine.docker("ps", "-aq", check=False).stdout.decode().split()
            if ids:
                engine.docker("rm", "-f", *ids, check=False)
        engine.stop()
        remove_engine_dir(directory)


def remove_engine_dir(directory: Path) -> None:
    """Remove a stopped private dockerd's directory, with the namespace mounts it leaves.

    dockerd bind-mounts ``exec/netns/default`` (an nsfs) and does not undo it on exit.
    """
    root = str(directory.resolve())
    with open("/proc/self/mountinfo") as table:
        points = [line.split()[4] for line in table]
    for point in sorted((p for p in points if p.startswith(root + "/")), reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)
    shutil.rmtree(directory, ignore_errors=True)


def make_image(daemon: Dockerd, tag: str) -> str:
    """A unique runnable image (static busybox and a random file) imported as ``tag``."""
    busybox = shutil.which("busybox")
    require(busybox is not None, "busybox (Debian package busybox-static)")
    with tempfile.TemporaryDirectory() as scratch:
        rootfs = Path(scratch) / "rootfs.tar"
        nonce = Path(scratch) / "nonce"
        nonce.write_bytes(secrets.token_bytes(16))
        with tarfile.open(rootfs, "w") as archive:
            archive.add(busybox or "", arcname="bin/busybox")
            archive.add(nonce, arcname="nonce")
        return daemon.docker("import", str(rootfs), tag).stdout.decode().strip()


def run(daemon: Dockerd, image: str, *args: str, command: tuple[str, ...] = ()) -> str:
    out = daemon.docker(
        "run",
        "-d",
        "--network",
        "none",
        "--label",
        LABEL,
        *args,
        image,
        *(command or ("/bin/busybox", "sleep", "600")),
    )
    return out.stdout.decode().strip()


def state_of(daemon: Dockerd, container: str) -> str:
    out = daemon.docker("inspect", "--format", "{{.State.Status}}", container, check=False)
    return out.stdout.decode().strip() or "gone"


def finished_at(daemon: Dockerd, container: str) -> float:
    """When the engine saw the container exit, in seconds since the epoch."""
    from datetime import datetime

    out = daemon.docker("inspect", "--format", "{{.State.FinishedAt}}", container)
    text = out.stdout.decode().strip()  # RFC 3339 with nanoseconds: keep microseconds
    head, _, frac = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}+00:00").timestamp()


def push_signed(daemon: Dockerd, registry: RegistryServer, env: dict[str, Any]) -> str:
    """An image pushed to ``registry`` by the private engine and signed there; its tag."""
    tag = f"{registry.host}/faults/signed:{secrets.token_hex(3)}"
    make_image(daemon, tag)
    daemon.docker("push", tag)
    digest_ref = (
        daemon.docker("image", "inspect", "--format", "{{index .RepoDigests 0}}", tag)
        .stdout.decode()
        .strip()
    )
    assert main(["sign", digest_ref, "--key", env["key"]]) == 0
    return tag


class Running:
    """A Watchdog in a background thread, stopped (and checked still alive) at the end."""

    def __init__(
        self,
        env: dict[str, Any],
        alerts: list[str],
        *,
        policy: str | None = None,
        metrics_addr: str | None = None,
        **options: Any,
    ) -> None:
        options.setdefault("state_dir", env["dir"] / "state")
        opts = WatchOptions(host="test-host", labels=(LABEL,), **options)
        self.dog, self.server = commands.watchdog(
            commands.Context(),
            policy,
            [] if policy else [env["pub"]],
            alerts=alerts,
            metrics_addr=metrics_addr,
            options=opts,
        )
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.dog.run, args=(self.stop,), daemon=True)

    def __enter__(self) -> Running:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=15)
        if self.server is not None:
            self.server.close()
        assert not self.thread.is_alive()


def events(hook: Recorder, path: str = "/hook") -> list[dict[str, Any]]:
    return [r.json()["events"][0] for r in hook.requests if r.path == path and r.body]


def about(hook: Recorder, container: str, path: str = "/hook") -> list[dict[str, Any]]:
    return [e for e in events(hook, path) if e["container_id"] == container]


def faults(hook: Recorder, kind: str) -> list[dict[str, Any]]:
    return [e for e in events(hook) if e["image"] == f"sealgate watch ({kind})"]


# --- 1. enforcement acts only on a verdict --------------------------------------------------


@pytest.mark.parametrize("how", [Enforcement.KILL, Enforcement.STOP, Enforcement.PAUSE])
def test_registry_outage_never_harms_a_trusted_container(
    env: dict[str, Any],
    daemon: Dockerd,
    registry_factory: Callable[..., RegistryServer],
    how: Enforcement,
) -> None:
    registry = registry_factory()
    signed = push_signed(daemon, registry, env)
    unsigned = f"faults/unsigned:{secrets.token_hex(3)}"
    make_image(daemon, unsigned)
    good, bad = run(daemon, signed), run(daemon, unsigned)
    with (
        Recorder() as hook,
        Running(
            env,
            [hook.url + "/hook"],
            interval=0.3,
            refresh=0.5,
            on_untrusted=how,
            stop_grace=1,
        ) as running,
    ):
        [acted] = wait_for(lambda: about(hook, bad), 10, "an alert for the unsigned container")
        assert acted["status"] == "UNKNOWN" and acted["action"] == how.value
        after = "paused" if how is Enforcement.PAUSE else "exited"
        wait_for(lambda: state_of(daemon, bad) == after, 10, f"the unsigned container {after}")
        time.sleep(1.0)
        assert not about(hook, good)
        registry.stop()
        [error] = wait_for(lambda: about(hook, good), 10, "an ERROR alert for the trusted one")
        assert error["status"] == "ERROR" and error["action"] is None
        time.sleep(2.0)  # several sweeps and refreshes during the outage
        assert state_of(daemon, good) == "running"
        assert len(about(hook, good)) == 1, "ERROR is alerted once, not once per sweep"
        assert running.thread.is_alive()


def test_removing_the_tag_keeps_the_verdict(
    env: dict[str, Any], daemon: Dockerd, registry_factory: Callable[..., RegistryServer]
) -> None:
    registry = registry_factory()
    signed = push_signed(daemon, registry, env)
    good = run(daemon, signed)
    with (
        Recorder() as hook,
        Running(
            env, [hook.url + "/hook"], interval=0.3, refresh=0.3, on_untrusted=Enforcement.KILL
        ) as running,
    ):
        wait_for(lambda: running.dog.verifications >= 1, 10, "a first verification")
        daemon.docker("rmi", "-f", signed)
        image_id = daemon.docker("inspect", "--format", "{{.Image}}", good).stdout.decode().strip()
        listed = daemon.docker("image", "inspect", "--format", "{{json .RepoDigests}}", image_id)
        assert json.loads(listed.stdout) in ([], None), "the engine forgot the repo digest"
        before = running.dog.verifications
        wait_for(lambda: running.dog.verifications >= before + 3, 10, "re-verifications")
        assert state_of(daemon, good) == "running"
        assert not about(hook, good), "a tag went away; the image the container runs did not"


def test_stop_runs_beside_the_loop_and_pause_happens_once(
    env: dict[str, Any], daemon: Dockerd
) -> None:
    unsigned = f"faults/unsigned:{secrets.token_hex(3)}"
    make_image(daemon, unsigned)
    # busybox sleep as PID 1 ignores SIGTERM: every stop waits out the whole grace period
    doomed = [run(daemon, unsigned) for _ in range(3)]
    with (
        Recorder() as hook,
        Running(
            env, [hook.url + "/hook"], interval=0.3, on_untrusted=Enforcement.STOP, stop_grace=3
        ),
    ):
        # An alert does not wait for a stop (each stop waits out its 3 s grace period).
        wait_for(lambda: all(about(hook, c) for c in doomed), 5, "alerts for all three")
        wait_for(
            lambda: all(state_of(daemon, c) == "exited" for c in doomed), 20, "all three stopped"
        )
        # The stops ran side by side: the engine saw them end within one grace period of each
        # other (one after another, they would end 3 s apart). The engine's own clock, not ours.
        ended = [finished_at(daemon, c) for c in doomed]
        assert max(ended) - min(ended) < 3.0, ended
        assert all(len(about(hook, c)) == 1 for c in doomed)
    frozen = run(daemon, unsigned)
    with (
        Recorder() as hook,
        Running(
            env,
            [hook.url + "/hook"],
            state_dir=env["dir"] / "state2",
            interval=0.2,
            on_untrusted=Enforcement.PAUSE,
        ),
    ):
        wait_for(lambda: about(hook, frozen), 5, "an alert for the paused container")
        time.sleep(1.5)  # several sweeps of a paused container
        [alert] = about(hook, frozen)
        assert alert["action"] == "pause"
        assert state_of(daemon, frozen) == "paused"
    daemon.docker("unpause", frozen)


def test_a_stale_start_event_does_not_stop_an_exited_container_again(
    env: dict[str, Any], daemon: Dockerd
) -> None:
    unsigned = f"faults/unsigned:{secrets.token_hex(3)}"
    make_image(daemon, unsigned)
    container = run(daemon, unsigned)
    with Recorder() as hook:
        running = Running(env, [hook.url + "/hook"], on_untrusted=Enforcement.STOP, stop_grace=1)
        dog = running.dog
        assert dog.sweep() == 1
        wait_for(lambda: state_of(daemon, container) == "exited", 10, "the container stopped")
        dog.on_event(EngineEvent("container", "start", container, time.time_ns()))
        info = dog.engine.container(container)
        assert info is not None and dog.check(info).action is None
        dog.flush(force=True)
        [alert] = about(hook, container)
        assert alert["action"] == "stop"
        dog.close()


def test_the_watchdogs_own_container_is_never_acted_on(
    env: dict[str, Any], daemon: Dockerd, caplog: pytest.LogCaptureFixture
) -> None:
    unsigned = f"faults/unsigned:{secrets.token_hex(3)}"
    make_image(daemon, unsigned)
    own = run(daemon, unsigned, "--label", "dev.sealgate.role=watchdog", "--name", "sgf-self")
    caplog.set_level(logging.INFO, logger="sealgate.watch")
    with (
        Recorder() as hook,
        Running(env, [hook.url + "/hook"], interval=0.3, on_untrusted=Enforcement.KILL),
    ):
        [alert] = wait_for(lambda: about(hook, own), 10, "an alert for its own container")
        time.sleep(1.0)
        assert alert["status"] == "UNKNOWN" and alert["action"] is None
        assert state_of(daemon, own) == "running"
    assert any("never acting on container sgf-self" in r.getMessage() for r in caplog.records), (
        "it says at start-up which containers are exempt"
    )


def _bare_rootfs(path: Path) -> None:
    """An image with nothing of its own: the host's /usr and Python are bind-mounted into it."""
    with tarfile.open(path, "w") as archive:
        for name in ("usr", "tmp", "proc", "sys", "dev", "etc", "run", "var/run", "root", "work"):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            archive.addfile(info)
        for name in ("bin", "lib", "lib64", "sbin"):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, f"usr/{name}"
            archive.addfile(info)
        nonce = tarfile.TarInfo("nonce")
        data = secrets.token_bytes(16)
        nonce.size = len(data)
        archive.addfile(nonce, io.BytesIO(data))


def test_deployed_in_a_container_it_never_acts_on_itself(
    env: dict[str, Any], daemon: Dockerd, tmp_path: Path
) -> None:
    """As the compose file runs it (socket mounted, its own image unsigned), minus the label:
    it finds its container from its cgroup and mounts, and kills only the unsigned other one."""
    prefix = Path(sys.base_prefix).resolve()
    rootfs = tmp_path / "bare.tar"
    _bare_rootfs(rootfs)
    image = f"faults/watchdog:{secrets.token_hex(3)}"
    daemon.docker("import", str(rootfs), image)
    unsigned = f"faults/unsigned:{secrets.token_hex(3)}"
    make_image(daemon, unsigned)
    victim = run(daemon, unsigned)
    mounts = ["/usr", str(ROOT), str(env["dir"])]
    if not str(prefix).startswith("/usr/"):
        mounts.append(str(prefix))
    with Recorder() as hook:
        watchdog = (
            daemon.docker(
                "run",
                "-d",
                "--name",
                "sgf-watchdog",
                "--network",
                "host",
                "--read-only",
                "--tmpfs",
                "/tmp",
                "-v",
                f"{daemon.socket}:/var/run/docker.sock",
                *(arg for m in mounts for arg in ("-v", f"{m}:{m}:ro")),
                "-e",
                f"PYTHONPATH={ROOT}",
                "-e",
                "DOCKER_HOST=unix:///var/run/docker.sock",
                "-e",
                "HOME=/tmp",
                "-e",
                "SEALGATE_LEDGER=/tmp/ledger.db",
                "-e",
                f"SEALGATE_ALERT_URLS={hook.url}/hook",
                image,
                str(Path(sys.executable).resolve()),
                "-m",
                "gate.cli",
                "watch",
                "--key",
                env["pub"],
                "--state-dir",
                "/tmp/state",
                "--interval",
                "0.3",
                "--on-untrusted",
                "kill",
            )
            .stdout.decode()
            .strip()
        )
        try:
            [own] = wait_for(lambda: about(hook, watchdog), 20, "an alert about its own container")
            [killed] = wait_for(lambda: about(hook, victim), 10, "an alert about the other one")
            time.sleep(1.0)
            assert own["status"] == "UNKNOWN" and own["action"] is None
            assert killed["action"] == "kill"
            assert state_of(daemon, watchdog) == "running"
            assert state_of(daemon, victim) == "exited"
            logs = daemon.docker("logs", watchdog).stderr.decode()
            assert "never acting on container sgf-watchdog" in logs
            assert "this process runs in it" in logs, "found from cgroup/mounts, not a label"
        finally:
            daemon.docker("rm", "-f", watchdog, check=False)


# --- 2 and 3. sinks never slow the watch; no alert is lost ----------------------------------


def test_a_silent_receiver_delays_neither_detection_nor_enforcement(
    env: dict[str, Any], daemon: Dockerd
) -> None:
    unsigned = f"faults/unsigned:{secrets.token_hex(3)}"
    make_image(daemon, unsigned)
    with Recorder() as hook:
        hook.reply(200, path="/silent", delay=60)  # accepts, reads, never answers in time
        with Running(
            env,
            [hook.url + "/silent", hook.url + "/hook"],
            interval=3600,
            on_untrusted=Enforcement.KILL,
        ):
            time.sleep(0.5)
            first = run(daemon, unsigned)
            began = time.monotonic()
            wait_for(lambda: about(hook, first), 3, "the other sink's alert")
            wait_for(lambda: state_of(daemon, first) == "exited", 3, "the kill")
            second = run(daemon, unsigned)
            wait_for(lambda: about(hook, second), 3, "the next container's alert")
            assert time.monotonic() - began < 4


def test_rm_containers_that_exit_at_once_are_all_alerted_despite_a_slow_receiver(
    env: dict[str, Any], daemon: Dockerd
) -> None:
    unsigned = f"faults/unsigned:{secrets.token_hex(3)}"
    make_image(daemon, unsigned)
    with Recorder() as hook:
        hook.reply(204, path="/hook", delay=0.4)
        with Running(env, [hook.url + "/hook"], interval=3600):
            time.sleep(0.5)
            gone = [
                run(daemon, unsigned, "--rm", command=("/bin/busybox", "true")) for _ in range(6)
            ]
            wait_for(lambda: all(about(hook, c) for c in gone), 15, "an alert for every one")
            time.sleep(0.5)
    for container in gone:
        [alert] = about(hook, container)
        assert alert["status"] == "UNKNOWN" and alert["image"] == unsigned


def test_sigterm_exits_within_five_seconds_with_a_silent_receiver(
    env: dict[str, Any], daemon: Dockerd, tmp_path: Path
) -> None:
    unsigned = f"faults/unsigned:{secrets.token_hex(3)}"
    make_image(daemon, unsigned)
    run(daemon, unsigned)
    arrived = threading.Event()

    def hang(request: Any) -> Reply:
        arrived.set()
        return Reply(200, delay=60)  # accepts, reads, never answers in time

    with Recorder() as hook:
        hook.route("POST", "/silent", hang)
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gate.cli",
                "watch",
                "--key",
                env["pub"],
                "--alert",
                hook.url + "/silent",
                "--state-dir",
                str(tmp_path / "state"),
                "--interval",
                "1",
                "--label",
                LABEL,
            ],
            cwd=ROOT,
            env={**os.environ},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            assert arrived.wait(20), "a delivery is hanging now"
            began = time.monotonic()
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
            assert time.monotonic() - began < 5
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
            if process.stderr is not None:
                process.stderr.close()


# --- 4. a broken policy fails closed, loudly ------------------------------------------------


def test_a_broken_policy_is_error_for_everyone_alerted_once_and_recovers(
    env: dict[str, Any], daemon: Dockerd
) -> None:
    signed = f"faults/signed:{secrets.token_hex(3)}"
    unsigned = f"faults/unsigned:{secrets.token_hex(3)}"
    make_image(daemon, signed)
    make_image(daemon, unsigned)
    assert main(["sign", f"docker://{signed}", "--key", env["key"]]) == 0
    policy = env["dir"] / "policy.yaml"
    good_text = (
        f"version: 1\nsigners:\n  - name: ci\n    key: {env['pub']}\nrules:\n"
        '  - match: "**"\n    require: {signers: [ci], threshold: 1}\n'
    )
    policy.write_text(good_text)
    good = run(daemon, signed)
    with (
        Recorder() as hook,
        Running(
            env,
            [hook.url + "/hook"],
            policy=str(policy),
            metrics_addr="127.0.0.1:0",
            interval=3600,
            on_untrusted=Enforcement.KILL,
        ) as running,
    ):
        time.sleep(1.0)
        assert not events(hook)
        policy.write_text("version: 1\nsigners: [this is not a policy\n")
        [broken] = wait_for(lambda: faults(hook, "policy"), 5, "one alert about the policy")
        assert broken["status"] == "ERROR" and "policy" in broken["reason"]
        metrics = running.dog.metrics
        assert metrics is not None
        assert 'sealgate_watchdog_fault{kind="policy"} 1.0' in metrics.exposition().decode()
        bad = run(daemon, unsigned)  # checked while the policy is broken: ERROR, not enforced
        time.sleep(1.5)
        assert state_of(daemon, bad) == "running" and state_of(daemon, good) == "running"
        assert not about(hook, bad) and not about(hook, good)
        policy.write_text(good_text)
        [fixed] = wait_for(lambda: about(hook, bad), 5, "the verdict once the policy is fixed")
        assert fixed["status"] == "UNKNOWN" and fixed["action"] == "kill"
        assert [f["status"] for f in faults(hook, "policy")] == ["ERROR", "TRUSTED"]
        policy.unlink()
        wait_for(lambda: len(faults(hook, "policy")) == 3, 5, "an alert for the removed policy")
        time.sleep(1.0)
        assert len(faults(hook, "policy")) == 3 and not about(hook, good)
        assert state_of(daemon, good) == "running"
        assert running.thread.is_alive()


def test_a_replaced_key_file_is_a_policy_change(env: dict[str, Any], daemon: Dockerd) -> None:
    """Rotating the key a policy names (the policy file untouched) drops what the old key
    made TRUSTED: the watchdog used to keep trusting it until restarted."""
    signed = f"faults/rotated:{secrets.token_hex(3)}"
    make_image(daemon, signed)
    assert main(["sign", f"docker://{signed}", "--key", env["key"]]) == 0
    key_file = env["dir"] / "ci-current.pub"
    key_file.write_bytes(Path(env["pub"]).read_bytes())
    policy = env["dir"] / "policy.yaml"
    policy.write_text(
        "version: 1\nsigners:\n  - name: ci\n    key: ci-current.pub\nrules:\n"
        '  - match: "**"\n    require: {signers: [ci], threshold: 1}\n'
    )
    container = run(daemon, signed)
    with (
        Recorder() as hook,
        Running(env, [hook.url + "/hook"], policy=str(policy), interval=0.3) as running,
    ):
        wait_for(lambda: running.dog.verifications >= 1, 10, "a first verification")
        assert not about(hook, container)  # TRUSTED from the start: nothing to say
        key_file.write_bytes(keys.generate().public_key.pem)  # the old key is retired
        [alert] = wait_for(lambda: about(hook, container), 10, "the verdict under the new key")
        assert alert["status"] != "TRUSTED"


def test_a_key_file_removed_and_put_back_is_a_policy_that_loads_again(
    env: dict[str, Any], daemon: Dockerd
) -> None:
    """A key rotated as remove-then-write: the policy fails while the file is gone, and must
    load again once it is back (the stamp used to cover only the policy file then)."""
    signed = f"faults/putback:{secrets.token_hex(3)}"
    make_image(daemon, signed)
    assert main(["sign", f"docker://{signed}", "--key", env["key"]]) == 0
    key_file = env["dir"] / "ci-putback.pub"
    key_file.write_bytes(Path(env["pub"]).read_bytes())
    policy = env["dir"] / "policy.yaml"
    policy.write_text(
        "version: 1\nsigners:\n  - name: ci\n    key: ci-putback.pub\nrules:\n"
        '  - match: "**"\n    require: {signers: [ci], threshold: 1}\n'
    )
    run(daemon, signed)
    with (
        Recorder() as hook,
        Running(env, [hook.url + "/hook"], policy=str(policy), interval=3600) as running,
    ):
        wait_for(lambda: running.dog.verifications >= 1, 10, "a first verification")
        key_file.unlink()
        wait_for(lambda: faults(hook, "policy"), 5, "an alert about the policy")
        key_file.write_bytes(Path(env["pub"]).read_bytes())
        wait_for(lambda: len(faults(hook, "policy")) == 2, 10, "the policy loading again")
        assert [f["status"] for f in faults(hook, "policy")] == ["ERROR", "TRUSTED"]


# --- 5. faults of its own do not kill it ----------------------------------------------------


@contextlib.contextmanager
def tiny_tmpfs(where: Path, options: str = "size=1m") -> Iterator[Path]:
    require(os.geteuid() == 0, "root, to mount a tmpfs")
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(directory: Path) -> Path:
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as out, contextlib.suppress(OSError):
        for _ in range(1024):
            out.write(b"\0" * 4096)
    return filler


def test_a_full_or_read_only_state_directory_is_survived(
    env: dict[str, Any], daemon: Dockerd
) -> None:
    unsigned = f"faults/unsigned:{secrets.token_hex(3)}"
    make_image(daemon, unsigned)
    with tiny_tmpfs(env["dir"] / "tiny") as state, Recorder() as hook:
        with Running(env, [hook.url + "/hook"], state_dir=state, interval=0.5) as running:
            time.sleep(0.5)
            filler = fill(state)
            first = run(daemon, unsigned)
            wait_for(lambda: about(hook, first), 10, "an alert while the disk is full")
            [full] = wait_for(lambda: faults(hook, "state"), 5, "one alert about the state dir")
            assert full["status"] == "ERROR"
            second = run(daemon, unsigned)
            wait_for(lambda: about(hook, second), 10, "another alert while the disk is full")
            filler.unlink()
            wait_for(lambda: len(faults(hook, "state")) == 2, 10, "the state dir usable again")
            third = run(daemon, unsigned)
            wait_for(lambda: about(hook, third), 10, "an alert after the disk recovered")
            # Read-only from now on for new writes (a remount would refuse: files are open).
            with tiny_tmpfs(state, "size=64k,ro"):
                fourth = run(daemon, unsigned)
                wait_for(lambda: about(hook, fourth), 10, "an alert while read-only")
                wait_for(lambda: len(faults(hook, "state")) == 3, 10, "one alert: read-only")
            wait_for(lambda: len(faults(hook, "state")) == 4, 10, "writable again")
            time.sleep(1.0)
            assert running.thread.is_alive()
            for container in (first, second, third, fourth):
                assert len(about(hook, container)) == 1
            statuses = [f["status"] for f in faults(hook, "state")]
            assert statuses == ["ERROR", "TRUSTED", "ERROR", "TRUSTED"]
        containers = json.loads((state / "containers.json").read_text())
        assert fourth in containers, "what was kept in memory is written once the disk is back"


def test_an_unwritable_state_directory_at_start_is_one_sentence_and_exit_2(
    env: dict[str, Any], daemon: Dockerd, capsys: pytest.CaptureFixture[str]
) -> None:
    with tiny_tmpfs(env["dir"] / "ro", "size=64k,ro") as state:
        code = main(["watch", "--key", env["pub"], "--state-dir", str(state), "--once"])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    assert err.splitlines()[0].startswith(
        f"sealgate: error: cannot write the state directory {state}"
    )


# --- 6. revocations reach running containers at once ----------------------------------------


def test_a_ledger_revocation_sweeps_at_once(env: dict[str, Any], daemon: Dockerd) -> None:
    signed = f"faults/signed:{secrets.token_hex(3)}"
    make_image(daemon, signed)
    assert main(["sign", f"docker://{signed}", "--key", env["key"]]) == 0
    good = run(daemon, signed)
    with Recorder() as hook, Running(env, [hook.url + "/hook"], interval=3600, refresh=3600):
        time.sleep(1.0)
        assert not about(hook, good)
        began = time.monotonic()
        assert (
            main(["untrust", f"docker://{signed}", "--key", env["key"], "--reason", "CVE-2026-1"])
            == 0
        )
        [alert] = wait_for(lambda: about(hook, good), 5, "an alert after the revocation")
        assert alert["status"] == "UNTRUSTED" and "CVE-2026-1" in alert["reason"]
        assert time.monotonic() - began < 3.5, "not at the next hourly sweep"


def test_a_registry_side_revocation_is_seen_within_refresh(
    env: dict[str, Any], daemon: Dockerd, registry_factory: Callable[..., RegistryServer]
) -> None:
    registry = registry_factory()
    signed = push_signed(daemon, registry, env)
    digest_ref = (
        daemon.docker("image", "inspect", "--format", "{{index .RepoDigests 0}}", signed)
        .stdout.decode()
        .strip()
    )
    good = run(daemon, signed)
    with Recorder() as hook, Running(env, [hook.url + "/hook"], interval=3600, refresh=1.5):
        time.sleep(1.0)
        assert not about(hook, good)
        # Revoked by someone else, elsewhere: only the registry changes, not our ledger.
        elsewhere = {**os.environ, "SEALGATE_LEDGER": str(env["dir"] / "elsewhere.db")}
        argv = ["untrust", digest_ref, "--key", env["key"], "--reason", "CVE-2026-2"]
        subprocess.run(
            [sys.executable, "-m", "gate.cli", *argv],
            cwd=ROOT,
            env=elsewhere,
            check=True,
            capture_output=True,
        )
        began = time.monotonic()
        [alert] = wait_for(lambda: about(hook, good), 6, "an alert within --refresh")
        assert alert["status"] == "UNTRUSTED" and "CVE-2026-2" in alert["reason"]
        assert time.monotonic() - began < 1.5 + 1.5, "within --refresh (and one verification)"


def test_an_image_signed_only_as_a_cosign_v3_bundle_is_trusted_by_the_watchdog(
    env: dict[str, Any], daemon: Dockerd, registry_factory: Callable[..., RegistryServer]
) -> None:
    registry = registry_factory()
    tag = f"{registry.host}/faults/bundle:{secrets.token_hex(3)}"
    make_image(daemon, tag)
    daemon.docker("push", tag)
    digest_ref = (
        daemon.docker("image", "inspect", "--format", "{{index .RepoDigests 0}}", tag)
        .stdout.decode()
        .strip()
    )
    assert main(["sign", digest_ref, "--key", env["key"], "--format", "bundle"]) == 0
    assert main(["verify", digest_ref, "--key", env["pub"]]) == 0
    good = run(daemon, tag)
    with (
        Recorder() as hook,
        Running(env, [hook.url + "/hook"], interval=0.3, on_untrusted=Enforcement.KILL) as running,
    ):
        wait_for(lambda: running.dog.verifications >= 1, 10, "a verification")
        time.sleep(1.0)
        assert not about(hook, good), [(e["status"], e["reason"]) for e in about(hook, good)]
        assert state_of(daemon, good) == "running"
