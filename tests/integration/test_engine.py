"""The engine wrapper against the real dockerd: images, containers, events, enforcement."""

from __future__ import annotations

import json
import secrets
import shutil
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gate.engine import Engine, EngineEvent
from gate.errors import EngineError
from tests.conftest import require
from tests.integration.services import start_dockerd

pytestmark = pytest.mark.integration

EVENT_WAIT = 10.0


@pytest.fixture(scope="module")
def engine() -> Engine:
    engine = Engine(timeout=30)
    try:
        engine.ping()
    except EngineError:
        require(False, "the Docker engine (dockerd on /var/run/docker.sock)")
    return engine


@pytest.fixture
def build(docker_client: Any, tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """``build(tag) -> image ID``: a busybox image made offline (FROM scratch, --network none)."""
    busybox = shutil.which("busybox")
    require(busybox is not None, "busybox (Debian package busybox-static)")
    built: list[str] = []

    def _build(tag: str) -> str:
        context = tmp_path / f"ctx-{len(built)}"
        context.mkdir()
        shutil.copy(busybox or "", context / "busybox")
        (context / "nonce").write_text(secrets.token_hex(8))  # every build is its own image
        (context / "Dockerfile").write_text(
            "FROM scratch\nCOPY busybox /bin/busybox\nCOPY nonce /nonce\n"
            'CMD ["/bin/busybox", "sleep", "30"]\n'
        )
        image, _ = docker_client.images.build(
            path=str(context), tag=tag, network_mode="none", rm=True, forcerm=True
        )
        built.append(image.id)
        return str(image.id)

    yield _build
    for image_id in built:
        try:
            docker_client.images.remove(image_id, force=True)
        except Exception as e:  # already gone is fine; anything else is worth a look
            if "No such image" not in str(e):
                raise


@pytest.fixture
def run(docker_client: Any) -> Iterator[Callable[..., Any]]:
    """``run(image, **kwargs) -> Container``: detached, ``network_mode="none"``, removed after."""
    started: list[Any] = []

    def _run(image: str, **kwargs: Any) -> Any:
        container = docker_client.containers.run(
            image,
            detach=True,
            network_mode="none",
            name=f"sealgate-test-{secrets.token_hex(4)}",
            **kwargs,
        )
        started.append(container)
        return container

    yield _run
    for container in started:
        try:
            container.remove(force=True)
        except Exception as e:
            if "No such container" not in str(e):
                raise


@pytest.fixture
def tag() -> str:
    return f"sealgate-test/engine:{secrets.token_hex(4)}"


class EventCollector:
    """Follows ``engine.events()`` in a thread until stopped."""

    def __init__(self, engine: Engine, since: float | None = None) -> None:
        self.stop = threading.Event()
        self.events: list[EngineEvent] = []
        self.error: BaseException | None = None
        self._arrived = threading.Condition()
        self._thread = threading.Thread(target=self._follow, args=(engine, since), daemon=True)
        self._thread.start()

    def _follow(self, engine: Engine, since: float | None) -> None:
        try:
            for event in engine.events(since=since, stop=self.stop):
                with self._arrived:
                    self.events.append(event)
                    self._arrived.notify_all()
        except BaseException as e:
            self.error = e

    def wait_for(self, match: Callable[[EngineEvent], bool], what: str) -> EngineEvent:
        deadline = time.monotonic() + EVENT_WAIT
        with self._arrived:
            while True:
                for event in self.events:
                    if match(event):
                        return event
                left = deadline - time.monotonic()
                assert left > 0, f"no {what} event within {EVENT_WAIT} s; got {self.events}"
                self._arrived.wait(left)

    def close(self) -> float:
        """Stop following; return how long the iterator took to end."""
        started = time.monotonic()
        self.stop.set()
        self._thread.join(timeout=5)
        assert not self._thread.is_alive()
        return time.monotonic() - started


def test_ping_and_image(engine: Engine, build: Callable[[str], str], tag: str) -> None:
    image_id = build(tag)
    info = engine.image(tag)
    assert info.id == image_id and info.id.startswith("sha256:")
    assert tag in info.repo_tags
    assert info.repo_digests == ()  # built locally, never pushed
    assert info.size > 0 and info.created
    assert engine.image(image_id) == info
    with pytest.raises(EngineError, match="no image sealgate-test/missing:0 in the local engine"):
        engine.image("sealgate-test/missing:0")


def test_container_reports_the_image_it_runs_not_what_its_tag_says_now(
    engine: Engine, build: Callable[[str], str], run: Callable[..., Any], tag: str
) -> None:
    first = build(tag)
    container = run(tag, labels={"team": "payments"})
    second = build(tag)  # the tag moves; the container keeps running the first image
    assert first != second
    info = engine.container(container.id)
    assert info is not None
    assert (info.id, info.name) == (container.id, container.name)
    assert info.image_id == first
    assert info.image_ref == tag
    assert info.status == "running"
    assert info.labels == {"team": "payments"}
    assert engine.container(container.name) == info
    listed = {c.id: c for c in engine.containers()}
    assert listed[container.id] == info
    assert engine.image(tag).id == second


def test_events_yield_the_start_within_bounded_time(
    engine: Engine, build: Callable[[str], str], run: Callable[..., Any], tag: str
) -> None:
    build(tag)
    collector = EventCollector(engine)
    try:
        time.sleep(0.3)  # let the stream open before the start
        started = time.monotonic()
        container = run(tag)
        event = collector.wait_for(
            lambda e: e.type == "container" and e.action == "start" and e.id == container.id,
            "container start",
        )
        assert time.monotonic() - started < EVENT_WAIT
        assert event.attributes["name"] == container.name
        assert event.attributes["image"] == tag
        engine.pause_container(container.id)
        container.unpause()
        collector.wait_for(lambda e: e.action == "unpause" and e.id == container.id, "unpause")
    finally:
        took = collector.close()
    assert took < 1.5, f"stopping the event stream took {took:.2f} s"
    assert collector.error is None
    watched = {
        ("container", "start"),
        ("container", "restart"),
        ("container", "unpause"),
        ("image", "tag"),
        ("image", "pull"),
    }
    assert {(e.type, e.action) for e in collector.events} <= watched


def test_events_since_replays_what_happened_while_away(
    engine: Engine, build: Callable[[str], str], run: Callable[..., Any], tag: str
) -> None:
    build(tag)
    since = time.time() - 1
    container = run(tag)
    collector = EventCollector(engine, since=since)
    try:
        collector.wait_for(lambda e: e.action == "start" and e.id == container.id, "replayed start")
    finally:
        collector.close()


def test_stop_kill_pause(
    engine: Engine, build: Callable[[str], str], run: Callable[..., Any], tag: str
) -> None:
    build(tag)
    paused, killed, stopped = run(tag), run(tag), run(tag)
    engine.pause_container(paused.id)
    assert (info := engine.container(paused.id)) is not None and info.status == "paused"
    engine.kill_container(killed.id)
    assert (info := engine.container(killed.id)) is not None and info.status == "exited"
    began = time.monotonic()
    engine.stop_container(stopped.id, grace=1)  # busybox sleep as PID 1 ignores SIGTERM
    assert time.monotonic() - began < 10
    assert (info := engine.container(stopped.id)) is not None and info.status == "exited"
    running = {c.id for c in engine.containers()}
    assert paused.id in running and killed.id not in running and stopped.id not in running
    with pytest.raises(EngineError, match="refused to pause container"):
        engine.pause_container(killed.id)  # not running


def test_missing_container(
    engine: Engine, build: Callable[[str], str], run: Callable[..., Any], tag: str
) -> None:
    build(tag)
    container = run(tag)
    container.remove(force=True)
    assert engine.container(container.id) is None
    assert engine.container("sealgate-test-never-existed") is None
    with pytest.raises(EngineError, match="has no such container"):
        engine.kill_container(container.id)


def test_save_image(engine: Engine, build: Callable[[str], str], tag: str, tmp_path: Path) -> None:
    image_id = build(tag)
    dest = tmp_path / "image.tar"
    engine.save_image(tag, dest)
    with tarfile.open(dest) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest[0]["RepoTags"] == [tag]
    assert manifest[0]["Config"].removesuffix(".json").split("/")[-1] == image_id.split(":")[1]
    assert not list(tmp_path.glob("*.partial"))
    with pytest.raises(EngineError, match="no image"):
        engine.save_image("sealgate-test/missing:0", tmp_path / "missing.tar")
    assert not (tmp_path / "missing.tar").exists()


def test_unreachable_docker_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    engine = Engine(timeout=2)
    with pytest.raises(
        EngineError, match=r"cannot reach the Docker engine at unix:///nonexistent\.sock"
    ):
        engine.ping()
    with pytest.raises(EngineError, match="cannot reach"):
        next(iter(engine.events(stop=threading.Event())))


def test_engine_restart_ends_the_stream_and_the_same_engine_reconnects(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The watchdog's reconnect contract: EngineError when the daemon goes, then it just works."""
    busybox = shutil.which("busybox")
    require(busybox is not None, "busybox (Debian package busybox-static)")
    directory = Path(tempfile.mkdtemp(prefix="sgd-"))  # short: unix socket paths are limited
    daemon = start_dockerd(directory)
    try:
        rootfs = tmp_path_factory.mktemp("rootfs") / "rootfs.tar"
        with tarfile.open(rootfs, "w") as archive:
            archive.add(busybox or "", arcname="bin/busybox")
        daemon.docker("import", str(rootfs), "sealgate-test/base:1")

        engine = Engine(daemon.url, timeout=10)
        engine.ping()
        collector = EventCollector(engine)
        time.sleep(0.3)
        daemon.docker("tag", "sealgate-test/base:1", "sealgate-test/base:before")
        collector.wait_for(lambda e: e.type == "image" and e.action == "tag", "image tag")

        daemon.stop()
        collector._thread.join(timeout=EVENT_WAIT)
        assert isinstance(collector.error, EngineError), collector.error
        assert daemon.url in str(collector.error)
        with pytest.raises(EngineError, match="cannot reach the Docker engine"):
            engine.ping()

        last = collector.events[-1].time_nano / 1e9
        daemon.start()
        engine.ping()  # the same object, no new Engine needed
        assert engine.image("sealgate-test/base:1").id.startswith("sha256:")
        daemon.docker("tag", "sealgate-test/base:1", "sealgate-test/base:after")
        resumed = EventCollector(engine, since=last + 1e-6)
        try:
            event = resumed.wait_for(lambda e: e.action == "tag", "image tag after the restart")
            assert event.attributes.get("name") == "sealgate-test/base:after"
        finally:
            resumed.close()
    finally:
        daemon.stop()
        shutil.rmtree(directory, ignore_errors=True)
