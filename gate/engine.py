"""A typed wrapper over the Docker engine: images, containers, events, enforcement.

docker-py is untyped and raises its own errors (and ``requests``'); this module
is the one place they enter, and every one of them leaves as ``EngineError``
with a sentence that names the engine (STYLE.md #9, #14). The watchdog needs
three facts from the engine: which containers run, which image each one was
created from (``.Image``: the ID it actually runs, not what its tag points at
now), and a stream of the moments that changes (container start/restart/
unpause, image tag/pull).

The client is created lazily and re-created after a failure, so an ``Engine``
outlives a restart of the daemon: callers retry with their own backoff.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import docker
import docker.errors
import requests

from gate.errors import EngineError

log = logging.getLogger(__name__)

DEFAULT_HOST = "unix:///var/run/docker.sock"
WATCHED_ACTIONS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "container": frozenset({"start", "restart", "unpause"}),
        "image": frozenset({"tag", "pull"}),
    }
)
"""The engine events that can change which image a running container runs."""
_STOP_POLL = 0.2
"""How often the event watcher checks ``stop``: the bound on how long stopping takes."""
_MAX_EVENT_LINE = 1 << 20
"""An event is a few hundred bytes; a longer line means the stream is garbage."""


def _empty() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True)
class ImageInfo:
    """An image in the local engine."""

    id: str
    """The image ID: the digest of its config blob, ``sha256:…``."""
    repo_tags: tuple[str, ...] = ()
    repo_digests: tuple[str, ...] = ()
    """Registry manifest digests it was pulled or pushed as, ``name@sha256:…``."""
    size: int = 0
    created: str = ""


@dataclass(frozen=True)
class ContainerInfo:
    """A container, with the image it actually runs."""

    id: str
    name: str
    image_id: str
    """The container's ``.Image``: the image ID it was created from, whatever its tag says now."""
    image_ref: str
    """``Config.Image``: the reference as written at ``docker run``."""
    status: str
    """``running``, ``paused``, ``exited``, …"""
    labels: Mapping[str, str] = field(default_factory=_empty)


@dataclass(frozen=True)
class EngineEvent:
    """One engine event the watchdog reacts to."""

    type: str
    """``container`` or ``image``."""
    action: str
    id: str
    """Container ID, or for images the name or ID the engine reports."""
    time_nano: int
    attributes: Mapping[str, str] = field(default_factory=_empty)


def describe_host(url: str) -> str:
    """The engine address fit for a message: any password in it is replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def parse_event(raw: Any) -> EngineEvent | None:
    """A decoded engine event as ``EngineEvent``, or None when it is malformed.

    Events we do not watch are returned too; ``Engine.events`` filters them.
    """
    if not isinstance(raw, Mapping):
        return None
    kind, action, actor = raw.get("Type"), raw.get("Action"), raw.get("Actor")
    if not isinstance(kind, str) or not isinstance(action, str) or not isinstance(actor, Mapping):
        return None
    ident = actor.get("ID")
    if not isinstance(ident, str) or not ident:
        return None
    nano = raw.get("timeNano")
    if not isinstance(nano, int):
        seconds = raw.get("time")
        if not isinstance(seconds, int):
            return None
        nano = seconds * 1_000_000_000
    attributes = actor.get("Attributes") or {}
    if not isinstance(attributes, Mapping):
        return None
    clean = {str(k): str(v) for k, v in attributes.items()}
    # NOTE: "exec_start: sh -c …" style actions carry arguments after a colon.
    return EngineEvent(kind, action.split(":", 1)[0], ident, nano, MappingProxyType(clean))


def _watched(event: EngineEvent) -> bool:
    return event.action in WATCHED_ACTIONS.get(event.type, frozenset())


class Engine:
    """The Docker engine at ``base_url`` (default: ``DOCKER_HOST``, else the local socket)."""

    def __init__(self, base_url: str | None = None, timeout: float = 10) -> None:
        self._base_url = base_url
        self.timeout = timeout
        self.where = describe_host(base_url or os.environ.get("DOCKER_HOST") or DEFAULT_HOST)
        """The engine's address for messages (no secrets)."""
        self._client: Any = None
        self._lock = threading.RLock()

    # --- plumbing ----------------------------------------------------------------------

    def _api(self) -> Any:
        """The docker-py low-level client, created on first use (it asks the engine its version)."""
        with self._lock:
            if self._client is None:
                kwargs: dict[str, Any] = (
                    docker.utils.kwargs_from_env()
                    if self._base_url is None
                    else {"base_url": self._base_url}
                )
                kwargs.setdefault("base_url", DEFAULT_HOST)
                with self._translate("connect"):
                    self._client = docker.APIClient(timeout=self.timeout, **kwargs)
            return self._client

    @contextlib.contextmanager
    def _translate(self, doing: str, *, missing_ok: bool = False) -> Iterator[None]:
        """Turn docker-py and requests errors into ``EngineError``.

        With ``missing_ok`` a 404 passes through as ``docker.errors.NotFound``
        for the caller to turn into None or a sharper sentence.
        """
        try:
            yield
        except docker.errors.NotFound as e:
            if missing_ok:
                raise
            raise EngineError(f"the Docker engine at {self.where} cannot {doing}: not found") from e
        except docker.errors.APIError as e:
            reason = e.explanation or str(e)
            raise EngineError(
                f"the Docker engine at {self.where} refused to {doing}: {reason}"
            ) from e
        except (docker.errors.DockerException, requests.RequestException, OSError) as e:
            self._reset()
            raise EngineError(
                f"cannot reach the Docker engine at {self.where}: {_short(e)}",
                hint="is dockerd running, and is DOCKER_HOST right?",
            ) from e

    def _reset(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    def close(self) -> None:
        """Release the connection pool; the next call reconnects."""
        self._reset()

    # --- reads -------------------------------------------------------------------------

    def ping(self) -> None:
        """Raise ``EngineError`` unless the engine answers."""
        with self._translate("answer a ping"):
            self._api().ping()

    def image(self, name_or_id: str) -> ImageInfo:
        """The local image by name or ID; ``EngineError`` when the engine has none."""
        try:
            with self._translate(f"inspect image {name_or_id}", missing_ok=True):
                raw = self._api().inspect_image(name_or_id)
        except docker.errors.NotFound as e:
            raise EngineError(
                f"no image {name_or_id} in the local engine at {self.where}",
                brief=f"the local engine at {self.where} has no such image; pull or build it",
            ) from e
        return ImageInfo(
            id=str(raw.get("Id", "")),
            repo_tags=tuple(raw.get("RepoTags") or ()),
            repo_digests=tuple(raw.get("RepoDigests") or ()),
            size=int(raw.get("Size") or 0),
            created=str(raw.get("Created") or ""),
        )

    def containers(self) -> list[ContainerInfo]:
        """Running (and paused) containers; ones that vanish while we look are left out."""
        with self._translate("list containers"):
            listed = self._api().containers(quiet=True)
        found = []
        for entry in listed:
            info = self.container(str(entry["Id"]))
            if info is not None:
                found.append(info)
        return found

    def container(self, id_or_name: str) -> ContainerInfo | None:
        """One container by ID or name, or None when it no longer exists."""
        try:
            with self._translate(f"inspect container {id_or_name}", missing_ok=True):
                raw = self._api().inspect_container(id_or_name)
        except docker.errors.NotFound:
            return None
        config = raw.get("Config") or {}
        state = raw.get("State") or {}
        labels = config.get("Labels") or {}
        return ContainerInfo(
            id=str(raw.get("Id", "")),
            name=str(raw.get("Name", "")).lstrip("/"),
            image_id=str(raw.get("Image", "")),
            image_ref=str(config.get("Image", "")),
            status=str(state.get("Status", "")),
            labels=MappingProxyType({str(k): str(v) for k, v in labels.items()}),
        )

    def events(
        self, since: float | None = None, stop: threading.Event | None = None
    ) -> Iterator[EngineEvent]:
        """Container start/restart/unpause and image tag/pull events, as they happen.

        ``since`` (Unix seconds) replays what happened after it, for a reconnect.
        Setting ``stop`` ends the iteration within ``_STOP_POLL`` seconds. The
        stream ending on its own (the engine went away) raises ``EngineError``,
        so the caller can reconnect and sweep. Malformed events are logged and
        skipped.
        """
        filters = {
            "type": sorted(WATCHED_ACTIONS),
            "event": sorted(set().union(*WATCHED_ACTIONS.values())),
        }
        with self._translate("stream events"):
            stream = self._api().events(
                since=None if since is None else f"{since:.9f}", filters=filters, decode=False
            )
        done = threading.Event()
        if stop is not None:
            threading.Thread(
                target=_close_when, args=(stop, done, stream), name="engine-events", daemon=True
            ).start()
        try:
            yield from self._decode(stream, stop)
        finally:
            done.set()
            with contextlib.suppress(Exception):
                stream.close()
        if stop is None or not stop.is_set():
            self._reset()
            raise EngineError(f"the Docker engine at {self.where} closed the event stream")

    def _decode(self, stream: Any, stop: threading.Event | None) -> Iterator[EngineEvent]:
        buffer = b""
        try:
            for chunk in stream:
                if stop is not None and stop.is_set():
                    return
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                if len(buffer) > _MAX_EVENT_LINE:
                    log.warning("skipped an oversized event from the Docker engine")
                    buffer = b""
                for line in lines:
                    event = _decode_line(line)
                    if event is not None and _watched(event):
                        yield event
        except (requests.RequestException, OSError, ValueError) as e:
            if stop is None or not stop.is_set():
                raise EngineError(
                    f"lost the event stream of the Docker engine at {self.where}: {_short(e)}"
                ) from e

    # --- enforcement and export --------------------------------------------------------

    def stop_container(self, id: str, grace: int = 10) -> None:
        """Stop it (SIGTERM, then SIGKILL after ``grace`` seconds)."""
        self._act(f"stop container {id}", lambda api: api.stop(id, timeout=grace))

    def kill_container(self, id: str) -> None:
        """SIGKILL it now."""
        self._act(f"kill container {id}", lambda api: api.kill(id))

    def pause_container(self, id: str) -> None:
        """Freeze its processes (cgroup freezer); ``unpause`` brings it back."""
        self._act(f"pause container {id}", lambda api: api.pause(id))

    def _act(self, doing: str, call: Any) -> None:
        try:
            with self._translate(doing, missing_ok=True):
                call(self._api())
        except docker.errors.NotFound as e:
            raise EngineError(
                f"cannot {doing}: the Docker engine at {self.where} has no such container"
            ) from e

    def save_image(self, name: str, dest: Path) -> None:
        """Write ``docker save NAME`` to ``dest`` (atomically: a partial tarball is never left)."""
        partial = dest.with_name(dest.name + ".partial")
        try:
            with self._translate(f"save image {name}", missing_ok=True):
                chunks = self._api().get_image(name, chunk_size=1 << 20)
                with partial.open("wb") as out:
                    for chunk in chunks:
                        out.write(chunk)
            partial.replace(dest)
        except docker.errors.NotFound as e:
            raise EngineError(f"no image {name} in the local engine at {self.where}") from e
        finally:
            partial.unlink(missing_ok=True)


def _decode_line(line: bytes) -> EngineEvent | None:
    if not line.strip():
        return None
    try:
        event = parse_event(json.loads(line))
    except ValueError:
        event = None
    if event is None:
        log.warning("skipped a malformed event from the Docker engine: %.200r", line)
    return event


def _close_when(stop: threading.Event, done: threading.Event, stream: Any) -> None:
    """Close the stream once ``stop`` is set: a blocked read only wakes when its socket shuts."""
    while not done.is_set():
        if stop.wait(_STOP_POLL):
            with contextlib.suppress(Exception):
                stream.close()
            return


def _short(error: BaseException) -> str:
    """The last line of a library error, without the noise of nested reprs."""
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[-1][:300]
