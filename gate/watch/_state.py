"""What the watchdog remembers across restarts, and how it copes when it cannot write it.

Two small JSON files in the state directory:

* ``containers.json``: each container's last status, so a restart does not
  alert again for what was already alerted;
* ``images.json``: each image ID's repo digests as the engine listed them when
  the image was first seen. ``docker rmi -f IMAGE:TAG`` while a container runs
  makes the engine forget them, yet the container still runs that image: its
  verdict must not change because a tag went away.

Writing never raises: a full or read-only disk is reported through
``on_error`` (once per outage, by the caller) and the data stays in memory
until a later write succeeds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate.result import Status

log = logging.getLogger("sealgate.watch")

MAX_IMAGES = 10_000
"""Image IDs remembered; beyond, those no running container uses are forgotten."""


@dataclass
class Seen:
    """A container's last reported state."""

    status: Status
    transitions: int
    alerted_at: float
    quiet: bool = False
    """The status came from a fault of the watchdog's own (a broken policy), alerted once
    for all containers: its end is not a per-container recovery."""


class JsonFile:
    """A JSON document written atomically; ``save`` reports failure instead of raising."""

    def __init__(self, path: Path, on_error: Callable[[str | None], None]) -> None:
        self.path = path
        self._on_error = on_error
        self.dirty = False

    def load(self) -> Any:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            log.warning("ignoring unreadable watchdog state %s (%s)", self.path, e)
            return None

    def save(self, data: Any) -> bool:
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(data, sort_keys=True))
            os.replace(tmp, self.path)
        except OSError as e:
            self.dirty = True
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            self._on_error(f"cannot write {self.path}: {e.strerror or e}")
            return False
        self.dirty = False
        self._on_error(None)
        return True


class State:
    """Per-container statuses and per-image repo digests, loaded at start, saved on change."""

    def __init__(self, directory: Path, on_error: Callable[[str | None], None]) -> None:
        self._containers_file = JsonFile(directory / "containers.json", on_error)
        self._images_file = JsonFile(directory / "images.json", on_error)
        self.containers = self._load_containers()
        self.images = self._load_images()

    def _load_containers(self) -> dict[str, Seen]:
        raw = self._containers_file.load()
        try:
            return {
                k: Seen(
                    Status(v["status"]),
                    int(v["transitions"]),
                    float(v.get("alerted_at", 0)),
                    bool(v.get("quiet", False)),
                )
                for k, v in (raw or {}).items()
            }
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            log.warning("ignoring unreadable watchdog state %s (%s)", self._containers_file.path, e)
            return {}

    def _load_images(self) -> dict[str, list[str]]:
        raw = self._images_file.load()
        if not isinstance(raw, dict):
            return {}
        return {
            str(k): [str(d) for d in v]
            for k, v in raw.items()
            if isinstance(v, list) and all(isinstance(d, str) for d in v)
        }

    def save_containers(self) -> None:
        self._containers_file.save(
            {
                k: {
                    "status": v.status.value,
                    "transitions": v.transitions,
                    "alerted_at": v.alerted_at,
                    "quiet": v.quiet,
                }
                for k, v in self.containers.items()
            }
        )

    def remember(self, image_id: str, repo_digests: Iterable[str], in_use: Iterable[str]) -> None:
        """Add repo digests the engine lists for ``image_id``; saved when something is new."""
        known = self.images.setdefault(image_id, [])
        new = [d for d in repo_digests if d not in known]
        if not new:
            return
        known.extend(new)
        if len(self.images) > MAX_IMAGES:
            keep = set(in_use) | {image_id}
            self.images = {k: v for k, v in self.images.items() if k in keep}
        self._images_file.save(self.images)

    def retry(self) -> None:
        """Write again what a failed write left only in memory."""
        if self._containers_file.dirty:
            self.save_containers()
        if self._images_file.dirty:
            self._images_file.save(self.images)
